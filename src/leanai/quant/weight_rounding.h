// What a weight tensor becomes when stored at a precision and read back:
// the error sensitivity analysis charges a layer with.
#pragma once
#include "leanai/core/tensor.h"
#include "leanai/quant/precision.h"

namespace leanai {

// fp32: a copy; bf16 / fp16: rounded to nearest; int8: per-output-channel
// symmetric (quantize_weights_per_channel); int4: block-wise along the input
// axis of a [out, in] weight (pack_int4_blocks). Throws Error for int4 on a
// weight that is not [out, in] with in a multiple of `block`.
Tensor round_trip_weights(const Tensor& w, Precision p, int block = 32);

}  // namespace leanai
