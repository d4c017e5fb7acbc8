// Tests of value-aware augmentation (data/augment.h): the building blocks on
// hand-made images, then augment_batch's contract (who mixes, with whom, the
// soft labels, reproducibility, no steady-state allocation, errors), then the
// Beta sampler's moments.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"
#include "leanai/data/augment.h"

using namespace leanai;

namespace {

std::vector<float> iota_image(int64_t n, float start = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

// ---------------------------------------------------------------------------
// random_crop
// ---------------------------------------------------------------------------

TEST(RandomCrop, ShiftMovesPixelsAndZeroFills) {
  // 1 x 3 x 3 image 1..9, shifted one down and one left.
  std::vector<float> img = iota_image(9), tmp(9);
  random_crop(img.data(), 1, 3, 3, 1, 1, -1, tmp.data());
  const std::vector<float> expect = {0, 0, 0,  //
                                     2, 3, 0,  //
                                     5, 6, 0};
  EXPECT_EQ(img, expect);
}

TEST(RandomCrop, MatchesPadThenCropOnEveryChannel) {
  // Zero-pad by 2, crop H x W at offset (pad - dy, pad - dx): the definition.
  const int64_t C = 2, H = 4, W = 5;
  const int pad = 2;
  for (int64_t dy = -pad; dy <= pad; ++dy)
    for (int64_t dx = -pad; dx <= pad; ++dx) {
      SCOPED_TRACE("dy " + std::to_string(dy) + " dx " + std::to_string(dx));
      const std::vector<float> orig = iota_image(C * H * W);
      std::vector<float> img = orig, tmp(C * H * W, -7.0f);
      random_crop(img.data(), C, H, W, pad, dy, dx, tmp.data());
      const int64_t PH = H + 2 * pad, PW = W + 2 * pad;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t x = 0; x < W; ++x) {
            const int64_t py = y + pad - dy, px = x + pad - dx;  // in the padded image
            const bool inside = py >= pad && py < PH - pad && px >= pad && px < PW - pad;
            const float want = inside ? orig[(c * H + py - pad) * W + px - pad] : 0.0f;
            ASSERT_EQ(img[(c * H + y) * W + x], want) << "c " << c << " y " << y << " x " << x;
          }
    }
}

TEST(RandomCrop, ShiftLargerThanImageGivesZeros) {
  std::vector<float> img = iota_image(4), tmp(4);
  random_crop(img.data(), 1, 2, 2, 3, 2, 0, tmp.data());
  EXPECT_EQ(img, std::vector<float>(4, 0.0f));
}

TEST(RandomCrop, ShiftOutsidePadThrows) {
  std::vector<float> img = iota_image(9), tmp(9);
  EXPECT_THROW(random_crop(img.data(), 1, 3, 3, 1, 2, 0, tmp.data()), Error);
  EXPECT_THROW(random_crop(img.data(), 1, 3, 3, 1, 0, -2, tmp.data()), Error);
  EXPECT_EQ(img, iota_image(9));
}

// ---------------------------------------------------------------------------
// hflip
// ---------------------------------------------------------------------------

TEST(HFlip, FlipsAKnownImage) {
  // 2 channels of 2 x 3.
  std::vector<float> img = iota_image(12);
  hflip(img.data(), 2, 2, 3);
  const std::vector<float> expect = {3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10};
  EXPECT_EQ(img, expect);
}

TEST(HFlip, TwiceIsIdentity) {
  for (int64_t w : {1, 4, 5}) {
    Rng rng(w);
    std::vector<float> img(3 * 6 * w);
    for (float& v : img) v = rng.normal();
    const std::vector<float> orig = img;
    hflip(img.data(), 3, 6, w);
    if (w > 1) {
      EXPECT_NE(img, orig);
    }
    hflip(img.data(), 3, 6, w);
    EXPECT_EQ(img, orig) << "w " << w;
  }
}

// ---------------------------------------------------------------------------
// mixup_row
// ---------------------------------------------------------------------------

TEST(MixUp, ValuesAndSoftLabelsOfTwoRows) {
  const std::vector<float> a = {1, 2, 3}, b = {5, 6, 7};
  std::vector<float> out(3), soft(3, -1.0f);
  mixup_row(out.data(), a.data(), b.data(), 3, 0.25f, 0, 2, soft.data(), 3);
  EXPECT_EQ(out, (std::vector<float>{4, 5, 6}));  // 0.25 a + 0.75 b, exact in binary
  EXPECT_EQ(soft, (std::vector<float>{0.25f, 0.0f, 0.75f}));
}

TEST(MixUp, SameLabelPartnerGivesOneHot) {
  const std::vector<float> a = {1, -2}, b = {0.5f, 4};
  std::vector<float> out(2), soft(4, -1.0f);
  mixup_row(out.data(), a.data(), b.data(), 2, 0.3f, 1, 1, soft.data(), 4);
  EXPECT_EQ(soft, (std::vector<float>{0, 1, 0, 0}));
  for (int i = 0; i < 2; ++i) EXPECT_FLOAT_EQ(out[i], 0.3f * a[i] + 0.7f * b[i]);
}

TEST(MixUp, InPlaceAndErrors) {
  std::vector<float> a = {2, 4}, soft(2);
  const std::vector<float> b = {0, 0};
  mixup_row(a.data(), a.data(), b.data(), 2, 0.5f, 0, 1, soft.data(), 2);
  EXPECT_EQ(a, (std::vector<float>{1, 2}));
  EXPECT_THROW(mixup_row(a.data(), a.data(), b.data(), 2, 1.5f, 0, 1, soft.data(), 2), Error);
  EXPECT_THROW(mixup_row(a.data(), a.data(), b.data(), 2, 0.5f, 0, 2, soft.data(), 2), Error);
}

// ---------------------------------------------------------------------------
// cutmix_row
// ---------------------------------------------------------------------------

TEST(CutMix, LabelWeightAndPixelSources) {
  const int64_t C = 2, H = 4, W = 5;
  const std::vector<float> a = iota_image(C * H * W, 1.0f), b = iota_image(C * H * W, -100.0f);
  std::vector<float> out(C * H * W), soft(3, -1.0f);
  // Box rows [1, 3), columns [2, 5): 6 of 20 pixels.
  const float lam = cutmix_row(out.data(), a.data(), b.data(), C, H, W, 1, 3, 2, 5, 2, 0, soft.data(), 3);
  EXPECT_FLOAT_EQ(lam, 1.0f - 6.0f / 20.0f);
  EXPECT_FLOAT_EQ(soft[2], lam);
  EXPECT_FLOAT_EQ(soft[0], 1.0f - lam);
  EXPECT_EQ(soft[1], 0.0f);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const int64_t i = (c * H + y) * W + x;
        const bool in_box = y >= 1 && y < 3 && x >= 2 && x < 5;
        EXPECT_EQ(out[i], in_box ? b[i] : a[i]) << "c " << c << " y " << y << " x " << x;
      }
}

