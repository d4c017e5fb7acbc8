// Tests of sample selection (top, random, stratified CCS, class balance) and
// the scores / selection CSV files.
#include <gtest/gtest.h>

#include "expect_error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/quotas.h"
#include "leanai/data/score_csv.h"
#include "leanai/data/selection.h"
#include "temp_dir.h"

using namespace leanai;
using leanai::test_support::expect_error;
using leanai::test_support::TempDir;

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

SelectConfig config(SelectMethod method, double keep, bool class_balance, uint64_t seed = 0) {
  SelectConfig cfg;
  cfg.method = method;
  cfg.keep = keep;
  cfg.class_balance = class_balance;
  cfg.seed = seed;
  return cfg;
}

// An imbalanced 3-class set: 70 / 23 / 7 samples, classes interleaved, values
// drawn from a skewed (mostly low) distribution.
struct Data {
  std::vector<float> value;
  std::vector<int64_t> label;
};

Data imbalanced(uint64_t seed = 1) {
  Data d;
  Rng rng(seed);
  const int64_t sizes[3] = {70, 23, 7};
  int64_t left[3] = {sizes[0], sizes[1], sizes[2]};
  while (left[0] + left[1] + left[2] > 0) {
    const int64_t c = static_cast<int64_t>(rng.below(3));
    if (left[c] == 0) continue;
    --left[c];
    d.label.push_back(c);
    const float u = rng.uniform();
    d.value.push_back(u * u * u * 10.0f);
  }
  return d;
}

std::map<int64_t, int64_t> class_counts(const std::vector<int64_t>& idx, const std::vector<int64_t>& label) {
  std::map<int64_t, int64_t> counts;
  for (int64_t i : idx) ++counts[label[i]];
  return counts;
}

void expect_ascending_unique(const Selection& sel, int64_t n) {
  ASSERT_EQ(sel.band.size(), sel.indices.size());
  for (size_t k = 0; k < sel.indices.size(); ++k) {
    EXPECT_GE(sel.indices[k], 0);
    EXPECT_LT(sel.indices[k], n);
    if (k > 0) {
      EXPECT_LT(sel.indices[k - 1], sel.indices[k]);
    }
  }
}

const SelectMethod kMethods[] = {SelectMethod::top, SelectMethod::random, SelectMethod::stratified};

}  // namespace

// ---------------------------------------------------------------- quotas

