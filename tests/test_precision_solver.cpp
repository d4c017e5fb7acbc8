// The precision solver on hand-made per-layer tables: it keeps a known
// sensitive layer precise, meets size and latency budgets, never picks a
// precision slower than a higher one, and repairs a plan whose true drop
// (interactions the per-layer table cannot see) misses the budget.
#include <gtest/gtest.h>

#include "expect_error.h"
#include "leanai/quant/precision_solver.h"

using namespace leanai;
using leanai::test_support::expect_error;

namespace {

// Solver options allowing `n` full evaluations, no candidates.
SolverOptions evaluations(int n) {
  SolverOptions o;
  o.max_evaluations = n;
  return o;
}

// A layer of `params` weights whose int8 drop is `int8_drop`; bf16 halves the
// time of fp32, int8 a quarter.
LayerCosts layer(const std::string& name, double params, double int8_drop, double ms = 1.0) {
  return {name,
          {{Precision::fp32, 0.0, 4 * params, ms},
           {Precision::bf16, 0.02, 2 * params, ms / 2},
           {Precision::int8, int8_drop, params, ms / 4}}};
}

std::vector<LayerCosts> four_layers() {
  return {layer("conv1", 300, 0.05), layer("conv2", 20000, 0.04), layer("fc1", 400000, 2.5), layer("fc2", 2500, 0.1)};
}

PlanMeasure additive(const std::vector<LayerCosts>& t, const Assignment& a) { return predict(usable_options(t), a); }

}  // namespace

TEST(PrecisionSolver, KeepsTheSensitiveLayerPrecise) {
  const auto t = four_layers();
  const Assignment a = choose_precisions(t, {BudgetKind::max_drop, 0.3});
  EXPECT_EQ(a[0], Precision::int8);
  EXPECT_EQ(a[1], Precision::int8);
  EXPECT_EQ(a[2], Precision::bf16);  // int8 would cost 2.5 points; bf16 is still twice as fast as fp32
  EXPECT_EQ(a[3], Precision::int8);
  EXPECT_LE(additive(t, a).drop, 0.3);
}

TEST(PrecisionSolver, ZeroDropBudgetKeepsEveryLayerAtALosslessPrecision) {
  auto t = four_layers();
  t[0].options[1].drop = 0;  // conv1 loses nothing at bf16
  const Assignment a = choose_precisions(t, {BudgetKind::max_drop, 0.0});
  EXPECT_EQ(a[0], Precision::bf16);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_EQ(a[i], Precision::fp32);
}

TEST(PrecisionSolver, NeverPicksAPrecisionSlowerThanAHigherOne) {
  auto t = four_layers();
  t[2].options[2] = {Precision::int8, 0.0, 400000, 5.0};  // fc1 int8: lossless but slower than fp32
  const auto usable = usable_options(t);
  for (const PrecisionCost& c : usable[2].options) EXPECT_NE(c.precision, Precision::int8);
  // Even under a size budget that int8 everywhere would meet more easily.
  const Assignment a = choose_precisions(t, {BudgetKind::max_size, 0.6 * 4 * 422800});
  EXPECT_NE(a[2], Precision::int8);
}

TEST(PrecisionSolver, ASlowerTimeWithinTheNoiseStillCounts) {
  auto t = four_layers();  // 1 ms at fp32, 0.5 at bf16, 0.25 at int8 per layer
  t[1].options[2].latency_ms = 0.52;  // conv2 int8 slower than bf16 by less than the noise
  t[3].options[2].latency_ms = 0.55;  // fc2 int8 slower by more
  // The fastest options add up to 0.25 + 0.5 + 0.25 + 0.5 = 1.5 ms: the noise is 2% of it, 0.03 ms.
  const auto usable = usable_options(t);
  auto offered = [&](size_t layer, Precision p) {
    for (const PrecisionCost& c : usable[layer].options)
      if (c.precision == p) return true;
    return false;
  };
  EXPECT_TRUE(offered(1, Precision::int8));
  EXPECT_FALSE(offered(3, Precision::int8));
}

