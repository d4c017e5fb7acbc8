#include "leanai/data/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "leanai/core/error.h"

namespace leanai {
namespace {

// The checks below run per row and per batch; building their messages only on
// failure keeps a steady-state batch free of allocations.
void check_label(const char* what, int64_t label, int64_t classes) {
  if (label < 0 || label >= classes)
    throw Error(std::string(what) + ": label " + std::to_string(label) + " is outside [0, " + std::to_string(classes) + ")");
}

// soft = lam on la, 1 - lam on lb; exactly one-hot when both labels agree
// (lam + (1 - lam) need not round to 1 in float).
void write_pair(float* soft, int64_t classes, int64_t la, int64_t lb, float lam) {
  std::fill(soft, soft + classes, 0.0f);
  if (la == lb) {
    soft[la] = 1.0f;
    return;
  }
  soft[la] = lam;
  soft[lb] = 1.0f - lam;
}

// log of a Gamma(shape, 1) draw for shape >= 1 (Marsaglia and Tsang, 2000).
double log_gamma_at_least_one(Rng& rng, double shape) {
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double z = rng.normal();
    const double t = 1.0 + c * z;
    if (t <= 0.0) continue;
    const double v = t * t * t;
    const double u = 1.0 - rng.uniform();  // (0, 1], so log(u) is finite
    if (u < 1.0 - 0.0331 * z * z * z * z || std::log(u) < 0.5 * z * z + d * (1.0 - v + std::log(v))) return std::log(d * v);
  }
}

// log of a Gamma(shape, 1) draw; below 1, Gamma(shape) = Gamma(shape + 1) * u^(1/shape).
// In log space because u^(1/shape) underflows float for small shapes.
double log_gamma(Rng& rng, double shape) {
  if (shape >= 1.0) return log_gamma_at_least_one(rng, shape);
  const double boost = std::log(1.0 - rng.uniform()) / shape;
  return log_gamma_at_least_one(rng, shape + 1.0) + boost;
}

void check_config(const AugmentConfig& cfg) {
  if (cfg.pad < 0) throw Error("augment: pad must be >= 0 (pixels of zero padding per side), got " + std::to_string(cfg.pad));
  if (cfg.mixup && !(std::isfinite(cfg.mixup_alpha) && cfg.mixup_alpha > 0.0f))
    throw Error("augment: mixup_alpha must be > 0 (0.2 is usual), got " + std::to_string(cfg.mixup_alpha));
  if (cfg.cutmix && !(std::isfinite(cfg.cutmix_alpha) && cfg.cutmix_alpha > 0.0f))
    throw Error("augment: cutmix_alpha must be > 0 (1.0 is usual), got " + std::to_string(cfg.cutmix_alpha));
}

}  // namespace

void random_crop(float* img, int64_t channels, int64_t h, int64_t w, int pad, int64_t dy, int64_t dx, float* tmp) {
  if (pad < 0 || dy < -pad || dy > pad || dx < -pad || dx > pad)
    throw Error("random_crop: shift (" + std::to_string(dy) + ", " + std::to_string(dx) + ") must lie in [-pad, pad] with pad " +
                std::to_string(pad) + " >= 0");
  if (dy == 0 && dx == 0) return;
  const int64_t plane = h * w;
  std::memcpy(tmp, img, static_cast<size_t>(channels * plane) * sizeof(float));
  // Destination columns [x_begin, x_end) have their source column x - dx inside the image.
  const int64_t x_begin = std::clamp<int64_t>(dx, 0, w), x_end = std::clamp<int64_t>(w + dx, 0, w);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < h; ++y) {
      float* dst = img + c * plane + y * w;
      const int64_t sy = y - dy;
      if (sy < 0 || sy >= h || x_begin >= x_end) {
        std::fill(dst, dst + w, 0.0f);
        continue;
      }
      const float* src = tmp + c * plane + sy * w;
      std::fill(dst, dst + x_begin, 0.0f);
      std::copy(src + x_begin - dx, src + x_end - dx, dst + x_begin);
      std::fill(dst + x_end, dst + w, 0.0f);
    }
}