TEST(Quotas, LargestRemainderSumsToRoundedTotal) {
  // 70*0.3 = 21, 23*0.3 = 6.9, 7*0.3 = 2.1: total 30, the 0.9 gets the extra one.
  EXPECT_EQ(largest_remainder_quotas({70, 23, 7}, 0.3), (std::vector<int64_t>{21, 7, 2}));
  // Equal remainders: the lower group first.
  EXPECT_EQ(largest_remainder_quotas({5, 5}, 0.5), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(largest_remainder_quotas({4, 0, 6}, 1.0), (std::vector<int64_t>{4, 0, 6}));
  for (double f : {0.01, 0.1, 0.25, 0.333, 0.5, 0.77, 0.999}) {
    const std::vector<int64_t> sizes = {1, 2, 3, 50, 97, 0, 13};
    const std::vector<int64_t> q = largest_remainder_quotas(sizes, f);
    int64_t sum = 0;
    for (size_t g = 0; g < q.size(); ++g) {
      EXPECT_GE(q[g], static_cast<int64_t>(std::floor(sizes[g] * f)));
      EXPECT_LE(q[g], sizes[g]);
      sum += q[g];
    }
    EXPECT_EQ(sum, std::llround(166 * f)) << f;
  }
}

// ---------------------------------------------------------------- select_samples

TEST(Select, ParseMethod) {
  EXPECT_EQ(parse_select_method("top"), SelectMethod::top);
  EXPECT_EQ(parse_select_method("stratified"), SelectMethod::stratified);
  EXPECT_EQ(parse_select_method("random"), SelectMethod::random);
  expect_error([] { parse_select_method("best"); }, {"'best'", "top", "stratified", "random"});
  expect_error([] { parse_select_method("Top"); }, {"'Top'"});
}

TEST(Select, EveryMethodKeepsExactlyRoundKeepTimesN) {
  const Data d = imbalanced();
  const int64_t n = static_cast<int64_t>(d.value.size());
  for (SelectMethod m : kMethods)
    for (bool balance : {false, true})
      for (double keep : {0.01, 0.05, 0.1, 0.3, 0.333, 0.5, 0.9, 1.0}) {
        const Selection sel = select_samples(d.value, d.label, config(m, keep, balance, 3));
        EXPECT_EQ(static_cast<int64_t>(sel.indices.size()), std::llround(keep * n))
            << "method " << static_cast<int>(m) << " balance " << balance << " keep " << keep;
        expect_ascending_unique(sel, n);
      }
}

TEST(Select, ClassBalanceGivesLargestRemainderQuotas) {
  const Data d = imbalanced();
  for (double keep : {0.1, 0.3, 0.55}) {
    const std::vector<int64_t> quota = largest_remainder_quotas({70, 23, 7}, keep);
    for (SelectMethod m : kMethods) {
      const std::map<int64_t, int64_t> got =
          class_counts(select_samples(d.value, d.label, config(m, keep, true, 9)).indices, d.label);
      for (int64_t c = 0; c < 3; ++c)
        EXPECT_EQ(got.count(c) ? got.at(c) : 0, quota[c]) << "class " << c << " keep " << keep;
    }
  }
  // Sparse class ids (no class 1) work too.
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  const std::vector<int64_t> l = {0, 0, 0, 0, 7, 7};
  const Selection sel = select_samples(v, l, config(SelectMethod::top, 0.5, true));
  EXPECT_EQ(sel.indices, (std::vector<int64_t>{2, 3, 5}));  // quotas 2 and 1
}

TEST(Select, TopPicksTheHighestValues) {
  // Class 0: indices 0..4, class 1: indices 5..9. Ties (5.0 at 1 and 3) go to the lower index.
  const std::vector<float> v = {1.0f, 5.0f, 9.0f, 5.0f, 0.5f, 8.0f, 7.0f, 2.0f, 3.0f, 0.1f};
  const std::vector<int64_t> l = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
  // Overall: 9 (2), 8 (5), 7 (6), 5 (1, before 3).
  Selection sel = select_samples(v, l, config(SelectMethod::top, 0.4, false));
  EXPECT_EQ(sel.indices, (std::vector<int64_t>{1, 2, 5, 6}));
  EXPECT_EQ(sel.band, (std::vector<int>{-1, -1, -1, -1}));
  // Balanced: two per class; class 0: 9 (2), 5 (1); class 1: 8 (5), 7 (6).
  sel = select_samples(v, l, config(SelectMethod::top, 0.4, true));
  EXPECT_EQ(sel.indices, (std::vector<int64_t>{1, 2, 5, 6}));
  // keep 0.6 balanced: three per class: class 0 adds 5 (3), class 1 adds 3 (8).
  sel = select_samples(v, l, config(SelectMethod::top, 0.6, true));
  EXPECT_EQ(sel.indices, (std::vector<int64_t>{1, 2, 3, 5, 6, 8}));
  // keep 0.6 overall: 9, 8, 7, 5, 5, 3.
  sel = select_samples(v, l, config(SelectMethod::top, 0.6, false));
  EXPECT_EQ(sel.indices, (std::vector<int64_t>{1, 2, 3, 5, 6, 8}));
  // keep 0.5 overall: 9, 8, 7, 5, 5.
  sel = select_samples(v, l, config(SelectMethod::top, 0.5, false));
  EXPECT_EQ(sel.indices, (std::vector<int64_t>{1, 2, 3, 5, 6}));
  // Balanced, quotas 3 and 2 (the tie goes to class 0). With 5..9 as class 0,
  // it takes 8, 7, 3 (5, 6, 8) and class 1 only 9, 5 (2, 1): the 5 at index 3
  // loses its place to the 3 at index 8.
  sel = select_samples(v, {1, 1, 1, 1, 1, 0, 0, 0, 0, 0}, config(SelectMethod::top, 0.5, true));
  EXPECT_EQ(sel.indices, (std::vector<int64_t>{1, 2, 5, 6, 8}));
}

TEST(Select, RandomIsSeededAndRoughlyUniform) {
  const int64_t n = 200;
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);  // values must not matter
  const std::vector<int64_t> l(n, 0);
  for (bool balance : {false, true}) {
    const Selection a = select_samples(v, l, config(SelectMethod::random, 0.25, balance, 42));
    EXPECT_EQ(select_samples(v, l, config(SelectMethod::random, 0.25, balance, 42)).indices, a.indices);
    EXPECT_NE(select_samples(v, l, config(SelectMethod::random, 0.25, balance, 43)).indices, a.indices);
    EXPECT_EQ(a.band, std::vector<int>(a.indices.size(), -1));
  }
  // Over 400 seeds each sample is kept about keep * 400 = 100 times
  // (binomial sd ~8.7; 5 sd either side), and each half of the index range
  // gets about half of the picks.
  std::vector<int> hits(n, 0);
  int64_t low_half = 0, total = 0;
  for (uint64_t seed = 0; seed < 400; ++seed)
    for (int64_t i : select_samples(v, l, config(SelectMethod::random, 0.25, false, seed)).indices) {
      ++hits[i];
      low_half += i < n / 2;
      ++total;
    }
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_GT(hits[i], 56) << i;
    EXPECT_LT(hits[i], 144) << i;
  }
  EXPECT_NEAR(static_cast<double>(low_half) / static_cast<double>(total), 0.5, 0.02);
}