// A time is only as sure as its repeated timings agree: fc2's int8 is 0.05 ms
// slower than its bf16, beyond the 2% share (0.025 ms) but within that share
// plus how far apart bf16's own timings were; with timings that agreed, the
// same gap bars int8.
TEST(PrecisionSolver, ASlowerTimeWithinItsMeasuredSpreadStillCounts) {
  auto t = four_layers();
  t[3].options[2].latency_ms = 0.55;
  auto offered = [&](Precision p) {
    const std::vector<LayerCosts> usable = usable_options(t);
    for (const PrecisionCost& c : usable[3].options)
      if (c.precision == p) return true;
    return false;
  };
  EXPECT_FALSE(offered(Precision::int8));
  t[3].options[1].latency_noise_ms = 0.03;  // bf16's timings: 0.5 +- 0.03 ms
  EXPECT_TRUE(offered(Precision::int8));
  t[3].options[1].latency_noise_ms = 0.01;
  EXPECT_FALSE(offered(Precision::int8));
  // Every higher precision counts, not just the fastest: a noisy bf16 does not
  // let int8 pass when it is plainly slower than fp32 (1 ms, timings agreeing).
  t[3].options[1].latency_noise_ms = 0.6;
  t[3].options[2].latency_ms = 1.1;  // within bf16 (0.5 +- 0.6), 0.1 ms over fp32
  EXPECT_TRUE(offered(Precision::bf16));
  EXPECT_FALSE(offered(Precision::int8));
}

TEST(PrecisionSolver, SizeBudgetIsMetWithTheLeastPredictedDrop) {
  const auto t = four_layers();
  const double fp32 = 4.0 * (300 + 20000 + 400000 + 2500);
  const Assignment a = choose_precisions(t, {BudgetKind::max_size, 0.3 * fp32});
  EXPECT_LE(additive(t, a).bytes, 0.3 * fp32);
  EXPECT_EQ(a[2], Precision::int8);  // the only way under 30%: the big layer must shrink
  EXPECT_EQ(a[0], Precision::fp32);  // small layers stay precise: they barely change the size
}

TEST(PrecisionSolver, LatencyBudget) {
  const auto t = four_layers();
  const Assignment a = choose_precisions(t, {BudgetKind::max_latency, 2.0});
  EXPECT_LE(additive(t, a).latency_ms, 2.0 + 1e-9);
  EXPECT_EQ(a[2], Precision::bf16);
}

TEST(PrecisionSolver, ImpossibleBudgetIsAClearError) {
  expect_error([&] { choose_precisions(four_layers(), {BudgetKind::max_size, 100.0}); }, {"relax the target"});
}

TEST(PrecisionSolver, RepairsWhenTheTrueDropExceedsTheBudget) {
  const auto t = four_layers();
  // The held-out split shows an interaction: conv1 and conv2 both in int8 cost 0.5 more.
  int calls = 0;
  auto evaluate = [&](const Assignment& a) {
    ++calls;
    PlanMeasure m = additive(t, a);
    if (a[0] == Precision::int8 && a[1] == Precision::int8) m.drop += 0.5;
    return m;
  };
  const SolvedPlan plan = solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, evaluations(6));
  EXPECT_TRUE(plan.met_budget);
  EXPECT_LE(plan.measured.drop, 0.3);
  EXPECT_FALSE(plan.assignment[0] == Precision::int8 && plan.assignment[1] == Precision::int8);
  EXPECT_EQ(plan.assignment[2], Precision::bf16);
  EXPECT_EQ(plan.evaluations, calls);
  EXPECT_GE(calls, 2);
  EXPECT_EQ(plan.log.size(), static_cast<size_t>(calls));
}

TEST(PrecisionSolver, StopsAtTheEvaluationBoundAndReportsTheClosestPlan) {
  const auto t = four_layers();
  auto evaluate = [&](const Assignment& a) {
    PlanMeasure m = additive(t, a);
    m.drop += 1.0;  // nothing but fp32 everywhere would do, and even that measures 1 point off
    return m;
  };
  const SolvedPlan plan = solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, evaluations(3));
  EXPECT_FALSE(plan.met_budget);
  EXPECT_EQ(plan.evaluations, 3);
  EXPECT_GT(plan.measured.drop, 0.3);
}

