// Sample selection for data-efficient training: keep the most useful share of
// a training set, judged by a per-sample value (SampleScores::value).
//
//   SelectConfig cfg;               // stratified (CCS), keep 30%, class-balanced
//   cfg.hard_prune = 0.1;           // drop the 10% highest values first (likely mislabeled)
//   Selection sel = select_samples(scores.value, scores.label, cfg);
//   auto subset = train.subset(sel.indices);
//
// The methods:
//   top         the highest values; strong at low pruning rates, but at high
//               ones it keeps only hard samples and accuracy collapses
//   random      a seeded uniform subset: the baseline every method must beat
//   stratified  coverage-centric selection (Zheng et al., "Coverage-centric
//               coreset selection for high pruning rates", ICLR 2023): drop the
//               hard_prune share of highest values, split the remaining value
//               range into `bands` equal-width bands, then repeatedly give the
//               band with the fewest samples min(its size, budget / bands left)
//               picks, drawn at random inside the band. Easy, mid and hard
//               regions all stay covered at high pruning rates.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace leanai {

enum class SelectMethod { top, stratified, random };

// "top" | "stratified" | "random"; Error naming the choices otherwise.
SelectMethod parse_select_method(const std::string& s);

struct SelectConfig {
  SelectMethod method = SelectMethod::stratified;
  double keep = 0.3;          // share of samples kept, in (0, 1]
  // Per-class quotas proportional to class sizes (largest remainder), so the
  // subset has the full set's class mix.
  bool class_balance = true;
  int bands = 50;  // stratified: number of equal-width value bands
  // Stratified: share of the highest-value samples dropped before sampling
  // (CCS's beta: likely mislabeled or outliers), in [0, 1).
  double hard_prune = 0.0;
  uint64_t seed = 0;
};

struct Selection {
  std::vector<int64_t> indices;  // chosen sample indices, ascending
  std::vector<int> band;         // per chosen index: its score band (stratified), -1 for other methods
};

// Chooses exactly round(keep * n) samples by `value` (one per sample);
// labels[i] is the class of sample i (>= 0). With class_balance each method
// runs within each class on that class's quota (largest-remainder quotas that
// sum to the total; for stratified the bands are per class). Ties in value
// are broken by index, so top is deterministic and random and stratified
// depend only on the seed.
// Throws Error for keep outside (0, 1], a keep that rounds to no sample, a
// value/labels size mismatch, non-finite values, negative labels, empty input,
// and (stratified) bands < 1, hard_prune outside [0, 1) or keep + hard_prune > 1.
Selection select_samples(const std::vector<float>& value, const std::vector<int64_t>& labels, const SelectConfig& cfg);

}  // namespace leanai