TEST(Select, StratifiedCoversEveryNonEmptyBand) {
  // Skewed values: most samples low, a few high; top would keep only the high ones.
  const int64_t n = 1000;
  std::vector<float> v(n);
  Rng rng(5);
  for (auto& x : v) {
    const float u = rng.uniform();
    x = u * u * u * u;
  }
  const std::vector<int64_t> l(n, 0);
  SelectConfig cfg = config(SelectMethod::stratified, 0.1, false, 7);
  cfg.bands = 20;
  const Selection sel = select_samples(v, l, cfg);
  ASSERT_EQ(sel.indices.size(), 100u);
  expect_ascending_unique(sel, n);

  // Recompute each sample's band the same way (range of all values, no prune).
  const float lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  std::map<int, int64_t> band_size, band_picks;
  for (int64_t i = 0; i < n; ++i)
    ++band_size[std::min(19, static_cast<int>((static_cast<double>(v[i]) - lo) / (static_cast<double>(hi) - lo) * 20))];
  for (size_t k = 0; k < sel.indices.size(); ++k) {
    const float x = v[sel.indices[k]];
    const int b = std::min(19, static_cast<int>((static_cast<double>(x) - lo) / (static_cast<double>(hi) - lo) * 20));
    EXPECT_EQ(sel.band[k], b);
    ++band_picks[b];
  }
  ASSERT_LE(band_size.size(), 100u);
  for (const auto& [b, size] : band_size) {
    EXPECT_GE(band_picks[b], 1) << "band " << b << " of " << size << " samples left out";
    EXPECT_LE(band_picks[b], size);
  }
  // Water-filling: no band gets more than a fair share unless the small ones are exhausted,
  // so the largest band (the lowest values) does not take most of the budget.
  EXPECT_LT(band_picks[0], 30);
  // Picks span low to high values.
  std::vector<float> picked;
  for (int64_t i : sel.indices) picked.push_back(v[i]);
  EXPECT_LT(*std::min_element(picked.begin(), picked.end()), lo + 0.05f * (hi - lo));
  EXPECT_GT(*std::max_element(picked.begin(), picked.end()), lo + 0.95f * (hi - lo));
  // Top, by contrast, keeps none of the low region.
  const Selection top = select_samples(v, l, config(SelectMethod::top, 0.1, false));
  for (int64_t i : top.indices) EXPECT_GT(v[i], lo + 0.05f * (hi - lo));
}