TEST(CutMix, EmptyFullAndSameLabelBoxes) {
  const std::vector<float> a = iota_image(6, 1.0f), b = iota_image(6, 50.0f);
  std::vector<float> out(6), soft(2);
  EXPECT_EQ(cutmix_row(out.data(), a.data(), b.data(), 1, 2, 3, 1, 1, 0, 3, 0, 1, soft.data(), 2), 1.0f);
  EXPECT_EQ(out, a);
  EXPECT_EQ(soft, (std::vector<float>{1, 0}));
  EXPECT_EQ(cutmix_row(out.data(), a.data(), b.data(), 1, 2, 3, 0, 2, 0, 3, 0, 1, soft.data(), 2), 0.0f);
  EXPECT_EQ(out, b);
  EXPECT_EQ(soft, (std::vector<float>{0, 1}));
  // Same label on both sides: one-hot whatever the box.
  cutmix_row(out.data(), a.data(), b.data(), 1, 2, 3, 0, 1, 0, 1, 1, 1, soft.data(), 2);
  EXPECT_EQ(soft, (std::vector<float>{0, 1}));
}

TEST(CutMix, BoxOutsideImageThrows) {
  const std::vector<float> a(6), b(6);
  std::vector<float> out(6), soft(2);
  EXPECT_THROW(cutmix_row(out.data(), a.data(), b.data(), 1, 2, 3, 0, 3, 0, 1, 0, 1, soft.data(), 2), Error);
  EXPECT_THROW(cutmix_row(out.data(), a.data(), b.data(), 1, 2, 3, 1, 0, 0, 1, 0, 1, soft.data(), 2), Error);
  EXPECT_THROW(cutmix_row(out.data(), a.data(), b.data(), 1, 2, 3, 0, 1, -1, 1, 0, 1, soft.data(), 2), Error);
}