TEST(PrecisionSolver, ACandidateThatMeasuresBetterWins) {
  const auto t = four_layers();
  // The tables say fc1 loses 2.5 points at int8; the held-out data says nothing is lost.
  auto evaluate = [&](const Assignment& a) {
    PlanMeasure m = additive(t, a);
    m.drop = 0;
    return m;
  };
  SolverOptions o;
  o.candidates = {Assignment(4, Precision::int8)};
  const SolvedPlan plan = solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, o);
  EXPECT_TRUE(plan.met_budget);
  EXPECT_EQ(plan.evaluations, 2);  // the knapsack's plan, then the candidate
  EXPECT_EQ(plan.assignment, Assignment(4, Precision::int8));
  // A candidate precision slower than a higher one is raised to one the layer may take.
  auto slow = t;
  slow[2].options[2].latency_ms = 5.0;  // fc1 int8 slower than fp32
  const SolvedPlan raised = solve_precisions(slow, {BudgetKind::max_drop, 0.3}, evaluate, o);
  EXPECT_EQ(raised.assignment[2], Precision::bf16);
}

TEST(PrecisionSolver, PlansWithinTheTimingNoiseGoToTheSmaller) {
  const auto t = four_layers();
  // The knapsack's plan for 0.3 points: fc1 (2.5 points at int8) in bf16, the rest int8.
  const Assignment knapsack = {Precision::int8, Precision::int8, Precision::bf16, Precision::int8};
  // A candidate that differs only in the small fc2 (bf16: 2.5 KB more) and
  // measures `ratio` times the knapsack plan's time; nothing is lost on the held-out data.
  const Assignment bigger = {Precision::int8, Precision::int8, Precision::bf16, Precision::bf16};
  auto run = [&](double ratio) {
    double first_ms = 0;
    auto evaluate = [&](const Assignment& a) {
      PlanMeasure m = additive(t, a);
      m.drop = 0;
      if (first_ms == 0) first_ms = m.latency_ms;
      if (a == bigger) m.latency_ms = first_ms * ratio;
      return m;
    };
    SolverOptions o;
    o.candidates = {bigger};
    const SolvedPlan plan = solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, o);
    EXPECT_EQ(plan.evaluations, 2);
    return plan.assignment;
  };
  // 1% faster is within the noise: the smaller plan stays (the raw objective,
  // time + size / 2 as shares of fp32, would have taken the bigger one).
  EXPECT_EQ(run(0.99), knapsack);
  // 10% faster is real: the bigger plan wins.
  EXPECT_EQ(run(0.90), bigger);
}

TEST(PrecisionSolver, ARunoffSideBySideReplacesSingleNoisyTimings) {
  const auto t = four_layers();
  const Assignment knapsack = {Precision::int8, Precision::int8, Precision::bf16, Precision::int8};
  const Assignment all_int8(4, Precision::int8);
  const Assignment too_inaccurate = {Precision::int8, Precision::int8, Precision::int8, Precision::bf16};
  // Nothing is lost on the held-out data except with fc1 and fc2 swapped; uniform
  // int8 is truly the fastest, but its one evaluation ran at a third of the speed.
  auto evaluate = [&](const Assignment& a) {
    PlanMeasure m = additive(t, a);
    m.drop = a == too_inaccurate ? 1.0 : 0.0;
    if (a == all_int8) m.latency_ms *= 3;
    return m;
  };
  SolverOptions o;
  o.candidates = {too_inaccurate, all_int8};
  EXPECT_EQ(solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, o).assignment, knapsack);  // no runoff

  std::vector<Assignment> entrants;
  o.time_side_by_side = [&](const std::vector<Assignment>& plans) {
    entrants = plans;
    std::vector<double> ms;
    for (const Assignment& a : plans) ms.push_back(additive(t, a).latency_ms);
    return ms;
  };
  const SolvedPlan plan = solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, o);
  EXPECT_EQ(plan.assignment, all_int8);
  EXPECT_DOUBLE_EQ(plan.measured.latency_ms, additive(t, all_int8).latency_ms);
  EXPECT_EQ(plan.evaluations, 3);
  // Only plans within the budget run, best single timing first.
  EXPECT_EQ(entrants, (std::vector<Assignment>{knapsack, all_int8}));
  EXPECT_EQ(plan.log.size(), 5u);  // three evaluations, two runoff lines
  EXPECT_NE(plan.log.back().find("side by side"), std::string::npos);

  // One entrant alone is not timed again.
  entrants.clear();
  o.candidates = {too_inaccurate};
  EXPECT_EQ(solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, o).assignment, knapsack);
  EXPECT_TRUE(entrants.empty());
}

