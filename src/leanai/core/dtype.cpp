#include "leanai/core/dtype.h"

#include "leanai/core/error.h"

namespace leanai {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::i8: case DType::u8: return 1;
    case DType::i64: return 8;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
  }
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i8, DType::u8, DType::i32, DType::i64})
    if (name == dtype_name(t)) return t;
  throw Error("unknown dtype '" + name + "': expected one of F32, BF16, F16, I8, U8, I32, I64");
}

}  // namespace leanai