TEST(Select, StratifiedAllocationIsWaterFilling) {
  // Bands of sizes 1, 2, 10 and 50 (values 0, 1, 2, 3 with 4 bands), budget 20:
  // smallest first: min(1, 20/4=5) = 1, min(2, 19/3=6) = 2, min(10, 17/2=8) = 8, min(50, 9) = 9.
  std::vector<float> v;
  for (auto [x, count] : {std::pair{0.0f, 1}, {1.0f, 2}, {2.0f, 10}, {3.0f, 50}})
    for (int k = 0; k < count; ++k) v.push_back(x);
  const std::vector<int64_t> l(v.size(), 0);
  SelectConfig cfg = config(SelectMethod::stratified, 20.0 / 63.0, false, 1);
  cfg.bands = 4;
  const Selection sel = select_samples(v, l, cfg);
  std::map<int, int> per_band;
  for (size_t k = 0; k < sel.indices.size(); ++k) {
    EXPECT_EQ(sel.band[k], static_cast<int>(v[sel.indices[k]]));
    ++per_band[sel.band[k]];
  }
  EXPECT_EQ(per_band, (std::map<int, int>{{0, 1}, {1, 2}, {2, 8}, {3, 9}}));
}

TEST(Select, StratifiedSpendsTheWholeBudgetOnRandomInputs) {
  // Many shapes: few or many bands, heavy ties, skew, pruning up to keep + hard_prune = 1.
  Rng rng(99);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng.below(300));
    const int levels = 1 + static_cast<int>(rng.below(40));  // few levels: many ties
    std::vector<float> v(n);
    std::vector<int64_t> l(n);
    const int64_t classes = 1 + static_cast<int64_t>(rng.below(5));
    for (int64_t i = 0; i < n; ++i) {
      const float u = rng.uniform();
      v[i] = std::floor(u * u * static_cast<float>(levels));
      l[i] = static_cast<int64_t>(rng.below(static_cast<uint64_t>(classes)));
    }
    SelectConfig cfg = config(SelectMethod::stratified, 0.01 + 0.99 * rng.uniform(), rng.below(2) == 1, trial);
    cfg.bands = 1 + static_cast<int>(rng.below(60));
    cfg.hard_prune = (1.0 - cfg.keep) * rng.uniform();
    if (std::llround(cfg.keep * static_cast<double>(n)) < 1) continue;
    const Selection sel = select_samples(v, l, cfg);
    EXPECT_EQ(static_cast<int64_t>(sel.indices.size()), std::llround(cfg.keep * static_cast<double>(n))) << trial;
    expect_ascending_unique(sel, n);
  }
}

TEST(Select, StratifiedIsSeededAndBalancedPerClass) {
  const Data d = imbalanced(3);
  SelectConfig cfg = config(SelectMethod::stratified, 0.3, true, 11);
  cfg.bands = 5;
  const Selection a = select_samples(d.value, d.label, cfg);
  EXPECT_EQ(select_samples(d.value, d.label, cfg).indices, a.indices);
  cfg.seed = 12;
  EXPECT_NE(select_samples(d.value, d.label, cfg).indices, a.indices);
  for (int b : a.band) {
    EXPECT_GE(b, 0);
    EXPECT_LT(b, 5);
  }
  // Bands are per class: each class's own highest value lands in band 4 when its quota allows.
  std::map<int64_t, std::set<int>> bands_of_class;
  for (size_t k = 0; k < a.indices.size(); ++k) bands_of_class[d.label[a.indices[k]]].insert(a.band[k]);
  EXPECT_TRUE(bands_of_class[0].count(4));
  EXPECT_TRUE(bands_of_class[1].count(4));
}