// ---------------------------------------------------------------------------
// augment_batch
// ---------------------------------------------------------------------------

constexpr int64_t kC = 2, kH = 6, kW = 6, kRow = kC * kH * kW;

// n rows of N(0, 1) images with label = row index (so a soft row names the
// mixing partner) and values alternating high (even rows) and low (odd rows).
struct Batch {
  Tensor x, soft, scratch;
  std::vector<int64_t> labels;
  std::vector<float> values;
  Tensor original;
  int64_t classes;

  explicit Batch(int64_t n, uint64_t seed = 1, Shape shape = {}) : classes(n) {
    if (shape.empty()) shape = {n, kC, kH, kW};
    x = Tensor::empty(shape);
    Rng rng(seed);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng.normal();
    original = x.clone();
    for (int64_t r = 0; r < n; ++r) {
      labels.push_back(r);
      values.push_back(r % 2 == 0 ? 0.9f : 0.1f);
    }
  }
  void run(const AugmentConfig& cfg, Rng& rng, bool with_values = true) {
    augment_batch(cfg, x, labels.data(), with_values ? values.data() : nullptr, classes, soft, scratch, rng);
  }
  const float* row(int64_t r) const { return x.data<float>() + r * (x.numel() / x.dim(0)); }
  const float* before(int64_t r) const { return original.data<float>() + r * (x.numel() / x.dim(0)); }
  const float* soft_row(int64_t r) const { return soft.data<float>() + r * classes; }
};

// True when row r of b is a crop (some shift within pad) and/or flip of its original.
bool is_crop_flip_of_original(const Batch& b, int64_t r, int pad) {
  std::vector<float> img(kRow), tmp(kRow);
  for (int64_t dy = -pad; dy <= pad; ++dy)
    for (int64_t dx = -pad; dx <= pad; ++dx)
      for (bool flipped : {false, true}) {
        std::copy(b.before(r), b.before(r) + kRow, img.begin());
        random_crop(img.data(), kC, kH, kW, pad, dy, dx, tmp.data());
        if (flipped) hflip(img.data(), kC, kH, kW);
        if (std::equal(img.begin(), img.end(), b.row(r))) return true;
      }
  return false;
}

bool is_one_hot(const Batch& b, int64_t r, int64_t label) {
  for (int64_t c = 0; c < b.classes; ++c)
    if (b.soft_row(r)[c] != (c == label ? 1.0f : 0.0f)) return false;
  return true;
}