void hflip(float* img, int64_t channels, int64_t h, int64_t w) {
  for (int64_t r = 0; r < channels * h; ++r) std::reverse(img + r * w, img + (r + 1) * w);
}

void mixup_row(float* out, const float* a, const float* b, int64_t size, float lam, int64_t la, int64_t lb, float* soft,
               int64_t classes) {
  if (!(lam >= 0.0f && lam <= 1.0f)) throw Error("mixup_row: lambda must be in [0, 1], got " + std::to_string(lam));
  check_label("mixup_row", la, classes);
  check_label("mixup_row", lb, classes);
  const float other = 1.0f - lam;
  for (int64_t i = 0; i < size; ++i) out[i] = lam * a[i] + other * b[i];
  write_pair(soft, classes, la, lb, lam);
}

float cutmix_row(float* out, const float* a, const float* b, int64_t channels, int64_t h, int64_t w, int64_t y0,
                 int64_t y1, int64_t x0, int64_t x1, int64_t la, int64_t lb, float* soft, int64_t classes) {
  if (!(0 <= y0 && y0 <= y1 && y1 <= h && 0 <= x0 && x0 <= x1 && x1 <= w))
    throw Error("cutmix_row: box [" + std::to_string(y0) + ", " + std::to_string(y1) + ") x [" + std::to_string(x0) + ", " +
                std::to_string(x1) + ") must be ordered and lie inside the " + std::to_string(h) + " x " + std::to_string(w) +
                " image");
  check_label("cutmix_row", la, classes);
  check_label("cutmix_row", lb, classes);
  const int64_t plane = h * w;
  if (out != a) std::memcpy(out, a, static_cast<size_t>(channels * plane) * sizeof(float));
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = y0; y < y1; ++y) {
      const int64_t at = c * plane + y * w;
      std::copy(b + at + x0, b + at + x1, out + at + x0);
    }
  const float lam = static_cast<float>(1.0 - static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(plane));
  write_pair(soft, classes, la, lb, lam);
  return lam;
}

float sample_beta(Rng& rng, float alpha) {
  if (!(std::isfinite(alpha) && alpha > 0.0f)) throw Error("sample_beta: alpha must be > 0, got " + std::to_string(alpha));
  // Two statements: the draws must happen in this order on every compiler.
  const double g1 = log_gamma(rng, alpha);
  const double g2 = log_gamma(rng, alpha);
  // G1 / (G1 + G2) from the logs.
  return static_cast<float>(1.0 / (1.0 + std::exp(g2 - g1)));
}