TEST(Select, HardPruneExcludesTheTopValues) {
  const int64_t n = 200;
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 37) % n);  // a permutation of 0..199
  const std::vector<int64_t> l(n, 0);
  SelectConfig cfg = config(SelectMethod::stratified, 0.5, false, 2);
  cfg.hard_prune = 0.1;  // drops values 180..199
  cfg.bands = 10;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    cfg.seed = seed;
    const Selection sel = select_samples(v, l, cfg);
    ASSERT_EQ(sel.indices.size(), 100u);
    float top_kept = -1;
    for (int64_t i : sel.indices) top_kept = std::max(top_kept, v[i]);
    EXPECT_LT(top_kept, 180.0f);
    EXPECT_GE(top_kept, 162.0f);  // the top remaining band [162, 180) is still covered
  }
  // With balance, per class: class c's top 10% are dropped.
  std::vector<int64_t> two(n);
  for (int64_t i = 0; i < n; ++i) two[i] = i % 2;
  cfg.class_balance = true;
  const Selection sel = select_samples(v, two, cfg);
  ASSERT_EQ(sel.indices.size(), 100u);
  for (int64_t c = 0; c < 2; ++c) {
    std::vector<float> vc;
    for (int64_t i = c; i < n; i += 2) vc.push_back(v[i]);
    std::sort(vc.rbegin(), vc.rend());
    for (int64_t i : sel.indices) {
      if (two[i] != c) continue;
      EXPECT_LT(v[i], vc[9]) << "class " << c;  // vc[0..9] are its top 10%
    }
  }
  // keep + hard_prune may reach 1 exactly: everything not pruned is kept.
  cfg.class_balance = false;
  cfg.keep = 0.7;
  cfg.hard_prune = 0.3;
  const Selection all = select_samples(v, l, cfg);
  ASSERT_EQ(all.indices.size(), 140u);
  for (int64_t i : all.indices) EXPECT_LT(v[i], 140.0f);
}

TEST(Select, EqualValuesAndSingleSample) {
  const std::vector<float> same(10, 0.25f);
  const std::vector<int64_t> l(10, 0);
  const Selection sel = select_samples(same, l, config(SelectMethod::stratified, 0.3, true, 1));
  EXPECT_EQ(sel.indices.size(), 3u);
  EXPECT_EQ(sel.band, (std::vector<int>{0, 0, 0}));
  for (SelectMethod m : kMethods) {
    const Selection one = select_samples({1.5f}, {2}, config(m, 1.0, true));
    EXPECT_EQ(one.indices, (std::vector<int64_t>{0}));
  }
}

TEST(Select, Errors) {
  const std::vector<float> v = {0.1f, 0.2f, 0.3f, 0.4f};
  const std::vector<int64_t> l = {0, 1, 0, 1};
  expect_error([&] { select_samples(v, l, config(SelectMethod::top, 0.0, true)); }, {"keep", "(0, 1]", "got 0"});
  expect_error([&] { select_samples(v, l, config(SelectMethod::random, 1.5, true)); }, {"keep", "(0, 1]", "1.5"});
  expect_error([&] { select_samples(v, l, config(SelectMethod::random, -0.2, true)); }, {"keep"});
  expect_error([&] { select_samples(v, l, config(SelectMethod::random, std::nan(""), true)); }, {"keep"});
  expect_error([&] { select_samples(v, l, config(SelectMethod::top, 0.1, true)); }, {"rounds to none"});
  expect_error([&] { select_samples(v, {0, 1, 0}, config(SelectMethod::top, 0.5, true)); }, {"4 values", "3 labels"});
  expect_error([&] { select_samples({}, {}, config(SelectMethod::top, 0.5, true)); }, {"no samples"});
  std::vector<float> bad = v;
  bad[2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { select_samples(bad, l, config(SelectMethod::stratified, 0.5, true)); },
               {"sample 2", "nan", "finite"});
  bad[2] = std::numeric_limits<float>::infinity();
  expect_error([&] { select_samples(bad, l, config(SelectMethod::top, 0.5, true)); }, {"sample 2", "inf"});
  expect_error([&] { select_samples(v, {0, -1, 0, 1}, config(SelectMethod::top, 0.5, true)); }, {"sample 1", "label"});
  SelectConfig cfg = config(SelectMethod::stratified, 0.5, true);
  cfg.bands = 0;
  expect_error([&] { select_samples(v, l, cfg); }, {"bands"});
  cfg.bands = 10;
  cfg.hard_prune = 1.0;
  expect_error([&] { select_samples(v, l, cfg); }, {"hard_prune", "[0, 1)"});
  cfg.hard_prune = 0.6;
  expect_error([&] { select_samples(v, l, cfg); }, {"keep 0.5", "hard_prune 0.6", "exceed 1"});
}

