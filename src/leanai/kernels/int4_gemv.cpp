// Highway compiles this file once per target (foreach_target.h re-includes
// it); HWY_ONCE marks the single pass that defines the dispatching entries.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "leanai/kernels/int4_gemv.cpp"
#include <hwy/foreach_target.h>  // must precede highway.h
#include <hwy/highway.h>
#include <hwy/targets.h>

#include "leanai/core/error.h"
#include "leanai/kernels/int4_gemv.h"

HWY_BEFORE_NAMESPACE();
namespace leanai {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// R rows at once: each weight vector is decoded once and used R times.
// Lanes capped at 16 so a 32-column block (16 bytes) is whole vectors.
template <int R>
void gemv_rows(const Int4GemvArgs& a, int64_t o_begin, int64_t o_end) {
  const hn::CappedTag<float, 16> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<uint8_t, decltype(df)> du8;
  using V = hn::Vec<decltype(df)>;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  const int64_t half = a.k / 2, block_bytes = a.block / 2, blocks = a.k / a.block;
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* w = a.packed + o * half;
    V acc[R];
    for (int r = 0; r < R; ++r) acc[r] = hn::Zero(df);
    for (int64_t b = 0; b < blocks; ++b) {
      const V s = hn::Set(df, a.scales[o * blocks + b]);
      for (int64_t j = b * block_bytes; j < (b + 1) * block_bytes; j += n) {
        // Sign-extend each nibble by shifting it to the top of an i32 lane and back.
        const auto q = hn::PromoteTo(di, hn::LoadU(du8, w + j));
        const V lo = hn::Mul(hn::ConvertTo(df, hn::ShiftRight<28>(hn::ShiftLeft<28>(q))), s);
        const V hi = hn::Mul(hn::ConvertTo(df, hn::ShiftRight<28>(hn::ShiftLeft<24>(q))), s);
        for (int r = 0; r < R; ++r) {
          acc[r] = hn::MulAdd(lo, hn::LoadU(df, a.x_even + r * a.x_stride + j), acc[r]);
          acc[r] = hn::MulAdd(hi, hn::LoadU(df, a.x_odd + r * a.x_stride + j), acc[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) a.y[r * a.ldy + o] = hn::GetLane(hn::SumOfLanes(df, acc[r]));
  }
}

// One packed row to f32 in split order: even columns to `even`, odd to `odd`.
void Int4Widen(const uint8_t* packed, const float* scales, int64_t k, int64_t block, float* even, float* odd) {
  const hn::CappedTag<float, 16> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<uint8_t, decltype(df)> du8;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df)), block_bytes = block / 2;
  for (int64_t b = 0; b < k / block; ++b) {
    const auto s = hn::Set(df, scales[b]);
    for (int64_t j = b * block_bytes; j < (b + 1) * block_bytes; j += n) {
      const auto q = hn::PromoteTo(di, hn::LoadU(du8, packed + j));
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::ShiftRight<28>(hn::ShiftLeft<28>(q))), s), df, even + j);
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::ShiftRight<28>(hn::ShiftLeft<24>(q))), s), df, odd + j);
    }
  }
}

void Int4Gemv(const Int4GemvArgs& a, int64_t o_begin, int64_t o_end) {
  switch (a.rows) {
    case 1: return gemv_rows<1>(a, o_begin, o_end);
    case 2: return gemv_rows<2>(a, o_begin, o_end);
    case 3: return gemv_rows<3>(a, o_begin, o_end);
    case 4: return gemv_rows<4>(a, o_begin, o_end);
    case 5: return gemv_rows<5>(a, o_begin, o_end);
    case 6: return gemv_rows<6>(a, o_begin, o_end);
    case 7: return gemv_rows<7>(a, o_begin, o_end);
    default: return gemv_rows<8>(a, o_begin, o_end);
  }
}

int64_t CompiledTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace leanai
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace leanai {

HWY_EXPORT(Int4Gemv);
HWY_EXPORT(CompiledTarget);
HWY_EXPORT(Int4Widen);

void int4_widen_row(const uint8_t* packed, const float* scales, int64_t k, int64_t block, float* dst) {
  HWY_DYNAMIC_DISPATCH(Int4Widen)(packed, scales, k, block, dst, dst + k / 2);
}

void int4_split_row(const float* x, int64_t k, float* dst) {
  for (int64_t j = 0; j < k / 2; ++j) {
    dst[j] = x[2 * j];
    dst[k / 2 + j] = x[2 * j + 1];
  }
}

void int4_gemv(const Int4GemvArgs& a, int64_t o_begin, int64_t o_end) {
  if (a.rows < 1 || o_begin >= o_end) return;
  HWY_DYNAMIC_DISPATCH(Int4Gemv)(a, o_begin, o_end);
}

void int4_split_columns(const float* x, int64_t rows, int64_t k, float* even, float* odd) {
  const int64_t stride = int4_split_stride(k);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k / 2; ++j) {
      even[r * stride + j] = x[r * k + 2 * j];
      odd[r * stride + j] = x[r * k + 2 * j + 1];
    }
}

const char* int4_gemv_target() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CompiledTarget)()); }

std::vector<std::string> int4_gemv_targets() {
  std::vector<std::string> names;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) names.push_back(hwy::TargetName(t));
  return names;
}

void int4_gemv_use_target(const std::string& name) {
  hwy::SetSupportedTargetsForTest(0);  // all of them again, then pick
  if (name.empty()) return;
  for (int64_t t : hwy::SupportedAndGeneratedTargets())
    if (name == hwy::TargetName(t)) return hwy::SetSupportedTargetsForTest(t);
  throw Error("int4 GEMV: instruction set '" + name + "' is not compiled here or not supported by this CPU");
}

}  // namespace leanai
#endif  // HWY_ONCE
