// Value-aware augmentation: strong mixing (CutMix or MixUp) for the samples
// worth the most (valuation's per-sample value), gentle crop and flip for the
// rest. Mixing makes a hard, informative sample harder still and smooths its
// label; applying it to easy samples mostly adds noise to what is already
// learned, so they get only the label-preserving transforms.
//
//   AugmentConfig cfg;                      // defaults: all four on, threshold 0.7
//   Tensor soft, scratch;                   // reused across batches
//   augment_batch(cfg, x, labels, values, classes, soft, scratch, rng);
//   // train on x with soft_cross_entropy(logits, soft)
//
// Every random choice comes from `rng` in a fixed order (row by row), so the
// same seed gives the same batch on every machine.
#pragma once
#include <cstdint>

#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"

namespace leanai {

struct AugmentConfig {
  bool crop = true;  int pad = 2;        // random crop: zero-pad by `pad` pixels each side, crop back to H x W at a random offset
  bool flip = true;                      // horizontal flip with probability 0.5
  bool mixup = true;  float mixup_alpha = 0.2f;   // lambda ~ Beta(alpha, alpha)
  bool cutmix = true; float cutmix_alpha = 1.0f;  // lambda ~ Beta(alpha, alpha); box area (1 - lambda) * H * W, clipped to the image; lambda then recomputed from the clipped box
  float value_threshold = 0.7f;          // rows with value >= threshold get mixing (CutMix or MixUp, each with p = 0.5 when both are on); the rest get crop/flip
  bool value_aware = true;               // false: every row gets crop/flip only (the "gentle for all" baseline)
};

// Augments one batch in place. x: {n, C, H, W} f32 (n rows). labels: n class ids.
// values: n per-row values, or nullptr (then every row counts as below the threshold).
// soft: {n, classes} f32, written with the (possibly mixed) label distribution of every row
// (one-hot for rows that were not mixed); reallocated when it is not {n, classes} f32.
// Mixing partners are other rows of the same batch, taken from the batch as it was before
// any augmentation (copied into `scratch`, which is resized only if too small, so steady
// state allocates nothing; it holds (n + 1) * C * H * W floats). Rows with mixing do not
// also get crop/flip. A batch of one row has no partner, so its row gets crop/flip.
// Throws Error for x that is not 4-D when crop, flip or cutmix would be applied (MixUp
// works on any rank), for labels outside [0, classes) and for an invalid config.
void augment_batch(const AugmentConfig& cfg, Tensor& x, const int64_t* labels, const float* values,
                   int64_t classes, Tensor& soft, Tensor& scratch, Rng& rng);

// The building blocks, public so they can be tested on hand-made cases.

// Random crop with a given offset: the pixel at (y, x) of every channel moves to
// (y + dy, x + dx); pixels shifted in from outside are 0. This is zero-padding by
// `pad` and cropping H x W at offset (pad - dy, pad - dx). dy, dx in [-pad, pad];
// tmp holds channels * h * w floats.
void random_crop(float* img, int64_t channels, int64_t h, int64_t w, int pad, int64_t dy, int64_t dx, float* tmp);
// Mirrors every row of every channel (x -> w - 1 - x).
void hflip(float* img, int64_t channels, int64_t h, int64_t w);
// MixUp of row a with row b: out = lam*a + (1-lam)*b; soft = lam*onehot(la) + (1-lam)*onehot(lb)
// (exactly one-hot when la == lb). out may be a.
void mixup_row(float* out, const float* a, const float* b, int64_t size, float lam, int64_t la, int64_t lb, float* soft,
               int64_t classes);
// CutMix: paste box [y0,y1) x [x0,x1) of b into a copy of a; returns the label weight of a:
// 1 - box_area/(h*w), and writes soft = that weight on la, the rest on lb. out may be a.
float cutmix_row(float* out, const float* a, const float* b, int64_t channels, int64_t h, int64_t w, int64_t y0,
                 int64_t y1, int64_t x0, int64_t x1, int64_t la, int64_t lb, float* soft, int64_t classes);
// Beta(alpha, alpha) via two Gamma draws (Marsaglia-Tsang; alpha < 1 with the u^(1/alpha)
// boost, taken in log space so small alphas do not underflow to 0/0). alpha > 0.
float sample_beta(Rng& rng, float alpha);

}  // namespace leanai
