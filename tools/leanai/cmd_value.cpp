// leanai value: score every training sample's value (entropy, last-layer
// gradient norm, EL2N, forgetting events, and their weighted combination)
// with a short proxy run, and write the scores as CSV for `train --scores`.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/data/score_csv.h"
#include "leanai/data/split.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/valuation.h"
#include "progress.h"

namespace leanai::cli {
namespace {

struct ValueOptions {
  DataOptions data;
  std::string model = "cnn-bn";
  std::string out = "scores.csv";
  int proxy_epochs = 2;
  std::string weights = "entropy=0.6,grad_norm=0.4";
  int64_t batch_size = 128;
  float lr = 1e-3f;
  double val_fraction = 0.0;
  int threads = 0;
  uint64_t seed = 0;
  bool json = false;
  bool quiet = false;
};

float quantile(std::vector<float> v, double q) {
  const size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

void run_value(const ValueOptions& o) {
  const auto dir = std::filesystem::path(o.out).parent_path();
  check(dir.empty() || std::filesystem::is_directory(dir), "--out: directory '" + dir.string() + "' does not exist");
  apply_threads(o.threads);
  ValuationConfig cfg;
  cfg.proxy_epochs = o.proxy_epochs;
  cfg.weights = ValueWeights::parse(o.weights);

  LoadedData data = load_data(o.data, o.seed);
  std::shared_ptr<InMemoryDataset> train = data.splits.train;
  // The same rows `train --val-fraction F --seed S` trains on.
  if (o.val_fraction > 0.0) train = train_val_split(*train, o.val_fraction, o.seed).first;
  check(train->task() == Task::classification, "leanai value scores classification data only");

  Progress progress(o.json ? Progress::Mode::silent : Progress::detect(o.quiet));
  Valuation v;
  const bool trained = std::filesystem::is_regular_file(o.model) && o.model.size() > 7 &&
                       o.model.substr(o.model.size() - 7) == ".leanai";
  if (trained) {
    check(cfg.weights.forgetting == 0.0, "forgetting events need a proxy run; pass a preset or spec to --model, not a trained model");
    v = score_with_model(load_model(o.model).graph, *train, cfg);
  } else {
    Graph model = build_model(o.model, train->sample_shape(), train->num_outputs(), o.seed);
    TrainConfig proxy;
    proxy.batch_size = o.batch_size;
    proxy.optimizer.kind = "adam";
    proxy.optimizer.lr = o.lr;
    proxy.seed = o.seed;
    v = value_samples(model, train, proxy, cfg, [&](const StepProgress& s) {
      progress.update(fmt::format("proxy epoch {}/{}", s.epoch, o.proxy_epochs), s.batch, s.batches,
                      fmt::format("loss {:.4f} acc {:.4f}", s.loss, s.accuracy), s.elapsed_s);
    });
    progress.finish();
  }
  write_scores_csv(o.out, v.scores);

  const SampleScores& s = v.scores;
  json columns = json::object();
  for (const auto& [name, col] : {std::pair<std::string, const std::vector<float>*>{"entropy", &s.entropy},
                                  {"grad_norm", &s.grad_norm}, {"el2n", &s.el2n}, {"forgetting", &s.forgetting},
                                  {"value", &s.value}})
    columns[name] = {{"p10", quantile(*col, 0.1)}, {"p50", quantile(*col, 0.5)}, {"p90", quantile(*col, 0.9)}};
  json result = {{"event", "result"}, {"out", o.out},           {"samples", s.size()},
                 {"weights", cfg.weights.to_json()},            {"cost", v.to_json()},
                 {"proxy_epochs", trained ? 0 : o.proxy_epochs}, {"scores", columns}};
  if (o.json) {
    print_json(result);
    return;
  }
  std::printf("%-11s %10s %10s %10s\n", "score", "p10", "p50", "p90");
  for (const auto& [name, q] : columns.items())
    std::printf("%-11s %10.4g %10.4g %10.4g\n", name.c_str(), q["p10"].get<double>(), q["p50"].get<double>(),
                q["p90"].get<double>());
  std::printf("scored %lld samples (proxy: %lld sample-gradient steps, %lld scoring passes, %.1fs); wrote %s\n",
              static_cast<long long>(s.size()), static_cast<long long>(v.proxy_samples),
              static_cast<long long>(v.scored_samples), v.seconds, o.out.c_str());
}

}  // namespace

void add_value_command(CLI::App& app) {
  auto opt = std::make_shared<ValueOptions>();
  CLI::App* cmd = app.add_subcommand("value", "Score each training sample's value and write the scores as CSV");
  opt->data.add_to(*cmd, true);
  cmd->add_option("--model", opt->model,
                  "preset or JSON spec for the proxy run, or a trained .leanai model to score with directly")
      ->capture_default_str();
  cmd->add_option("-o,--out", opt->out, "CSV file to write (index,label,entropy,el2n,grad_norm,forgetting,value)")
      ->capture_default_str();
  cmd->add_option("--proxy-epochs", opt->proxy_epochs, "epochs of the proxy run; scores are averaged over them")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--weights", opt->weights, "value = weighted sum of score percentiles: entropy, grad_norm, el2n, forgetting")
      ->capture_default_str();
  cmd->add_option("-b,--batch-size", opt->batch_size, "proxy batch size")->check(CLI::Range(int64_t{2}, int64_t{1} << 20))->capture_default_str();
  cmd->add_option("--lr", opt->lr, "proxy learning rate (Adam)")->check(CLI::Range(1e-9, 100.0))->capture_default_str();
  cmd->add_option("--val-fraction", opt->val_fraction, "score the rows `train --val-fraction` trains on")->check(CLI::Range(0.0, 0.9));
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "random seed (the same as train's, so the rows match)")->capture_default_str();
  cmd->add_flag("--json", opt->json, "one JSON line on stdout instead of text");
  cmd->add_flag("-q,--quiet", opt->quiet, "no progress output");
  cmd->callback([opt] { run_value(*opt); });
}

}  // namespace leanai::cli