// ---------------------------------------------------------------- CSV files

namespace {

SampleScores example_scores(int64_t n) {
  SampleScores s;
  s.resize(n);
  Rng rng(17);
  for (int64_t i = 0; i < n; ++i) {
    s.label[i] = static_cast<int64_t>(rng.below(4));
    s.entropy[i] = rng.uniform() * 2.3f;
    s.el2n[i] = rng.uniform() * 1.4142135f;
    s.grad_norm[i] = rng.uniform() * 37.0f + 1e-7f;
    s.forgetting[i] = static_cast<float>(rng.below(6));
    s.value[i] = rng.normal();
  }
  if (n < 7) return s;
  // Values that are hard to round-trip: extremes, subnormals, negative zero.
  s.value[0] = std::numeric_limits<float>::max();
  s.value[1] = std::numeric_limits<float>::denorm_min();
  s.value[2] = std::numeric_limits<float>::min();
  s.value[3] = -0.0f;
  s.entropy[4] = 0.1f;
  s.el2n[5] = 1.0f / 3.0f;
  s.grad_norm[6] = -std::numeric_limits<float>::max();
  return s;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(ScoreCsv, RoundTripIsBitExact) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  const SampleScores s = example_scores(500);
  write_scores_csv(path, s);
  EXPECT_EQ(dir.listing(), (std::set<std::string>{"scores.csv"}));  // no temp file left
  const std::string text = read_text(path);
  EXPECT_EQ(text.substr(0, text.find('\n')), "index,label,entropy,el2n,grad_norm,forgetting,value");

  for (int64_t expected : {int64_t{-1}, int64_t{500}}) {
    const SampleScores r = read_scores_csv(path, expected);
    EXPECT_EQ(r.label, s.label);
    EXPECT_TRUE(bit_equal(r.entropy, s.entropy));
    EXPECT_TRUE(bit_equal(r.el2n, s.el2n));
    EXPECT_TRUE(bit_equal(r.grad_norm, s.grad_norm));
    EXPECT_TRUE(bit_equal(r.forgetting, s.forgetting));
    EXPECT_TRUE(bit_equal(r.value, s.value));
  }
  EXPECT_TRUE(std::signbit(read_scores_csv(path).value[3]));

  // Overwriting replaces the file whole.
  write_scores_csv(path, example_scores(3));
  EXPECT_EQ(read_scores_csv(path).size(), 3);
}

TEST(ScoreCsv, ReadErrorsNameTheLine) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  const std::string header = "index,label,entropy,el2n,grad_norm,forgetting,value\n";
  const std::string row0 = "0,1,0.5,0.25,1.5,0,0.75\n";
  const std::string row1 = "1,0,0.1,0.2,0.3,2,0.4\n";

  write_text(path, header + row0 + "1,0,0.1,0.2\n");  // truncated row
  expect_error([&] { read_scores_csv(path); }, {path, "line 3", "4 fields, expected 7", "recompute"});