void augment_batch(const AugmentConfig& cfg, Tensor& x, const int64_t* labels, const float* values, int64_t classes,
                   Tensor& soft, Tensor& scratch, Rng& rng) {
  check_config(cfg);
  if (!(x.defined() && x.dtype() == DType::f32 && x.rank() >= 1 && x.is_contiguous()))
    throw Error("augment: x must be a contiguous f32 batch {n, ...}, got " + (x.defined() ? shape_str(x.shape()) : "an empty tensor"));
  if (classes < 1) throw Error("augment: classes must be >= 1, got " + std::to_string(classes));
  const int64_t n = x.dim(0);
  if (n > 0 && !labels) throw Error("augment: labels are missing (null) for a batch of " + std::to_string(n) + " rows");
  for (int64_t r = 0; r < n; ++r) check_label("augment", labels[r], classes);

  // Who mixes depends on the values alone (never on a draw), so whether x's
  // rank is an error does not depend on the seed. One row has no partner.
  const bool can_mix = cfg.value_aware && values && (cfg.mixup || cfg.cutmix) && n > 1;
  auto mixes = [&](int64_t r) { return can_mix && values[r] >= cfg.value_threshold; };
  bool any_mix = false, any_gentle = false;
  for (int64_t r = 0; r < n; ++r) (mixes(r) ? any_mix : any_gentle) = true;
  const bool image = x.rank() == 4;
  if (!image && ((any_gentle && (cfg.crop || cfg.flip)) || (any_mix && cfg.cutmix)))
    throw Error("augment: crop, flip and cutmix need images {n, C, H, W}, got x " + shape_str(x.shape()) +
                "; turn them off for other data (mixup works on any shape)");

  if (!(soft.defined() && soft.dtype() == DType::f32 && soft.rank() == 2 && soft.dim(0) == n && soft.dim(1) == classes &&
        soft.is_contiguous()))
    soft = Tensor::empty({n, classes});
  if (n == 0) return;
  const int64_t row = x.numel() / n;
  if (row == 0) throw Error("augment: x " + shape_str(x.shape()) + " has rows of 0 values; nothing to augment");
  const int64_t need = (n + 1) * row;  // one row for the crop, then the batch before augmentation
  if (!(scratch.defined() && scratch.dtype() == DType::f32 && scratch.is_contiguous() && scratch.numel() >= need))
    scratch = Tensor::empty({need});
  float* tmp = scratch.data<float>();
  float* before = tmp + row;
  float* xd = x.data<float>();
  if (any_mix) std::memcpy(before, xd, static_cast<size_t>(n * row) * sizeof(float));

  const int64_t C = image ? x.dim(1) : 0, H = image ? x.dim(2) : 0, W = image ? x.dim(3) : 0;
  float* sd = soft.data<float>();
  for (int64_t r = 0; r < n; ++r) {
    float* xr = xd + r * row;
    float* sr = sd + r * classes;
    if (mixes(r)) {
      int64_t partner = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - 1)));
      if (partner >= r) ++partner;  // any row but this one
      const float* a = before + r * row;
      const float* b = before + partner * row;
      const bool use_cutmix = cfg.cutmix && (!cfg.mixup || rng.uniform() < 0.5f);
      if (use_cutmix) {
        // A box of area (1 - lam) H W centred on a uniform pixel, clipped to the image.
        const double side = std::sqrt(1.0 - static_cast<double>(sample_beta(rng, cfg.cutmix_alpha)));
        const int64_t bh = std::llround(static_cast<double>(H) * side), bw = std::llround(static_cast<double>(W) * side);
        const int64_t cy = static_cast<int64_t>(rng.below(static_cast<uint64_t>(H)));
        const int64_t cx = static_cast<int64_t>(rng.below(static_cast<uint64_t>(W)));
        const int64_t y0 = std::clamp<int64_t>(cy - bh / 2, 0, H), y1 = std::clamp<int64_t>(cy - bh / 2 + bh, 0, H);
        const int64_t x0 = std::clamp<int64_t>(cx - bw / 2, 0, W), x1 = std::clamp<int64_t>(cx - bw / 2 + bw, 0, W);
        cutmix_row(xr, a, b, C, H, W, y0, y1, x0, x1, labels[r], labels[partner], sr, classes);
      } else {
        mixup_row(xr, a, b, row, sample_beta(rng, cfg.mixup_alpha), labels[r], labels[partner], sr, classes);
      }
      continue;
    }
    std::fill(sr, sr + classes, 0.0f);
    sr[labels[r]] = 1.0f;
    if (cfg.crop && cfg.pad > 0) {
      const int64_t span = 2 * static_cast<int64_t>(cfg.pad) + 1;
      const int64_t dy = static_cast<int64_t>(rng.below(static_cast<uint64_t>(span))) - cfg.pad;
      const int64_t dx = static_cast<int64_t>(rng.below(static_cast<uint64_t>(span))) - cfg.pad;
      random_crop(xr, C, H, W, cfg.pad, dy, dx, tmp);
    }
    if (cfg.flip && rng.uniform() < 0.5f) hflip(xr, C, H, W);
  }
}

}  // namespace leanai
