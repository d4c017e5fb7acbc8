// Precision solver: given each layer's measured cost at each precision
// (accuracy drop when that layer alone is quantized, weight bytes, latency on
// this CPU), choose one precision per layer under a budget, then check the
// choice on held-out data and repair it until the budget holds.
//
//   SolverBudget budget{BudgetKind::max_drop, 0.3};          // points of accuracy
//   SolvedPlan plan = solve_precisions(tables, budget, evaluate);   // SolverOptions: evaluations, candidates
//
// Choosing: a multiple-choice knapsack, solved exactly by dynamic programming
// over the budgeted quantity (discretized finely), on the per-layer numbers
// (drops are taken as additive; the verification catches where they are not):
//   max_drop  minimize latency (ties: bytes) with predicted drop <= budget
//   max_size  minimize predicted drop with weight bytes <= budget
//   max_latency  minimize predicted drop with latency <= budget
// A precision that measured slower than a higher one of the same layer is
// never offered (fp32 > bf16 > fp16 > int8 > int4, highest first); slower
// means by more than kLatencyNoiseShare of the model's time plus the two
// times' own measured noise (latency_noise_ms), as a layer's time is a
// difference of model timings on a machine that drifts by about that much,
// and a sign decided by noise would cost the layer int8.
//
// Verifying: `evaluate` runs a whole plan on held-out data (a "full
// evaluation") and returns its true drop, bytes and latency. While the budget
// is missed, the layer whose move up one precision buys the most budget per
// unit of cost is moved (greedy repair); then the given candidate plans are
// evaluated too while evaluations remain. At most `max_evaluations` full
// evaluations are made; the best plan seen that meets the budget is returned
// (or, if none did, the one closest to it, with `met_budget` false). For
// max_drop, plans whose measured times differ by at most kLatencyNoiseShare
// count as equally fast: the smaller wins, then the more accurate.
//
// Runoff: a full evaluation times its plan once, and a shared machine can run
// the same plan at two speeds from one compile to the next, so single timings
// can rank a slower plan first. With `time_side_by_side` set and a max-drop
// budget, the plans that met it (up to `runoff_plans`, best first) are timed
// again together, interleaved; their medians replace the single timings and
// the best is chosen among them.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "leanai/quant/precision.h"

namespace leanai {

constexpr double kLatencyNoiseShare = 0.02;

struct PrecisionCost {
  Precision precision = Precision::fp32;
  double drop = 0;        // accuracy points lost with this layer alone at this precision (>= 0 after clamping)
  double bytes = 0;       // weight bytes at this precision
  double latency_ms = 0;  // this layer's time at this precision
  double kl = 0;          // output KL with this layer alone at this precision: breaks ties in repair,
                          // where drops measured on a finite sample are often all zero
  double latency_noise_ms = 0;  // how far latency_ms may be off: half the range of its repeated timings
};

struct LayerCosts {
  std::string layer;
  std::vector<PrecisionCost> options;  // must include fp32
};

enum class BudgetKind { max_drop, max_size, max_latency };

struct SolverBudget {
  BudgetKind kind = BudgetKind::max_drop;
  double limit = 0;  // points; bytes; ms
};

// Parses "max-drop=0.3%" (or "max-drop=0.3", points), "size=30%" (of the fp32
// weight bytes `fp32_bytes`), "size=2MB", "latency=1.5ms" or "latency=40%"
// (of `fp32_latency_ms`). Throws Error with the accepted forms otherwise.
SolverBudget parse_budget(const std::string& text, double fp32_bytes, double fp32_latency_ms);

using Assignment = std::vector<Precision>;  // one per layer, in table order

struct PlanMeasure {
  double drop = 0, bytes = 0, latency_ms = 0;
};

struct SolverOptions {
  int max_evaluations = 6;
  int buckets = 2000;  // discretization of the budgeted quantity
  // Plans also worth a full evaluation (e.g. uniform int8), tried once the
  // knapsack's plan (or its repair) meets the budget, while evaluations remain:
  // the per-layer tables are additive estimates, so a plan they rank lower can
  // still measure better.
  std::vector<Assignment> candidates;
  // Times plans side by side (interleaved rounds; one median per plan, in
  // order). Unset: each plan keeps its evaluation's single timing.
  std::function<std::vector<double>(const std::vector<Assignment>&)> time_side_by_side;
  int runoff_plans = 4;
};

struct SolvedPlan {
  Assignment assignment;
  PlanMeasure predicted;  // from the per-layer tables
  PlanMeasure measured;   // from the full evaluation of this plan; latency from the runoff when it ran in one
  bool met_budget = false;
  int evaluations = 0;
  std::vector<std::string> log;  // one line per evaluation (then per runoff plan), for the report
};

// The layers' options after dropping precisions slower than a higher one.
std::vector<LayerCosts> usable_options(const std::vector<LayerCosts>& tables);

// The knapsack choice alone (no evaluation); throws Error when no assignment
// can meet the budget even on the tables (e.g. a size below every layer at int4).
Assignment choose_precisions(const std::vector<LayerCosts>& tables, const SolverBudget& budget, int buckets = 2000);

PlanMeasure predict(const std::vector<LayerCosts>& tables, const Assignment& a);
bool within(const SolverBudget& budget, const PlanMeasure& m);

SolvedPlan solve_precisions(const std::vector<LayerCosts>& tables, const SolverBudget& budget,
                            const std::function<PlanMeasure(const Assignment&)>& evaluate,
                            const SolverOptions& options = {});

}  // namespace leanai
