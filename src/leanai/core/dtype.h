// Element types and the conversions between the 16-bit floats and f32.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace leanai {

enum class DType : uint8_t { f32, bf16, f16, i8, u8, i32, i64 };

size_t dtype_size(DType t);
// Name as in safetensors ("F32", "BF16", "F16", "I8", "U8", "I32", "I64").
const char* dtype_name(DType t);
// Inverse of dtype_name; throws Error for an unknown name.
DType dtype_from_name(const std::string& name);

// bf16 keeps the top 16 bits of an f32; round to nearest even, NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// IEEE half precision via the compiler's _Float16 (F16C where the CPU has it).
inline uint16_t f32_to_f16(float f) {
  _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
inline float f16_to_f32(uint16_t u) {
  _Float16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
}

}  // namespace leanai