// Checks that mixed row r is MixUp or CutMix of its original with another row's
// original, as its soft labels say (label = row index). Returns "mixup",
// "cutmix" or "" when lam rounded to 0 or 1 (the row is one of the two sources).
std::string check_mixed_row(const Batch& b, int64_t r) {
  const int64_t n = b.x.dim(0), row = b.x.numel() / n;
  std::vector<int64_t> nonzero;
  for (int64_t c = 0; c < b.classes; ++c)
    if (b.soft_row(r)[c] != 0.0f) nonzero.push_back(c);
  if (nonzero.size() == 1) {  // lam rounded to 1 (this row) or 0 (the partner alone)
    EXPECT_EQ(b.soft_row(r)[nonzero[0]], 1.0f);
    EXPECT_TRUE(std::equal(b.row(r), b.row(r) + row, b.before(nonzero[0]))) << "row " << r;
    return "";
  }
  EXPECT_EQ(nonzero.size(), 2u) << "row " << r;
  if (nonzero.size() != 2) return "";
  const int64_t j = nonzero[0] == r ? nonzero[1] : nonzero[0];
  EXPECT_NE(j, r);
  const float lam = b.soft_row(r)[r];
  const float* a = b.before(r);
  const float* p = b.before(j);
  const float* out = b.row(r);
  // CutMix: every value from one source, the partner's share being 1 - lam.
  int64_t from_a = 0, from_p = 0;
  for (int64_t i = 0; i < row; ++i) {
    from_a += out[i] == a[i];
    from_p += out[i] == p[i];
  }
  if (from_a + from_p == row && from_a > 0 && from_p > 0 && b.x.rank() == 4) {
    EXPECT_NEAR(static_cast<double>(from_p) / row, 1.0 - lam, 1e-6) << "row " << r;
    return "cutmix";
  }
  for (int64_t i = 0; i < row; ++i) EXPECT_NEAR(out[i], lam * a[i] + (1.0f - lam) * p[i], 1e-5) << "row " << r << " i " << i;
  return "mixup";
}

TEST(AugmentBatch, SoftRowsAreDistributionsAndLowRowsKeepOneHot) {
  AugmentConfig cfg;
  int mixed_rows = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    Batch b(8, seed);
    Rng rng(seed);
    b.run(cfg, rng);
    ASSERT_EQ(b.soft.shape(), (Shape{8, 8}));
    for (int64_t r = 0; r < 8; ++r) {
      double sum = 0;
      for (int64_t c = 0; c < 8; ++c) {
        EXPECT_GE(b.soft_row(r)[c], 0.0f);
        sum += b.soft_row(r)[c];
      }
      EXPECT_NEAR(sum, 1.0, 1e-6) << "seed " << seed << " row " << r;
      if (b.values[r] < cfg.value_threshold) {
        EXPECT_TRUE(is_one_hot(b, r, r)) << "seed " << seed << " row " << r;
        EXPECT_TRUE(is_crop_flip_of_original(b, r, cfg.pad)) << "seed " << seed << " row " << r;
      } else {
        mixed_rows += !is_one_hot(b, r, r);
      }
    }
  }
  EXPECT_GT(mixed_rows, 20);  // 40 high-value rows, nearly all visibly mixed
}

TEST(AugmentBatch, HighRowsMixWithOriginalPartners) {
  // All three mixing setups; every high-value row is MixUp or CutMix of its own
  // original with another row's original, never also cropped or flipped.
  struct Setup {
    bool mixup, cutmix;
  };
  for (Setup s : {Setup{true, true}, Setup{true, false}, Setup{false, true}}) {
    SCOPED_TRACE(std::string(s.mixup ? "mixup " : "") + (s.cutmix ? "cutmix" : ""));
    AugmentConfig cfg;
    cfg.mixup = s.mixup;
    cfg.cutmix = s.cutmix;
    int mixups = 0, cutmixes = 0;
    for (uint64_t seed = 0; seed < 10; ++seed) {
      Batch b(6, 100 + seed);
      for (float& v : b.values) v = 0.7f;  // at the threshold counts as high
      Rng rng(seed);
      b.run(cfg, rng);
      for (int64_t r = 0; r < 6; ++r) {
        const std::string kind = check_mixed_row(b, r);
        mixups += kind == "mixup";
        cutmixes += kind == "cutmix";
      }
    }
    EXPECT_EQ(mixups > 10, s.mixup) << mixups << " mixup rows";
    EXPECT_EQ(cutmixes > 10, s.cutmix) << cutmixes << " cutmix rows";
    if (!s.mixup) {
      EXPECT_EQ(mixups, 0);
    }
    if (!s.cutmix) {
      EXPECT_EQ(cutmixes, 0);
    }
  }
}

