#include "leanai/quant/histogram.h"

#include <algorithm>
#include <cmath>

#include "leanai/core/error.h"

namespace leanai {

ActivationHistogram::ActivationHistogram(int bins) {
  check(bins >= 16 && bins % 2 == 0, "activation histogram: the bin count must be even and >= 16, got " +
                                          std::to_string(bins));
  pos_.assign(bins, 0.0);
  neg_.assign(bins, 0.0);
}

std::vector<double> ActivationHistogram::magnitudes() const {
  std::vector<double> m(pos_.size());
  for (size_t i = 0; i < m.size(); ++i) m[i] = pos_[i] + neg_[i];
  return m;
}

std::vector<float> ActivationHistogram::channel_mean() const {
  std::vector<float> mean(channel_sum_.size());
  for (size_t c = 0; c < mean.size(); ++c)
    mean[c] = per_channel_count_ > 0 ? static_cast<float>(channel_sum_[c] / per_channel_count_) : 0.0f;
  return mean;
}

// Doubling keeps old bin edges on new ones: bins 2i and 2i+1 become bin i.
void ActivationHistogram::grow_to(double magnitude) {
  if (range_ == 0.0) {
    range_ = magnitude;  // zeros counted so far sit in bin 0, which stays [0, w)
    return;
  }
  const size_t n = pos_.size();
  while (range_ < magnitude) {
    for (std::vector<double>* h : {&pos_, &neg_}) {
      std::vector<double>& v = *h;
      for (size_t i = 0; i < n / 2; ++i) v[i] = v[2 * i] + v[2 * i + 1];
      std::fill(v.begin() + n / 2, v.end(), 0.0);
    }
    range_ *= 2.0;
  }
}

void ActivationHistogram::count_values(const float* x, int64_t n) {
  const int last = bins() - 1;
  const double inv_w = range_ > 0.0 ? bins() / range_ : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    zeros_ += v == 0.0;
    const int b = std::min(last, static_cast<int>(std::fabs(v) * inv_w));
    (v < 0.0 ? neg_ : pos_)[b] += 1.0;
  }
}

void ActivationHistogram::add(const Tensor& x) {
  check(x.dtype() == DType::f32, std::string("activation histogram: expects f32 values, got ") + dtype_name(x.dtype()));
  check(x.numel() > 0, "activation histogram: the batch is empty");
  const Tensor t = x.is_contiguous() ? x : x.clone();
  const float* p = t.data<float>();
  const int64_t n = t.numel();
  float lo = p[0], hi = p[0];
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i]))
      throw Error("activation histogram: the batch holds NaN or Inf at element " + std::to_string(i) +
                  "; calibrate on finite data");
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
  }
  min_ = count_ == 0 ? lo : std::min(min_, lo);
  max_ = count_ == 0 ? hi : std::max(max_, hi);
  count_ += n;
  const double magnitude = std::max(std::fabs(static_cast<double>(lo)), std::fabs(static_cast<double>(hi)));
  if (magnitude > range_) grow_to(magnitude);
  count_values(p, n);

  // Channel sums over axis 1: [N, C, ...] (a rank-1 tensor is one channel).
  const int64_t channels = t.rank() >= 2 ? t.dim(1) : 1;
  if (channel_sum_.empty()) channel_sum_.assign(channels, 0.0);
  check(static_cast<int64_t>(channel_sum_.size()) == channels,
        "activation histogram: this batch has " + std::to_string(channels) + " channels (axis 1), earlier ones had " +
            std::to_string(channel_sum_.size()));
  const int64_t outer = t.rank() >= 2 ? t.dim(0) : 1;
  const int64_t inner = n / (outer * channels);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c) {
      const float* q = p + (o * channels + c) * inner;
      double s = 0.0;
      for (int64_t i = 0; i < inner; ++i) s += q[i];
      channel_sum_[c] += s;
    }
  per_channel_count_ += outer * inner;
}

}  // namespace leanai