TEST(PrecisionSolver, TheBestIsChosenAmongTheRunoffsEntrants) {
  const auto t = four_layers();
  const Assignment knapsack = {Precision::int8, Precision::int8, Precision::bf16, Precision::int8};
  const Assignment second = {Precision::int8, Precision::int8, Precision::bf16, Precision::bf16};
  const Assignment third = {Precision::int8, Precision::bf16, Precision::bf16, Precision::int8};
  // Single timings rank knapsack, second, third; side by side the first two are
  // slower than the third's single timing, which the runoff (two entrants) never checked.
  auto single = [&](const Assignment& a) { return a == knapsack ? 1.0 : a == second ? 1.2 : 1.3; };
  auto evaluate = [&](const Assignment& a) {
    PlanMeasure m = additive(t, a);
    m.drop = 0;
    m.latency_ms = single(a);
    return m;
  };
  SolverOptions o;
  o.candidates = {second, third};
  o.runoff_plans = 2;
  o.time_side_by_side = [&](const std::vector<Assignment>& plans) {
    std::vector<double> ms;
    for (const Assignment& a : plans) ms.push_back(a == knapsack ? 2.0 : 1.5);
    return ms;
  };
  const SolvedPlan plan = solve_precisions(t, {BudgetKind::max_drop, 0.3}, evaluate, o);
  EXPECT_EQ(plan.evaluations, 3);
  EXPECT_EQ(plan.assignment, second);
  EXPECT_DOUBLE_EQ(plan.measured.latency_ms, 1.5);

  // Under a latency or size budget the evaluations' timings stand: no runoff.
  bool timed = false;
  o.time_side_by_side = [&](const std::vector<Assignment>& plans) {
    timed = true;
    return std::vector<double>(plans.size(), 0.1);
  };
  solve_precisions(t, {BudgetKind::max_latency, 1.5}, evaluate, o);
  solve_precisions(t, {BudgetKind::max_size, 1e6}, evaluate, o);
  EXPECT_FALSE(timed);
}

TEST(PrecisionSolver, ParsesTargets) {
  const double bytes = 1e6, ms = 10;
  SolverBudget b = parse_budget("max-drop=0.3%", bytes, ms);
  EXPECT_EQ(b.kind, BudgetKind::max_drop);
  EXPECT_DOUBLE_EQ(b.limit, 0.3);
  EXPECT_DOUBLE_EQ(parse_budget("max-drop=1", bytes, ms).limit, 1.0);
  b = parse_budget("size=30%", bytes, ms);
  EXPECT_EQ(b.kind, BudgetKind::max_size);
  EXPECT_DOUBLE_EQ(b.limit, 3e5);
  EXPECT_DOUBLE_EQ(parse_budget("size=2MB", bytes, ms).limit, 2e6);
  EXPECT_DOUBLE_EQ(parse_budget("size=512KB", bytes, ms).limit, 512e3);
  b = parse_budget("latency=40%", bytes, ms);
  EXPECT_EQ(b.kind, BudgetKind::max_latency);
  EXPECT_DOUBLE_EQ(b.limit, 4.0);
  EXPECT_DOUBLE_EQ(parse_budget("latency=1.5ms", bytes, ms).limit, 1.5);
  expect_error([&] { parse_budget("drop=0.3", bytes, ms); }, {"unknown target 'drop'"});
  expect_error([&] { parse_budget("max-drop", bytes, ms); }, {"has no '='"});
  expect_error([&] { parse_budget("size=abc%", bytes, ms); }, {"not a non-negative number"});
  expect_error([&] { parse_budget("latency=3s", bytes, ms); }, {"in ms"});
  expect_error([&] { parse_budget("max-drop=-1%", bytes, ms); }, {"not a non-negative number"});
}
