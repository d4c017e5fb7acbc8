#include "leanai/quant/precision.h"

#include "leanai/core/error.h"

namespace leanai {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
    case Precision::int8: return "int8";
    case Precision::int4: return "int4";
  }
  return "?";
}

Precision precision_from_name(const std::string& name) {
  for (Precision p : {Precision::fp32, Precision::bf16, Precision::fp16, Precision::int8, Precision::int4})
    if (name == precision_name(p)) return p;
  throw Error("unknown precision '" + name + "': use fp32, bf16, fp16, int8 or int4");
}

double precision_weight_bytes(Precision p) {
  switch (p) {
    case Precision::fp32: return 4;
    case Precision::bf16:
    case Precision::fp16: return 2;
    case Precision::int8: return 1;
    case Precision::int4: return 0.5;
  }
  return 4;
}

}  // namespace leanai
