// Activation histograms and the four calibrators on distributions whose right
// answer is known: uniform, Gaussian with planted outliers, all zeros, one
// repeated value, ReLU outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "expect_error.h"
#include "leanai/core/rng.h"
#include "leanai/quant/calibrators.h"
#include "leanai/quant/histogram.h"

using namespace leanai;
using test_support::expect_error;

namespace {

Tensor values(const std::vector<float>& v) { return Tensor::from_vector({static_cast<int64_t>(v.size())}, v); }

// Mean squared error of fake-quantizing `data` with the range's params.
double fake_quant_mse(const std::vector<float>& data, const QuantParams& p) {
  double sum = 0.0;
  for (float x : data) {
    const double d = dequantize_value(quantize_value(x, p), p) - x;
    sum += d * d;
  }
  return sum / data.size();
}

// 1M N(0, 1) values in 10 batches, plus 3 outliers of magnitude 30.
std::vector<float> gaussian_with_outliers(ActivationHistogram& h) {
  Rng rng(7);
  std::vector<float> all;
  for (int b = 0; b < 10; ++b) {
    std::vector<float> batch(100000);
    for (float& x : batch) x = rng.normal();
    if (b == 3) batch[5] = 30.0f;
    if (b == 6) batch[9] = -30.0f;
    if (b == 8) batch[1] = 29.0f;
    h.add(values(batch));
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

}  // namespace

TEST(Histogram, GrowsByExactDoublingAndKeepsEveryCount) {
  ActivationHistogram h(16);
  h.add(values({0.5f, -1.0f, 0.0f}));
  EXPECT_DOUBLE_EQ(h.range(), 1.0);
  h.add(values({3.5f, -0.25f}));  // needs range 4: doubles twice
  EXPECT_DOUBLE_EQ(h.range(), 4.0);
  double total = 0;
  for (double c : h.magnitudes()) total += c;
  EXPECT_EQ(total, 5.0);
  EXPECT_EQ(h.count(), 5);
  EXPECT_EQ(h.zeros(), 1);
  EXPECT_FLOAT_EQ(h.min(), -1.0f);
  EXPECT_FLOAT_EQ(h.max(), 3.5f);
  // Bin width 0.25: 0.5 -> bin 2, 3.5 -> bin 14, -0.25 -> negative bin 1; -1 was the
  // first range's top (its last bin is closed on the right) and stays in bin 3.
  EXPECT_EQ(h.positive()[2], 1.0);
  EXPECT_EQ(h.positive()[14], 1.0);
  EXPECT_EQ(h.positive()[0], 1.0);
  EXPECT_EQ(h.negative()[3], 1.0);
  EXPECT_EQ(h.negative()[1], 1.0);
  EXPECT_FALSE(h.non_negative());
}

TEST(Histogram, ChannelMeanOnAxisOne) {
  ActivationHistogram h;
  // [N=2, C=2, 2]: channel 0 holds 1,2,5,6; channel 1 holds 3,4,7,8.
  h.add(Tensor::from_vector({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  h.add(Tensor::from_vector({1, 2, 2}, {0, 0, 0, 0}));
  std::vector<float> m = h.channel_mean();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_FLOAT_EQ(m[0], 14.0f / 6);
  EXPECT_FLOAT_EQ(m[1], 22.0f / 6);
  expect_error([&] { h.add(Tensor::zeros({1, 3, 2})); }, {"3 channels", "2"});
}

TEST(Histogram, RejectsNonFiniteAndEmptyInput) {
  ActivationHistogram h;
  expect_error([&] { h.add(values({1.0f, NAN})); }, {"NaN", "element 1"});
  expect_error([&] { ActivationHistogram odd(15); }, {"even"});
  expect_error([&] { calibrate_range(ActivationHistogram(), CalibrationMethod::mse); }, {"no values"});
}

TEST(Calibrators, UniformMinMaxIsTheTrueRangeAndPercentileIsClose) {
  ActivationHistogram h;
  Rng rng(3);
  for (int b = 0; b < 5; ++b) {
    std::vector<float> batch(20000);
    for (float& x : batch) x = rng.uniform(-1.0f, 3.0f);
    if (b == 2) batch[0] = -1.0f, batch[1] = 3.0f;
    h.add(values(batch));
  }
  ClipRange mm = calibrate_range(h, CalibrationMethod::minmax);
  EXPECT_FLOAT_EQ(mm.lo, -1.0f);
  EXPECT_FLOAT_EQ(mm.hi, 3.0f);
  EXPECT_EQ(mm.params.dtype, DType::i8);
  EXPECT_NEAR(mm.params.scale, 3.0f / 127, 1e-7);
  ClipRange pc = calibrate_range(h, CalibrationMethod::percentile);
  EXPECT_NEAR(pc.hi, 3.0f, 0.01f);
  EXPECT_FLOAT_EQ(pc.lo, -pc.hi);
  // Nothing to clip in a uniform distribution: entropy and MSE stay near the top.
  EXPECT_GT(calibrate_range(h, CalibrationMethod::entropy).hi, 2.5f);
  EXPECT_GT(calibrate_range(h, CalibrationMethod::mse).hi, 2.8f);
}

TEST(Calibrators, GaussianOutliersAreClippedByAllButMinMax) {
  ActivationHistogram h;
  std::vector<float> data = gaussian_with_outliers(h);
  EXPECT_GE(calibrate_range(h, CalibrationMethod::minmax).hi, 30.0f);
  for (CalibrationMethod m : {CalibrationMethod::percentile, CalibrationMethod::entropy, CalibrationMethod::mse}) {
    ClipRange r = calibrate_range(h, m);
    EXPECT_LT(r.hi, 20.0f) << calibration_method_name(m);
    EXPECT_GT(r.hi, 3.0f) << calibration_method_name(m);
    EXPECT_EQ(r.params.dtype, DType::i8);
    EXPECT_EQ(r.params.zero_point, 0);
  }
  // The numerically best symmetric 8-bit clip on the data itself.
  double best_t = 0, best = INFINITY;
  for (double t = 2.0; t <= 31.0; t += 0.5) {
    const double e = fake_quant_mse(data, params_for_range(-t, t, DType::i8));
    if (e < best) best = e, best_t = t;
  }
  ClipRange mse = calibrate_range(h, CalibrationMethod::mse);
  EXPECT_NEAR(mse.hi, best_t, 0.25 * best_t);
  EXPECT_LE(fake_quant_mse(data, mse.params), 1.05 * best);
  EXPECT_LT(fake_quant_mse(data, mse.params), fake_quant_mse(data, calibrate_range(h, CalibrationMethod::minmax).params));
}

TEST(Calibrators, AllZeroTensorGivesUnitScale) {
  ActivationHistogram h;
  h.add(Tensor::zeros({4, 8}));
  for (CalibrationMethod m : calibration_methods()) {
    ClipRange r = calibrate_range(h, m);
    EXPECT_EQ(r.lo, 0.0f);
    EXPECT_EQ(r.hi, 0.0f);
    EXPECT_EQ(r.params.dtype, DType::u8);
    EXPECT_EQ(r.params.scale, 1.0f);
    EXPECT_EQ(r.params.zero_point, 0);
  }
}

TEST(Calibrators, SingleValueTensorIsRepresented) {
  for (float v : {3.0f, -2.0f}) {
    ActivationHistogram h;
    h.add(Tensor::full({64}, v));
    h.add(Tensor::full({64}, v));
    for (CalibrationMethod m : calibration_methods()) {
      ClipRange r = calibrate_range(h, m);
      EXPECT_EQ(r.params.dtype, v > 0 ? DType::u8 : DType::i8) << calibration_method_name(m);
      EXPECT_NEAR(std::max(std::fabs(r.lo), std::fabs(r.hi)), std::fabs(v), 0.01f * std::fabs(v))
          << calibration_method_name(m);
      EXPECT_NEAR(dequantize_value(quantize_value(v, r.params), r.params), v, 0.02f) << calibration_method_name(m);
    }
  }
}

TEST(Calibrators, NonNegativeDataGivesU8WithZeroPointZero) {
  ActivationHistogram h;
  Rng rng(11);
  std::vector<float> batch(50000);
  for (float& x : batch) x = std::max(0.0f, rng.normal());  // half exact zeros
  batch[7] = 25.0f;
  h.add(values(batch));
  EXPECT_TRUE(h.non_negative());
  for (CalibrationMethod m : calibration_methods()) {
    ClipRange r = calibrate_range(h, m);
    EXPECT_EQ(r.params.dtype, DType::u8) << calibration_method_name(m);
    EXPECT_EQ(r.params.zero_point, 0) << calibration_method_name(m);
    EXPECT_EQ(r.lo, 0.0f);
    // One outlier in 50000 costs less clipped than u8's resolution lost: MSE keeps it.
    if (m == CalibrationMethod::percentile || m == CalibrationMethod::entropy) {
      EXPECT_LT(r.hi, 10.0f) << calibration_method_name(m);
    }
  }
}

TEST(Calibrators, MethodNames) {
  for (CalibrationMethod m : calibration_methods())
    EXPECT_EQ(calibration_method_from_name(calibration_method_name(m)), m);
  expect_error([] { calibration_method_from_name("kl"); }, {"'kl'", "minmax, percentile, entropy or mse"});
  ActivationHistogram h;
  h.add(values({1.0f}));
  CalibratorOptions o;
  o.percentile = 0;
  expect_error([&] { calibrate_range(h, CalibrationMethod::percentile, o); }, {"percentile", "(0, 100]"});
}