  write_text(path, header + row0 + "1,0,0.1,0.2x,0.3,2,0.4\n");
  expect_error([&] { read_scores_csv(path); }, {path, "line 3", "el2n", "'0.2x'", "not a finite number"});
  write_text(path, header + row0 + "1,0,0.1,0.2,0.3,2,nan\n");
  expect_error([&] { read_scores_csv(path); }, {path, "line 3", "value", "'nan'"});
  write_text(path, header + row0 + "1,0,0.1,0.2,,2,0.4\n");
  expect_error([&] { read_scores_csv(path); }, {path, "line 3", "grad_norm", "''"});
  write_text(path, header + row0 + "1,cat,0.1,0.2,0.3,2,0.4\n");
  expect_error([&] { read_scores_csv(path); }, {path, "line 3", "label 'cat'"});

  write_text(path, "index,label,entropy,el2n,grad_norm,value\n" + row0);
  expect_error([&] { read_scores_csv(path); }, {path, "line 1", "header", header.substr(0, header.size() - 1)});
  write_text(path, "");
  expect_error([&] { read_scores_csv(path); }, {path, "empty"});
  write_text(path, header);
  expect_error([&] { read_scores_csv(path); }, {path, "no sample rows"});

  write_text(path, header + row1 + row0);  // out of order
  expect_error([&] { read_scores_csv(path); }, {path, "line 2", "index '1', expected 0", "in order"});
  write_text(path, header + row0 + "2,0,0.1,0.2,0.3,2,0.4\n");  // gap
  expect_error([&] { read_scores_csv(path); }, {path, "line 3", "index '2', expected 1"});

  write_text(path, header + row0 + row1);
  EXPECT_EQ(read_scores_csv(path, 2).size(), 2);
  expect_error([&] { read_scores_csv(path, 3); }, {path, "2 samples", "has 3", "different data set"});

  expect_error([&] { read_scores_csv(dir.file("missing.csv")); }, {dir.file("missing.csv"), "no such file"});

  // \r\n line ends and blanks around fields are fine.
  write_text(path, "index,label,entropy,el2n,grad_norm,forgetting,value\r\n0, 1 ,0.5,0.25,1.5,0,0.75\r\n");
  const SampleScores s = read_scores_csv(path, 1);
  EXPECT_EQ(s.label[0], 1);
  EXPECT_EQ(s.value[0], 0.75f);
}

TEST(ScoreCsv, WriteRejectsWhatCouldNotBeReadBack) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  SampleScores s = example_scores(4);
  s.el2n[2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { write_scores_csv(path, s); }, {"el2n", "sample 2", "finite"});
  s = example_scores(4);
  s.label[1] = -1;
  expect_error([&] { write_scores_csv(path, s); }, {"label", "sample 1"});
  s = example_scores(4);
  s.value.pop_back();
  expect_error([&] { write_scores_csv(path, s); }, {"value", "3 rows", "4"});
  EXPECT_TRUE(dir.listing().empty());
}

TEST(ScoreCsv, SelectionCsvContents) {
  TempDir dir;
  const std::string path = dir.file("selection.csv");
  SampleScores s;
  s.resize(5);
  s.label = {0, 1, 1, 0, 2};
  s.value = {0.5f, 0.1f, 1.0f / 3.0f, -2.0f, 7.0f};
  Selection sel;
  sel.indices = {1, 2, 4};
  sel.band = {0, 3, -1};
  write_selection_csv(path, sel, s);
  EXPECT_EQ(read_text(path), "index,label,value,band\n1,1,0.100000001,0\n2,1,0.333333343,3\n4,2,7,-1\n");

  // From select_samples directly.
  const Selection top = select_samples(s.value, s.label, config(SelectMethod::top, 0.4, false));
  write_selection_csv(path, top, s);
  EXPECT_EQ(read_text(path), "index,label,value,band\n0,0,0.5,-1\n4,2,7,-1\n");

  sel.indices = {1, 5};
  sel.band = {0, 0};
  expect_error([&] { write_selection_csv(path, sel, s); }, {"index 5", "5 scored samples"});
  sel.band = {0};
  expect_error([&] { write_selection_csv(path, sel, s); }, {"2 indices", "1 bands"});
}