TEST(AugmentBatch, ValueAwareOffNeverMixes) {
  AugmentConfig cfg;
  cfg.value_aware = false;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    Batch b(6, seed);
    for (float& v : b.values) v = 1.0f;
    Rng rng(seed);
    b.run(cfg, rng);
    for (int64_t r = 0; r < 6; ++r) {
      EXPECT_TRUE(is_one_hot(b, r, r)) << "row " << r;
      EXPECT_TRUE(is_crop_flip_of_original(b, r, cfg.pad)) << "row " << r;
    }
  }
}

TEST(AugmentBatch, NullValuesNeverMix) {
  AugmentConfig cfg;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    Batch b(6, seed);
    Rng rng(seed);
    b.run(cfg, rng, false);
    for (int64_t r = 0; r < 6; ++r) {
      EXPECT_TRUE(is_one_hot(b, r, r)) << "row " << r;
      EXPECT_TRUE(is_crop_flip_of_original(b, r, cfg.pad)) << "row " << r;
    }
  }
}

TEST(AugmentBatch, CropAndFlipOffLeaveLowRowsUntouched) {
  AugmentConfig cfg;
  cfg.crop = false;
  cfg.flip = false;
  Batch b(6);
  Rng rng(3);
  b.run(cfg, rng);
  for (int64_t r = 1; r < 6; r += 2) EXPECT_TRUE(std::equal(b.row(r), b.row(r) + kRow, b.before(r))) << "row " << r;
}

TEST(AugmentBatch, SameSeedSameOutput) {
  AugmentConfig cfg;
  Batch a(8, 5), b(8, 5), c(8, 5);
  Rng ra(42), rb(42), rc(43);
  for (int step = 0; step < 3; ++step) {  // the rng state carries across batches
    a.run(cfg, ra);
    b.run(cfg, rb);
    c.run(cfg, rc);
    for (int64_t i = 0; i < a.x.numel(); ++i) ASSERT_EQ(a.x.data<float>()[i], b.x.data<float>()[i]) << "step " << step;
    for (int64_t i = 0; i < a.soft.numel(); ++i) ASSERT_EQ(a.soft.data<float>()[i], b.soft.data<float>()[i]) << "step " << step;
  }
  int64_t differ = 0;
  for (int64_t i = 0; i < a.x.numel(); ++i) differ += a.x.data<float>()[i] != c.x.data<float>()[i];
  EXPECT_GT(differ, 0) << "another seed should give another batch";
}

TEST(AugmentBatch, SteadyStateAllocatesNoBuffers) {
  AugmentConfig cfg;
  Batch b(8);
  Rng rng(1);
  b.run(cfg, rng);
  const void* scratch = b.scratch.raw();
  const void* soft = b.soft.raw();
  EXPECT_GE(b.scratch.numel(), 9 * kRow);
  const int64_t buffers = Buffer::created();
  for (int i = 0; i < 3; ++i) b.run(cfg, rng);
  EXPECT_EQ(Buffer::created(), buffers);
  EXPECT_EQ(b.scratch.raw(), scratch);
  EXPECT_EQ(b.soft.raw(), soft);
  // A smaller batch reuses the larger scratch.
  Batch small(4);
  small.scratch = b.scratch;
  small.run(cfg, rng);
  EXPECT_EQ(small.scratch.raw(), scratch);
}

TEST(AugmentBatch, BatchOfOneHasNoPartner) {
  AugmentConfig cfg;
  Batch b(1);
  b.values[0] = 1.0f;
  Rng rng(2);
  b.run(cfg, rng);
  EXPECT_TRUE(is_one_hot(b, 0, 0));
  EXPECT_TRUE(is_crop_flip_of_original(b, 0, cfg.pad));
}

