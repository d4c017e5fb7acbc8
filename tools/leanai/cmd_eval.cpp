// leanai eval: accuracy, loss, per-class accuracy, confusion matrix and
// latency of a saved model on a data split it never trained on.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/data/standardizer.h"
#include "leanai/graph/executor.h"
#include "leanai/io/model_file.h"
#include "leanai/runtime/plan.h"
#include "leanai/nn/trainer.h"

namespace leanai::cli {
namespace {

struct EvalOptions {
  std::string model;
  DataOptions data;
  std::string split = "test";
  int64_t batch_size = 1000;
  int threads = 0;
  int latency_runs = 200;
  bool json = false;
};

// Median milliseconds per call of the compiled runtime (what a deployment runs).
double median_latency_ms(Graph& model, const Dataset& data, int64_t batch, int runs) {
  batch = std::min(batch, data.size());
  Shape xs = data.sample_shape();
  xs.insert(xs.begin(), batch);
  Tensor x = Tensor::empty(xs);
  Tensor y = data.task() == Task::classification ? Tensor::empty({batch}, DType::i64)
                                                 : Tensor::empty({batch, data.num_outputs()});
  std::vector<int64_t> idx(batch);
  for (int64_t i = 0; i < batch; ++i) idx[i] = i;
  data.gather(idx.data(), batch, x, y);
  Plan plan(model);
  for (int i = 0; i < 10; ++i) plan.run(x);  // warm-up: primitives, caches
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    plan.run(x);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

void run_eval(EvalOptions o, const CLI::App& cmd) {
  apply_threads(o.threads);
  LoadedModel m = load_model(o.model);
  ModelData md = load_model_data(m.info, o.data, cmd);
  LoadedData& data = md.data;
  // The validation part was held out of training too; "train" means what trained.
  std::shared_ptr<InMemoryDataset> ds = o.split == "train" ? md.train : md.test;
  EvalResult r = evaluate(m.graph, *ds, o.batch_size);
  const double lat1 = median_latency_ms(m.graph, *ds, 1, o.latency_runs);
  const int64_t big = std::min<int64_t>(256, ds->size());
  const double lat_big = median_latency_ms(m.graph, *ds, big, std::max(10, o.latency_runs / 10));
  json latency = {{"batch1_ms", lat1}, {"batch", big}, {"batch_ms", lat_big}, {"samples_per_s", big / lat_big * 1e3},
                  {"threads", num_threads()}};
  if (o.json) {
    json j = r.to_json();
    j["split"] = o.split;
    j["latency"] = latency;
    print_json(j);
    return;
  }
  const auto names = data.source.class_names;
  if (ds->task() == Task::classification) {
    std::printf("%s split: %lld samples  accuracy %.4f  loss %.4f\n", o.split.c_str(), static_cast<long long>(r.count),
                r.accuracy, r.loss);
    std::printf("\nper-class accuracy:\n");
    for (size_t c = 0; c < r.per_class_accuracy.size(); ++c)
      std::printf("  %2zu %-14s %.4f\n", c, c < names.size() ? names[c].c_str() : "", r.per_class_accuracy[c]);
    std::printf("\nconfusion matrix (rows: true class, columns: predicted):\n     ");
    for (size_t c = 0; c < r.confusion.size(); ++c) std::printf("%6zu", c);
    std::printf("\n");
    for (size_t t = 0; t < r.confusion.size(); ++t) {
      std::printf("  %2zu ", t);
      for (int64_t v : r.confusion[t]) std::printf("%6lld", static_cast<long long>(v));
      std::printf("\n");
    }
  } else {
    std::printf("%s split: %lld samples  mse %.4f  mae %.4f\n", o.split.c_str(), static_cast<long long>(r.count), r.loss, r.mae);
  }
  std::printf("\nlatency (%d thread(s), median): batch 1 %.3f ms; batch %lld %.3f ms (%.0f samples/s)\n", num_threads(),
              lat1, static_cast<long long>(big), lat_big, big / lat_big * 1e3);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto opt = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a saved model: accuracy, loss, confusion matrix, latency");
  cmd->add_option("model", opt->model, "model file")->required();
  opt->data.add_to(*cmd, false);
  cmd->add_option("--split", opt->split, "test or train")->check(CLI::IsMember({"test", "train"}))->capture_default_str();
  cmd->add_option("-b,--batch-size", opt->batch_size, "evaluation batch size")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--latency-runs", opt->latency_runs, "timed runs for the batch-1 latency")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_flag("--json", opt->json, "one JSON object on stdout");
  cmd->callback([opt, cmd] { run_eval(*opt, *cmd); });
}

}  // namespace leanai::cli
