// Activation statistics of one tensor over many calibration batches: the
// exact min and max, the per-channel mean (axis 1, for bias correction) and
// a histogram of magnitudes that the calibrators search for a clipping range.
//
//   ActivationHistogram h;                  // 2048 bins
//   for (const Tensor& x : batches) h.add(x);
//   float t = h.bin_width() * 100;          // magnitudes below t: h.positive()[0..99] + h.negative()[0..99]
//
// Positive values and magnitudes of negative values are counted separately
// over the same range [0, R]: a non-negative tensor (after ReLU) calibrates
// its u8 range on the positive side alone with every bin in use, a signed one
// its symmetric range on their sum (as TensorRT's entropy calibrator does).
// R starts at the first non-zero batch's max |x|; when a later batch exceeds
// it, R doubles (adjacent bins merge, exactly, no interpolation) until it
// fits, so the data always spans at least half of the bins.
#pragma once
#include <cstdint>
#include <vector>

#include "leanai/core/tensor.h"

namespace leanai {

class ActivationHistogram {
 public:
  explicit ActivationHistogram(int bins = 2048);

  // Adds every element of an f32 tensor; channel means use axis 1 (rank >= 2)
  // and the channel count must stay the same across batches.
  void add(const Tensor& x);

  int bins() const { return static_cast<int>(pos_.size()); }
  // The histogram covers magnitudes [0, range()]; 0 while every value seen is zero.
  double range() const { return range_; }
  double bin_width() const { return range_ / bins(); }
  const std::vector<double>& positive() const { return pos_; }  // counts of x > 0 (and x == 0) by x
  const std::vector<double>& negative() const { return neg_; }  // counts of x < 0 by -x
  // Counts by |x| (positive + negative), the symmetric calibrators' input.
  std::vector<double> magnitudes() const;

  int64_t count() const { return count_; }
  // Exact zeros (in positive()[0]): exactly representable at every scale.
  int64_t zeros() const { return zeros_; }
  float min() const { return min_; }
  float max() const { return max_; }
  // No negative value seen: the tensor quantizes to u8 with zero point 0.
  bool non_negative() const { return min_ >= 0.0f; }
  std::vector<float> channel_mean() const;

 private:
  void grow_to(double magnitude);
  void count_values(const float* x, int64_t n);

  std::vector<double> pos_, neg_;
  double range_ = 0.0;
  int64_t count_ = 0, zeros_ = 0;
  float min_ = 0.0f, max_ = 0.0f;
  std::vector<double> channel_sum_;
  int64_t per_channel_count_ = 0;
};

}  // namespace leanai
