// Calibrators: a clipping range for one activation tensor from its
// ActivationHistogram, as quantization parameters (params_for_range).
//
//   ClipRange r = calibrate_range(hist, CalibrationMethod::entropy);
//   r.params   // u8 with zero point 0 when no value was negative, else symmetric i8
//
//   minmax      the observed [min, max]: nothing clips, outliers cost resolution
//   percentile  the given percentile of |x| (of x when non-negative), 99.99 by default
//   entropy     TensorRT's KL-divergence search: the threshold whose 128-level
//               quantized distribution (256 for u8, which has twice the levels
//               on [0, T]) is closest to the clipped reference distribution
//   mse         the threshold minimising the expected squared error: rounding
//               (step^2 / 12 per value inside, exact zeros excluded) plus
//               clipping ((|x| - T)^2 per value outside), from the histogram
//
// Signed tensors get a symmetric range [-T, T] (i8); non-negative ones [0, T]
// (u8). MinMax keeps the observed [min, max] in lo/hi (the i8 params still
// cover it symmetrically).
#pragma once
#include <string>
#include <vector>

#include "leanai/quant/histogram.h"
#include "leanai/quant/quant_params.h"

namespace leanai {

enum class CalibrationMethod { minmax, percentile, entropy, mse };

// Every method, in the order above.
const std::vector<CalibrationMethod>& calibration_methods();
// "minmax", "percentile", "entropy", "mse".
const char* calibration_method_name(CalibrationMethod m);
// Inverse of calibration_method_name; throws Error listing the valid names.
CalibrationMethod calibration_method_from_name(const std::string& name);

struct CalibratorOptions {
  double percentile = 99.99;     // in (0, 100]
  int entropy_quant_bins = 128;  // levels of the symmetric grid's magnitude side
};

struct ClipRange {
  float lo = 0.0f, hi = 0.0f;  // values outside clip
  QuantParams params;
};

// Throws Error when the histogram has seen no values.
ClipRange calibrate_range(const ActivationHistogram& h, CalibrationMethod method, const CalibratorOptions& options = {});

}  // namespace leanai
