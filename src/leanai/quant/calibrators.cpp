#include "leanai/quant/calibrators.h"

#include <algorithm>
#include <cmath>

#include "leanai/core/error.h"

namespace leanai {
namespace {

// The histogram a method searches: the positive side for a non-negative
// tensor (u8), magnitudes otherwise (symmetric i8).
struct Side {
  std::vector<double> counts;
  double width;
  double max_magnitude;  // observed, exact
  bool u8;
};

Side side_of(const ActivationHistogram& h) {
  const bool u8 = h.non_negative();
  return {u8 ? h.positive() : h.magnitudes(), h.bin_width(),
          std::max(std::fabs(static_cast<double>(h.min())), std::fabs(static_cast<double>(h.max()))), u8};
}

double percentile_threshold(const Side& s, double percentile) {
  double total = 0.0;
  for (double c : s.counts) total += c;
  const double target = total * percentile / 100.0;
  double cum = 0.0;
  for (size_t b = 0; b < s.counts.size(); ++b) {
    if (s.counts[b] > 0.0 && cum + s.counts[b] >= target)  // interpolate inside the bin
      return std::min(s.max_magnitude, (b + (target - cum) / s.counts[b]) * s.width);
    cum += s.counts[b];
  }
  return s.max_magnitude;
}

// Moves a little mass onto the zero entries of a normalized distribution so
// KL(p || q) stays finite (as MXNet / ONNX Runtime do); false when all zero.
bool smooth(std::vector<double>& d, double eps = 1e-4) {
  const size_t zeros = std::count(d.begin(), d.end(), 0.0), nonzeros = d.size() - zeros;
  if (nonzeros == 0) return false;
  const double take = eps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  for (double& v : d) v = v == 0.0 ? eps : v - take;
  return true;
}

void normalize(std::vector<double>& d) {
  double sum = 0.0;
  for (double v : d) sum += v;
  if (sum > 0.0)
    for (double& v : d) v /= sum;
}

// TensorRT's entropy calibration: for each candidate i (bins kept), P is the
// first i bins with the clipped mass folded into the last, Q the same bins
// merged into `levels` groups and spread back over P's non-empty bins.
double entropy_threshold(const Side& s, int levels) {
  const int bins = static_cast<int>(s.counts.size());
  levels = std::min(levels, bins);
  std::vector<double> beyond(bins + 1, 0.0);  // beyond[i] = sum of counts[i..]
  for (int b = bins - 1; b >= 0; --b) beyond[b] = beyond[b + 1] + s.counts[b];
  double best_kl = INFINITY;
  int best = bins;
  std::vector<double> p, q;
  // Descending, with a strict improvement: ties keep the larger threshold.
  for (int i = bins; i >= levels; --i) {
    p.assign(s.counts.begin(), s.counts.begin() + i);
    p[i - 1] += beyond[i];
    q.assign(i, 0.0);
    const int merged = i / levels;
    for (int j = 0; j < levels; ++j) {
      const int start = j * merged, end = j == levels - 1 ? i : start + merged;
      double sum = 0.0;
      int nonzero = 0;
      for (int k = start; k < end; ++k) {
        sum += s.counts[k];
        nonzero += p[k] != 0.0;
      }
      if (nonzero == 0) continue;
      for (int k = start; k < end; ++k)
        if (p[k] != 0.0) q[k] = sum / nonzero;
    }
    normalize(p);
    normalize(q);
    if (!smooth(p) || !smooth(q)) continue;
    double kl = 0.0;
    for (int k = 0; k < i; ++k)
      if (p[k] > 0.0) kl += p[k] * std::log(p[k] / q[k]);
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
  }
  return std::min(s.max_magnitude, best * s.width);
}

// Expected squared error at threshold T = i * width, from suffix sums of
// count, count * centre and count * centre^2 (the clipped bins).
double mse_threshold(const Side& s, double exact_zeros) {
  const int bins = static_cast<int>(s.counts.size());
  const double levels = s.u8 ? 255.0 : 127.0;
  std::vector<double> n(bins + 1, 0.0), m1(bins + 1, 0.0), m2(bins + 1, 0.0);
  for (int b = bins - 1; b >= 0; --b) {
    const double c = (b + 0.5) * s.width;
    n[b] = n[b + 1] + s.counts[b];
    m1[b] = m1[b + 1] + s.counts[b] * c;
    m2[b] = m2[b + 1] + s.counts[b] * c * c;
  }
  double best_err = INFINITY, best_t = s.max_magnitude;
  for (int i = bins; i >= 1; --i) {
    const double t = std::min(s.max_magnitude, i * s.width), step = t / levels;
    const double inside = std::max(0.0, n[0] - n[i] - exact_zeros);
    const double clip = std::max(0.0, m2[i] - 2.0 * t * m1[i] + t * t * n[i]);
    const double err = inside * step * step / 12.0 + clip;
    if (err < best_err) {
      best_err = err;
      best_t = t;
    }
  }
  return best_t;
}

}  // namespace

const std::vector<CalibrationMethod>& calibration_methods() {
  static const std::vector<CalibrationMethod> all = {CalibrationMethod::minmax, CalibrationMethod::percentile,
                                                     CalibrationMethod::entropy, CalibrationMethod::mse};
  return all;
}

const char* calibration_method_name(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::minmax: return "minmax";
    case CalibrationMethod::percentile: return "percentile";
    case CalibrationMethod::entropy: return "entropy";
    case CalibrationMethod::mse: return "mse";
  }
  return "?";
}

CalibrationMethod calibration_method_from_name(const std::string& name) {
  for (CalibrationMethod m : calibration_methods())
    if (name == calibration_method_name(m)) return m;
  throw Error("unknown calibration method '" + name + "': use minmax, percentile, entropy or mse");
}

ClipRange calibrate_range(const ActivationHistogram& h, CalibrationMethod method, const CalibratorOptions& options) {
  check(h.count() > 0, "calibration: the histogram has seen no values; add calibration batches first");
  check(options.percentile > 0.0 && options.percentile <= 100.0,
        "calibration: the percentile must be in (0, 100], got " + std::to_string(options.percentile));
  check(options.entropy_quant_bins >= 2, "calibration: entropy_quant_bins must be >= 2");
  const Side s = side_of(h);
  const DType dtype = s.u8 ? DType::u8 : DType::i8;
  ClipRange r;
  if (method == CalibrationMethod::minmax || h.range() == 0.0) {
    r.lo = h.min();
    r.hi = h.max();
  } else {
    double t = 0.0;
    switch (method) {
      case CalibrationMethod::percentile: t = percentile_threshold(s, options.percentile); break;
      case CalibrationMethod::entropy: t = entropy_threshold(s, options.entropy_quant_bins * (s.u8 ? 2 : 1)); break;
      default: t = mse_threshold(s, static_cast<double>(h.zeros())); break;
    }
    r.hi = static_cast<float>(t);
    r.lo = s.u8 ? 0.0f : -r.hi;
  }
  r.params = params_for_range(r.lo, r.hi, dtype);
  return r;
}

}  // namespace leanai
