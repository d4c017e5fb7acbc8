#include "leanai/data/selection.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <utility>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/quotas.h"
#include "leanai/data/shuffle.h"

namespace leanai {

namespace {

// Chosen (index, band) pairs, in no particular order until the end.
using Picks = std::vector<std::pair<int64_t, int>>;

// Highest value first, ties by lower index: the order top picks in and
// hard_prune drops in.
void sort_by_value_desc(std::vector<int64_t>& idx, const std::vector<float>& value) {
  std::sort(idx.begin(), idx.end(),
            [&](int64_t a, int64_t b) { return value[a] != value[b] ? value[a] > value[b] : a < b; });
}

void pick_top(std::vector<int64_t> members, int64_t quota, const std::vector<float>& value, Picks& out) {
  sort_by_value_desc(members, value);
  for (int64_t k = 0; k < quota; ++k) out.emplace_back(members[k], -1);
}

void pick_random(std::vector<int64_t> members, int64_t quota, Rng& rng, Picks& out) {
  shuffle_in_place(members, rng);
  for (int64_t k = 0; k < quota; ++k) out.emplace_back(members[k], -1);
}

struct Band {
  int id;
  std::vector<int64_t> members;
  int64_t take = 0;
};

void pick_stratified(std::vector<int64_t> members, int64_t quota, const std::vector<float>& value,
                     const SelectConfig& cfg, Rng& rng, Picks& out) {
  if (quota == 0) return;
  sort_by_value_desc(members, value);
  // keep + hard_prune <= 1 is checked up front, so the cap only absorbs rounding.
  const int64_t m = static_cast<int64_t>(members.size());
  const int64_t drop = std::min(static_cast<int64_t>(std::floor(cfg.hard_prune * static_cast<double>(m))), m - quota);
  members.erase(members.begin(), members.begin() + drop);

  // Equal-width bands over what is left. members is sorted by value
  // descending, so each band is one contiguous run; walking it backwards
  // lists the bands in ascending id order.
  const double hi = value[members.front()], lo = value[members.back()];
  std::vector<Band> bands;
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    int b = 0;
    if (hi > lo) b = std::min(cfg.bands - 1, static_cast<int>((value[*it] - lo) / (hi - lo) * cfg.bands));
    if (bands.empty() || bands.back().id != b) bands.push_back({b, {}});
    bands.back().members.push_back(*it);
  }

  // Budget by water-filling, smallest band first (CCS's allocation). Empty
  // bands would come first and take nothing, so they are left out.
  std::vector<size_t> order(bands.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return bands[a].members.size() < bands[b].members.size(); });
  int64_t left = quota;
  for (size_t k = 0; k < order.size(); ++k) {
    Band& band = bands[order[k]];
    const int64_t bands_left = static_cast<int64_t>(order.size() - k);
    band.take = std::min(static_cast<int64_t>(band.members.size()), left / bands_left);
    left -= band.take;
  }
  // The last (largest) band absorbs the remainder, and each capped band leaves
  // no more than the larger ones can hold, so the whole quota is spent.
  check(left == 0, "stratified selection left part of the budget unspent; this is a bug in leanai, please report it");

  for (Band& band : bands) {
    shuffle_in_place(band.members, rng);
    for (int64_t k = 0; k < band.take; ++k) out.emplace_back(band.members[k], band.id);
  }
}

void check_inputs(const std::vector<float>& value, const std::vector<int64_t>& labels, const SelectConfig& cfg) {
  check(!value.empty(), "no samples to select from; compute the scores on a non-empty training set");
  check(labels.size() == value.size(), fmt::format("{} values but {} labels; selection needs one of each per sample",
                                                   value.size(), labels.size()));
  check(cfg.keep > 0 && cfg.keep <= 1,
        fmt::format("keep must be a share in (0, 1], got {}; e.g. 0.3 keeps 30% of the samples", cfg.keep));
  for (size_t i = 0; i < value.size(); ++i)
    check(std::isfinite(value[i]),
          fmt::format("the value of sample {} is {}; values must be finite, recompute the scores", i, value[i]));
  for (size_t i = 0; i < labels.size(); ++i)
    check(labels[i] >= 0, fmt::format("the label of sample {} is {}; labels must be class ids >= 0", i, labels[i]));
  if (cfg.method != SelectMethod::stratified) return;
  check(cfg.bands >= 1, fmt::format("bands must be at least 1, got {}", cfg.bands));
  check(cfg.hard_prune >= 0 && cfg.hard_prune < 1,
        fmt::format("hard_prune must be a share in [0, 1), got {}; e.g. 0.1 drops the 10% highest values",
                    cfg.hard_prune));
  // A little slack so that e.g. keep 0.7 with hard_prune 0.3 is allowed.
  check(cfg.keep + cfg.hard_prune <= 1 + 1e-9,
        fmt::format("keep {} plus hard_prune {} exceed 1: too few samples would be left to keep; lower one of them",
                    cfg.keep, cfg.hard_prune));
}

}  // namespace

SelectMethod parse_select_method(const std::string& s) {
  if (s == "top") return SelectMethod::top;
  if (s == "stratified") return SelectMethod::stratified;
  if (s == "random") return SelectMethod::random;
  throw Error("unknown selection method '" + s + "'; choose top, stratified or random");
}

Selection select_samples(const std::vector<float>& value, const std::vector<int64_t>& labels, const SelectConfig& cfg) {
  check_inputs(value, labels, cfg);
  const int64_t n = static_cast<int64_t>(value.size());
  const int64_t budget = std::llround(cfg.keep * static_cast<double>(n));
  check(budget >= 1, fmt::format("keep {} of {} samples rounds to none; raise keep", cfg.keep, n));

  // The groups each method runs in: one per class present, or everything.
  std::vector<std::vector<int64_t>> groups;
  std::vector<int64_t> quotas;
  if (cfg.class_balance) {
    std::map<int64_t, std::vector<int64_t>> by_class;  // a map: class ids may be sparse
    for (int64_t i = 0; i < n; ++i) by_class[labels[i]].push_back(i);
    std::vector<int64_t> sizes;
    for (auto& [label, members] : by_class) {
      sizes.push_back(static_cast<int64_t>(members.size()));
      groups.push_back(std::move(members));
    }
    quotas = largest_remainder_quotas(sizes, cfg.keep);  // sums to budget
  } else {
    groups.push_back(iota_indices(n));
    quotas.push_back(budget);
  }

  Rng rng(cfg.seed);
  Picks picks;
  picks.reserve(static_cast<size_t>(budget));
  for (size_t g = 0; g < groups.size(); ++g) {
    switch (cfg.method) {
      case SelectMethod::top: pick_top(std::move(groups[g]), quotas[g], value, picks); break;
      case SelectMethod::random: pick_random(std::move(groups[g]), quotas[g], rng, picks); break;
      case SelectMethod::stratified: pick_stratified(std::move(groups[g]), quotas[g], value, cfg, rng, picks); break;
    }
  }

  std::sort(picks.begin(), picks.end());
  Selection sel;
  sel.indices.reserve(picks.size());
  sel.band.reserve(picks.size());
  for (const auto& [index, band] : picks) {
    sel.indices.push_back(index);
    sel.band.push_back(band);
  }
  return sel;
}

}  // namespace leanai
