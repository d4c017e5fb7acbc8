#include "leanai/quant/precision_solver.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "leanai/core/error.h"

namespace leanai {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Higher precision first: fp32 0, bf16 1, fp16 2, int8 3, int4 4.
int rank(Precision p) { return static_cast<int>(p); }

const PrecisionCost& option(const LayerCosts& l, Precision p) {
  for (const PrecisionCost& c : l.options)
    if (c.precision == p) return c;
  throw Error("precision solver: layer '" + l.layer + "' has no " + precision_name(p) + " measurement");
}

// The quantity a budget limits, for one option.
double resource(BudgetKind kind, const PrecisionCost& c) {
  switch (kind) {
    case BudgetKind::max_drop: return std::max(0.0, c.drop);
    case BudgetKind::max_size: return c.bytes;
    case BudgetKind::max_latency: return c.latency_ms;
  }
  return 0;
}

// What the knapsack minimizes within the budget. Under a drop budget: time and
// size together, each as a share of the all-fp32 model (size weighs half);
// under a size or latency budget: the predicted drop, ties to time.
struct Objective {
  BudgetKind kind;
  double fp32_latency, fp32_bytes;
  double operator()(const PrecisionCost& c) const {
    if (kind == BudgetKind::max_drop) return c.latency_ms / fp32_latency + 0.5 * c.bytes / fp32_bytes;
    return std::max(0.0, c.drop) + 1e-6 * c.latency_ms / fp32_latency;
  }
  double operator()(const PlanMeasure& m) const {
    if (kind == BudgetKind::max_drop) return m.latency_ms / fp32_latency + 0.5 * m.bytes / fp32_bytes;
    return std::max(0.0, m.drop) + 1e-6 * m.latency_ms / fp32_latency;
  }
};

Objective objective_for(BudgetKind kind, const std::vector<LayerCosts>& tables) {
  Objective o{kind, 0, 0};
  for (const LayerCosts& l : tables) {
    o.fp32_latency += option(l, Precision::fp32).latency_ms;
    o.fp32_bytes += option(l, Precision::fp32).bytes;
  }
  o.fp32_latency = std::max(o.fp32_latency, 1e-12);
  o.fp32_bytes = std::max(o.fp32_bytes, 1e-12);
  return o;
}

// How far a measure is past the budget, as a share of the limit (0 inside).
double overshoot(const SolverBudget& b, const PlanMeasure& m) {
  const double v = b.kind == BudgetKind::max_drop ? m.drop : b.kind == BudgetKind::max_size ? m.bytes : m.latency_ms;
  return std::max(0.0, v - b.limit) / std::max(std::fabs(b.limit), 1e-12);
}

double number_before(const std::string& text, size_t suffix_len, const std::string& what) {
  const std::string digits = text.substr(0, text.size() - suffix_len);
  try {
    size_t used = 0;
    const double v = std::stod(digits, &used);
    if (used == digits.size() && std::isfinite(v) && v >= 0) return v;
  } catch (const std::exception&) {
  }
  throw Error("target '" + what + "': '" + digits + "' is not a non-negative number");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The index of the best measured plan. Plans that meet the budget beat any
// that does not; among those, the objective decides, except that for a
// max-drop target two plans whose times differ by less than the machine's
// noise are equally fast: the smaller wins, then the more accurate (timing
// noise alone would decide between them otherwise). Plans not meeting it
// rank by how far they miss.
size_t best_of(const std::vector<PlanMeasure>& plans, const SolverBudget& budget, const Objective& objective) {
  size_t best = 0;
  double best_score = kInf;
  bool best_ok = false;
  for (size_t i = 0; i < plans.size(); ++i) {
    const PlanMeasure& m = plans[i];
    const bool ok = within(budget, m);
    const double score = ok ? objective(m) : 1e6 * (1 + overshoot(budget, m));
    bool better = score < best_score;
    const PlanMeasure& b = plans[best];
    if (budget.kind == BudgetKind::max_drop && ok && best_ok &&
        std::fabs(m.latency_ms - b.latency_ms) <= kLatencyNoiseShare * b.latency_ms)
      better = m.bytes != b.bytes ? m.bytes < b.bytes : m.drop < b.drop;
    if (better) {
      best = i;
      best_score = score;
      best_ok = ok;
    }
  }
  return best;
}

// Re-times the best plans that met a max-drop budget side by side and puts
// their medians in place of the single timings of their evaluations. Returns
// the plans that ran (none when fewer than two met the budget), which the
// best is then chosen among: the others' single timings are what the runoff
// is there to overrule.
std::vector<size_t> runoff(const std::vector<Assignment>& plans, std::vector<PlanMeasure>& measured,
                           const SolverBudget& budget, const Objective& objective, const SolverOptions& options,
                           const std::function<std::string(const Assignment&)>& describe, std::vector<std::string>& log) {
  std::vector<size_t> order;
  for (size_t i = 0; i < plans.size(); ++i)
    if (within(budget, measured[i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return objective(measured[a]) < objective(measured[b]); });
  order.resize(std::min(order.size(), static_cast<size_t>(std::max(0, options.runoff_plans))));
  if (order.size() < 2) return {};  // nothing to compare
  std::vector<Assignment> entrants;
  for (size_t i : order) entrants.push_back(plans[i]);
  const std::vector<double> ms = options.time_side_by_side(entrants);
  check(ms.size() == entrants.size(), "precision solver: the side-by-side timing returned the wrong number of times");
  for (size_t k = 0; k < order.size(); ++k) {
    PlanMeasure& m = measured[order[k]];
    log.push_back("runoff: " + describe(plans[order[k]]) + "  " + std::to_string(ms[k]) + " ms side by side (was " +
                  std::to_string(m.latency_ms) + " ms)");
    m.latency_ms = ms[k];
  }
  return order;
}

}  // namespace

SolverBudget parse_budget(const std::string& text, double fp32_bytes, double fp32_latency_ms) {
  const auto eq = text.find('=');
  const std::string usage = "use max-drop=0.3% (accuracy points), size=30% or size=2MB, latency=40% or latency=1.5ms";
  check(eq != std::string::npos, "target '" + text + "' has no '=': " + usage);
  const std::string key = text.substr(0, eq), value = text.substr(eq + 1);
  check(!value.empty(), "target '" + text + "' has no value: " + usage);
  if (key == "max-drop") {
    return {BudgetKind::max_drop, number_before(value, ends_with(value, "%") ? 1 : 0, text)};
  }
  if (key == "size") {
    if (ends_with(value, "%")) return {BudgetKind::max_size, number_before(value, 1, text) / 100.0 * fp32_bytes};
    for (auto [suffix, scale] : {std::pair{"MB", 1e6}, {"KB", 1e3}, {"B", 1.0}})
      if (ends_with(value, suffix)) return {BudgetKind::max_size, number_before(value, std::string(suffix).size(), text) * scale};
    throw Error("target '" + text + "': give the size as a percentage of fp32 or in B, KB or MB");
  }
  if (key == "latency") {
    if (ends_with(value, "%")) return {BudgetKind::max_latency, number_before(value, 1, text) / 100.0 * fp32_latency_ms};
    if (ends_with(value, "ms")) return {BudgetKind::max_latency, number_before(value, 2, text)};
    throw Error("target '" + text + "': give the latency in ms or as a percentage of fp32");
  }
  throw Error("unknown target '" + key + "': " + usage);
}

std::vector<LayerCosts> usable_options(const std::vector<LayerCosts>& tables) {
  // The model's time, as the sum of each layer's fastest option.
  double model_ms = 0;
  for (const LayerCosts& l : tables) {
    double fastest = kInf;
    for (const PrecisionCost& c : l.options) fastest = std::min(fastest, c.latency_ms);
    if (std::isfinite(fastest)) model_ms += fastest;
  }
  const double noise = kLatencyNoiseShare * model_ms;
  std::vector<LayerCosts> out;
  for (const LayerCosts& l : tables) {
    option(l, Precision::fp32);  // throws when fp32 is missing
    LayerCosts kept{l.layer, {}};
    std::vector<PrecisionCost> sorted = l.options;
    std::sort(sorted.begin(), sorted.end(),
              [](const PrecisionCost& a, const PrecisionCost& b) { return rank(a.precision) < rank(b.precision); });
    for (const PrecisionCost& c : sorted) {
      // Slower than a higher precision, beyond what the timings can tell apart: never worth it.
      const bool slower = std::any_of(kept.options.begin(), kept.options.end(), [&](const PrecisionCost& above) {
        return c.latency_ms > above.latency_ms + noise + above.latency_noise_ms + c.latency_noise_ms;
      });
      if (!slower) kept.options.push_back(c);
    }
    out.push_back(std::move(kept));
  }
  return out;
}

PlanMeasure predict(const std::vector<LayerCosts>& tables, const Assignment& a) {
  check(a.size() == tables.size(), "precision solver: the assignment has the wrong number of layers");
  PlanMeasure m;
  for (size_t i = 0; i < tables.size(); ++i) {
    const PrecisionCost& c = option(tables[i], a[i]);
    m.drop += std::max(0.0, c.drop);
    m.bytes += c.bytes;
    m.latency_ms += c.latency_ms;
  }
  return m;
}

bool within(const SolverBudget& budget, const PlanMeasure& m) { return overshoot(budget, m) == 0.0; }

Assignment choose_precisions(const std::vector<LayerCosts>& all, const SolverBudget& budget, int buckets) {
  check(buckets >= 10, "precision solver: buckets must be >= 10");
  const std::vector<LayerCosts> tables = usable_options(all);
  const Objective objective = objective_for(budget.kind, tables);
  // Units of the budgeted quantity; an option's cost rounds up, so a plan the
  // table says fits does fit.
  const double unit = std::max(budget.limit, 1e-12) / buckets;
  const auto units = [&](const PrecisionCost& c) {
    const double u = std::ceil(resource(budget.kind, c) / unit - 1e-9);
    return u > buckets ? buckets + 1 : static_cast<int>(std::max(0.0, u));
  };
  std::vector<double> best(buckets + 1, kInf), next(buckets + 1);
  best[0] = 0;
  std::vector<std::vector<int>> choice(tables.size(), std::vector<int>(buckets + 1, -1));
  for (size_t l = 0; l < tables.size(); ++l) {
    std::fill(next.begin(), next.end(), kInf);
    for (int used = 0; used <= buckets; ++used) {
      if (best[used] == kInf) continue;
      for (size_t k = 0; k < tables[l].options.size(); ++k) {
        const PrecisionCost& c = tables[l].options[k];
        const int to = used + units(c);
        if (to > buckets) continue;
        const double v = best[used] + objective(c);
        if (v < next[to]) {
          next[to] = v;
          choice[l][to] = static_cast<int>(k) * (buckets + 1) + used;  // option and where it came from
        }
      }
    }
    best.swap(next);
  }
  const auto end = std::min_element(best.begin(), best.end());
  check(*end != kInf, "precision solver: no assignment meets the target even on the per-layer measurements; "
                      "relax the target");
  Assignment a(tables.size());
  int at = static_cast<int>(end - best.begin());
  for (size_t l = tables.size(); l-- > 0;) {
    const int packed = choice[l][at];
    a[l] = tables[l].options[packed / (buckets + 1)].precision;
    at = packed % (buckets + 1);
  }
  return a;
}

SolvedPlan solve_precisions(const std::vector<LayerCosts>& all, const SolverBudget& budget,
                            const std::function<PlanMeasure(const Assignment&)>& evaluate, const SolverOptions& options) {
  check(options.max_evaluations >= 1, "precision solver: max_evaluations must be >= 1");
  const std::vector<LayerCosts> tables = usable_options(all);
  const Objective objective = objective_for(budget.kind, tables);
  Assignment current = choose_precisions(tables, budget, options.buckets);
  SolvedPlan result;
  std::vector<Assignment> seen;
  std::vector<PlanMeasure> measured;  // one per plan in `seen`
  auto describe = [&](const Assignment& a) {
    std::string line;
    for (size_t i = 0; i < tables.size(); ++i) line += (i ? " " : "") + tables[i].layer + ":" + precision_name(a[i]);
    return line;
  };
  // Evaluates a plan on held-out data; returns whether it met the budget.
  auto try_plan = [&](const Assignment& a) {
    seen.push_back(a);
    measured.push_back(evaluate(a));
    const PlanMeasure& m = measured.back();
    const bool ok = within(budget, m);
    result.log.push_back(describe(a) + "  drop " + std::to_string(m.drop) + " pt, " + std::to_string(m.bytes / 1e3) +
                         " KB, " + std::to_string(m.latency_ms) + " ms" + (ok ? "" : "  (over budget)"));
    return ok;
  };
  while (static_cast<int>(seen.size()) < options.max_evaluations) {
    if (try_plan(current)) break;
    // Repair: move the one layer whose step buys the most budget per unit of cost.
    const bool raise = budget.kind == BudgetKind::max_drop;  // too inaccurate: raise; too big or slow: lower
    int pick = -1;
    Precision pick_to = Precision::fp32;
    double pick_value = -kInf;
    for (size_t i = 0; i < tables.size(); ++i) {
      const auto& opts = tables[i].options;  // highest precision first
      size_t at = 0;
      while (opts[at].precision != current[i]) ++at;
      if (raise ? at == 0 : at + 1 == opts.size()) continue;
      const PrecisionCost &from = opts[at], &to = opts[raise ? at - 1 : at + 1];
      Assignment trial = current;
      trial[i] = to.precision;
      if (std::find(seen.begin(), seen.end(), trial) != seen.end()) continue;
      double value;
      if (raise) {  // accuracy gained per unit of added time and size
        // KL in nats weighs 10 points per nat: 0.01 nats counts like 0.1 points.
        const double gain = std::max(0.0, from.drop) - std::max(0.0, to.drop) + 10.0 * (from.kl - to.kl);
        value = gain / (objective(to) - objective(from) + 1e-9) + 1e-3 * std::max(0.0, from.drop);
      } else {  // budget saved per unit of added drop
        const double saved = resource(budget.kind, from) - resource(budget.kind, to);
        value = saved / (std::max(0.0, to.drop) - std::max(0.0, from.drop) + 1e-3);
      }
      if (value > pick_value) {
        pick_value = value;
        pick = static_cast<int>(i);
        pick_to = to.precision;
      }
    }
    if (pick < 0) break;  // nothing left to move
    current[pick] = pick_to;
  }
  for (const Assignment& c : options.candidates) {
    if (static_cast<int>(seen.size()) >= options.max_evaluations) break;
    check(c.size() == tables.size(), "precision solver: a candidate plan has the wrong number of layers");
    // A precision the layer may not take (slower than a higher one) becomes the lowest it may take above it.
    Assignment a = c;
    for (size_t i = 0; i < a.size(); ++i) {
      Precision allowed = Precision::fp32;
      for (const PrecisionCost& o : tables[i].options)
        if (rank(o.precision) <= rank(a[i])) allowed = o.precision;
      a[i] = allowed;
    }
    if (std::find(seen.begin(), seen.end(), a) == seen.end()) try_plan(a);
  }
  // A latency budget's membership rests on the evaluations' timings, and under
  // a size budget time only breaks ties: the runoff is for max-drop targets.
  std::vector<size_t> entrants;
  if (options.time_side_by_side && budget.kind == BudgetKind::max_drop)
    entrants = runoff(seen, measured, budget, objective, options, describe, result.log);
  size_t best = best_of(measured, budget, objective);
  if (!entrants.empty()) {
    std::vector<PlanMeasure> timed;
    for (size_t i : entrants) timed.push_back(measured[i]);
    best = entrants[best_of(timed, budget, objective)];
  }
  result.assignment = seen[best];
  result.measured = measured[best];
  result.met_budget = within(budget, measured[best]);
  result.evaluations = static_cast<int>(seen.size());
  result.predicted = predict(tables, result.assignment);
  return result;
}

}  // namespace leanai
