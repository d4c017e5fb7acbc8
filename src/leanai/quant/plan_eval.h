// Running a graph over a labelled sample set through the compiled Plan (the
// way it will be served) and comparing its outputs with a reference: what
// sensitivity analysis and the precision solver's verification measure.
//
//   Tensor ref = plan_logits(fp32_graph, x);
//   Tensor q = plan_logits(quantized_graph, x);
//   OutputError e = compare_logits(ref, q);     // KL(ref || q), SQNR in dB
//   double acc = accuracy(q, labels);
#pragma once
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

// Logits [N, C] for x [N, ...], run in batches of `batch` through one Plan.
Tensor plan_logits(const Graph& graph, const Tensor& x, int64_t batch = 256);

// Share of rows whose arg-max equals the i64 label.
double accuracy(const Tensor& logits, const Tensor& labels);

struct OutputError {
  double kl = 0;       // mean over rows of KL(softmax(ref) || softmax(out)), nats
  double sqnr_db = 0;  // 10 log10(sum ref^2 / sum (ref - out)^2); +inf when equal
};
OutputError compare_logits(const Tensor& ref, const Tensor& out);

// Median ms of one Plan run at batch `batch` (random input), after warm-up.
double plan_latency_ms(const Graph& graph, int64_t batch, double seconds = 0.3);

// The graphs timed side by side: `rounds` rounds, each timing every graph in
// turn from a fresh compile (one compile can land on a slower batch split on a
// busy machine); returns each graph's median over the rounds, in order.
std::vector<double> side_by_side_latency_ms(const std::vector<const Graph*>& graphs, int64_t batch, int rounds,
                                            double seconds = 0.3);

}  // namespace leanai