TEST(AugmentBatch, MixUpAloneWorksOnAnyRank) {
  AugmentConfig cfg;
  cfg.crop = cfg.flip = cfg.cutmix = false;
  Batch b(6, 9, {6, 10});
  for (float& v : b.values) v = 1.0f;
  Rng rng(4);
  b.run(cfg, rng);
  for (int64_t r = 0; r < 6; ++r) {
    const std::string kind = check_mixed_row(b, r);
    EXPECT_TRUE(kind == "mixup" || kind.empty()) << kind;
  }
}

TEST(AugmentBatch, NonImageWithCropFlipOrCutMixThrows) {
  struct Setup {
    bool crop, flip, cutmix;
  };
  for (Setup s : {Setup{true, false, false}, Setup{false, true, false}, Setup{false, false, true}}) {
    AugmentConfig cfg;
    cfg.crop = s.crop;
    cfg.flip = s.flip;
    cfg.cutmix = s.cutmix;
    Batch b(4, 1, {4, 12});
    for (float& v : b.values) v = 1.0f * s.cutmix;  // cutmix needs mixing rows, crop/flip gentle ones
    Rng rng(1);
    try {
      b.run(cfg, rng);
      ADD_FAILURE() << "no error for a 2-D batch";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("[4, 12]"), std::string::npos) << e.what();
    }
    for (int64_t i = 0; i < b.x.numel(); ++i) ASSERT_EQ(b.x.data<float>()[i], b.original.data<float>()[i]) << "x changed";
  }
}

TEST(AugmentBatch, BadInputsThrow) {
  Rng rng(1);
  {
    Batch b(4);
    b.labels[2] = 4;
    EXPECT_THROW(b.run(AugmentConfig{}, rng), Error);
  }
  {
    Batch b(4);
    AugmentConfig cfg;
    cfg.pad = -1;
    EXPECT_THROW(b.run(cfg, rng), Error);
  }
  {
    Batch b(4);
    AugmentConfig cfg;
    cfg.mixup_alpha = 0.0f;
    EXPECT_THROW(b.run(cfg, rng), Error);
  }
  {
    Batch b(4);
    Tensor soft, scratch;
    EXPECT_THROW(augment_batch(AugmentConfig{}, b.x, nullptr, nullptr, 4, soft, scratch, rng), Error);
  }
}

// ---------------------------------------------------------------------------
// sample_beta
// ---------------------------------------------------------------------------

TEST(SampleBeta, MeanAndVarianceOfSymmetricBeta) {
  // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)). With 20000 draws the
  // standard error of the mean is < 0.0035 and of the variance < 2%.
  for (float alpha : {0.2f, 1.0f, 3.0f}) {
    SCOPED_TRACE("alpha " + std::to_string(alpha));
    Rng rng(7);
    const int n = 20000;
    double sum = 0, sq = 0;
    int below_quarter = 0;
    for (int i = 0; i < n; ++i) {
      const float v = sample_beta(rng, alpha);
      ASSERT_TRUE(v >= 0.0f && v <= 1.0f) << v;
      sum += v;
      sq += static_cast<double>(v) * v;
      below_quarter += v < 0.25f;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    const double want_var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
    EXPECT_NEAR(mean, 0.5, 0.015);
    EXPECT_NEAR(var, want_var, 0.1 * want_var);
    if (alpha == 1.0f) {
      EXPECT_NEAR(below_quarter / static_cast<double>(n), 0.25, 0.015);  // uniform
    }
  }
}

TEST(SampleBeta, TinyAlphaStaysFiniteAndBadAlphaThrows) {
  Rng rng(3);
  for (int i = 0; i < 2000; ++i) {
    const float v = sample_beta(rng, 0.01f);
    ASSERT_TRUE(v >= 0.0f && v <= 1.0f) << v;
  }
  EXPECT_THROW(sample_beta(rng, 0.0f), Error);
  EXPECT_THROW(sample_beta(rng, -1.0f), Error);
  EXPECT_THROW(sample_beta(rng, NAN), Error);
}

}  // namespace
