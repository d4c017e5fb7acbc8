// leanai train: fit a preset or a JSON-spec model, evaluate it on the test
// split, and save it (atomically) with everything eval/predict need.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/data/split.h"
#include "leanai/data/score_csv.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/data_efficiency.h"
#include "leanai/nn/sparse_training.h"
#include "leanai/nn/trainer.h"
#include "progress.h"

namespace leanai::cli {
namespace {

struct TrainOptions {
  DataOptions data;
  std::string model = "cnn";
  std::string out = "model.leanai";
  std::string checkpoint;
  std::string resume;
  int epochs = 5;
  int64_t batch_size = 128;
  std::string optimizer = "adam";
  float lr = 1e-3f;
  float momentum = 0.9f;
  bool nesterov = false;
  float weight_decay = 0.0f;
  std::string schedule = "constant";
  int64_t warmup = 0;
  int step_epochs = 1;
  float gamma = 0.1f;
  double clip_norm = 0.0;
  float label_smoothing = 0.0f;
  double val_fraction = 0.0;
  int threads = 0;
  uint64_t seed = 0;
  bool json = false;
  bool quiet = false;
  DataEfficiencyOptions efficiency;
  std::string weights = "entropy=0.6,grad_norm=0.4";
  bool no_class_balance = false;
  std::string mix = "both";
  std::string scores_out, selection_out;
  double sparsity = 0.0;
  std::string gates = "quantile";
  double sparsity_ramp = 0.5;
  std::vector<std::string> dense_layers;
};

TrainConfig make_config(const TrainOptions& o, int64_t batches_per_epoch) {
  TrainConfig c;
  c.epochs = o.epochs;
  c.batch_size = o.batch_size;
  c.optimizer.kind = o.optimizer;
  c.optimizer.lr = o.lr;
  c.optimizer.momentum = o.optimizer == "sgd" ? o.momentum : 0.0f;
  c.optimizer.nesterov = o.nesterov;
  c.optimizer.weight_decay = o.weight_decay;
  c.schedule.kind = o.schedule;
  c.schedule.warmup = o.warmup;
  c.schedule.total = static_cast<int64_t>(o.epochs) * batches_per_epoch;
  c.schedule.step_size = std::max<int64_t>(1, static_cast<int64_t>(o.step_epochs) * batches_per_epoch);
  c.schedule.gamma = o.gamma;
  c.clip_norm = o.clip_norm;
  c.label_smoothing = o.label_smoothing;
  c.seed = o.seed;
  return c;
}

void run_train(TrainOptions o) {
  check(!(o.nesterov && o.optimizer != "sgd"), "--nesterov applies to --optimizer sgd only");
  check(!o.out.empty(), "--out must name a file");
  // Both files are written only after training: check their directories before it starts.
  for (const auto& [flag, path] : {std::pair<std::string, std::string>{"--out", o.out}, {"--checkpoint", o.checkpoint}}) {
    const auto dir = std::filesystem::path(path).parent_path();
    check(dir.empty() || std::filesystem::is_directory(dir),
          flag + ": directory '" + dir.string() + "' does not exist; create it first");
  }
  apply_threads(o.threads);
  DataEfficiencyOptions& de = o.efficiency;
  de.valuation.weights = ValueWeights::parse(o.weights);
  de.selection.class_balance = !o.no_class_balance;
  de.selection.seed = o.seed;
  de.pruning.seed = o.seed;
  check(o.mix == "both" || o.mix == "cutmix" || o.mix == "mixup", "--mix must be both, cutmix or mixup");
  de.augment_config.cutmix = o.mix != "mixup";
  de.augment_config.mixup = o.mix != "cutmix";
  de.validate();
  check(o.resume.empty() || !de.active(),
        "--resume cannot be combined with --select, --augment or --prune yet; train again from the start");
  check(o.selection_out.empty() || !de.select.empty(), "--selection-out needs --select");

  // A resumed run repeats the checkpoint's data, split, seed and batch size,
  // whatever the command line says, so it continues exactly.
  LoadedModel resumed;
  TrainConfig saved;
  if (!o.resume.empty()) {
    resumed = load_model(o.resume);
    check(resumed.is_checkpoint(), o.resume + ": a model file, not a checkpoint; write one with --checkpoint");
    try {
      saved = TrainConfig::from_json(resumed.trainer_state.at("config"));
      o.val_fraction = resumed.info.at("val_fraction").get<double>();
    } catch (const json::exception&) {
      throw Error(o.resume + ": the checkpoint's training settings are incomplete; start without --resume");
    }
    o.data = data_options_from_info(resumed.info);
    o.seed = saved.seed;
    o.batch_size = saved.batch_size;
  }

  LoadedData data = load_data(o.data, o.seed);
  std::shared_ptr<InMemoryDataset> train = data.splits.train, val;
  if (o.val_fraction > 0.0) std::tie(train, val) = train_val_split(*train, o.val_fraction, o.seed);
  const Task task = train->task();
  const int64_t outputs = train->num_outputs();
  const int64_t batches = (train->size() + o.batch_size - 1) / o.batch_size;

  Graph model;
  if (!o.resume.empty()) {
    model = resumed.graph;
  } else {
    model = build_model(o.model, train->sample_shape(), outputs, o.seed);
  }
  TrainConfig config = with_augmentation(make_config(o, batches), de);
  // A resumed run continues the checkpoint's sparsity (its gates are in the model).
  std::optional<SparseTraining> sparse;
  check(o.dense_layers.empty() || o.sparsity > 0.0, "--dense-layers needs --sparsity: it names layers to leave ungated");
  if (!o.resume.empty() && !resumed.info.value("sparsity", json(nullptr)).is_null()) {
    sparse = SparseTraining::from_json(resumed.info.at("sparsity"));
  } else if (o.resume.empty() && o.sparsity > 0.0) {
    sparse = SparseTraining(o.gates, o.sparsity, static_cast<int64_t>(o.sparsity_ramp * static_cast<double>(config.schedule.total)));
    sparse->dense_layers.insert(o.dense_layers.begin(), o.dense_layers.end());
    // Gated layers start dense; before_step below brings in the sparsity.
    model = sparse->gate(model, o.seed);
    sparse->configure(config);
  }
  const json sparsity_info = sparse ? sparse->to_json() : json(nullptr);
  if (!o.resume.empty()) {
    // Resume with the checkpoint's settings; only the epoch count may grow.
    saved.epochs = o.epochs;
    saved.schedule.total = static_cast<int64_t>(o.epochs) * batches;
    config = saved;
  }
  Progress progress(o.json ? Progress::Mode::silent : Progress::detect(o.quiet));
  DataEfficiencySetup efficiency;
  if (de.active() || !o.scores_out.empty()) {
    de.want_scores = !o.scores_out.empty();
    efficiency = prepare_data_efficiency(de, model, train, make_config(o, batches), [&](const StepProgress& s) {
      progress.update(fmt::format("proxy epoch {}/{}", s.epoch, de.valuation.proxy_epochs), s.batch, s.batches,
                      fmt::format("loss {:.4f} acc {:.4f}", s.loss, s.accuracy), s.elapsed_s);
    });
    progress.finish();
    if (de.augment != "value-aware") efficiency.row_values.clear();
    if (!o.scores_out.empty()) write_scores_csv(o.scores_out, efficiency.valuation->scores);
    if (!o.selection_out.empty()) {
      SampleScores labels_only;  // random selection computes no scores: the CSV gets labels and value 0
      if (!efficiency.valuation) {
        labels_only.resize(train->size());
        std::copy_n(train->targets().data<int64_t>(), train->size(), labels_only.label.begin());
      }
      write_selection_csv(o.selection_out, *efficiency.selection,
                          efficiency.valuation ? efficiency.valuation->scores : labels_only);
    }
  }
  Trainer trainer(model, task, outputs, config);
  efficiency.apply(trainer);
  if (sparse) trainer.before_step = [&](int64_t step) { sparse->before_step(model, step); };
  // LEANAI_PROFILE=1: per-node forward/backward time on stderr after training.
  const bool profile = std::getenv("LEANAI_PROFILE") != nullptr;
  trainer.executor().set_profiling(profile);
  if (!o.resume.empty()) trainer.restore(resumed.trainer_tensors, resumed.trainer_state);
  check(trainer.epochs_done() < o.epochs || o.resume.empty(),
        fmt::format("the checkpoint has already trained {} epochs; pass --epochs larger than that", trainer.epochs_done()));

  json info = {{"task", task == Task::classification ? "classification" : "regression"},
               {"num_outputs", outputs},
               {"sample_shape", train->sample_shape()},
               {"model", o.resume.empty() ? o.model : resumed.info.value("model", std::string("?"))},
               {"val_fraction", o.val_fraction},
               {"sparsity", sparsity_info},
               {"data", data_info(o.data, data, o.seed)}};

  trainer.on_step = [&](const StepProgress& s) {
    progress.update(fmt::format("epoch {}/{}", s.epoch, o.epochs), s.batch, s.batches,
                    task == Task::classification
                        ? fmt::format("loss {:.4f} acc {:.4f} {:.0f} samples/s", s.loss, s.accuracy, s.samples_per_s)
                        : fmt::format("loss {:.4f} {:.0f} samples/s", s.loss, s.samples_per_s),
                    s.elapsed_s);
  };
  if (!o.json && !o.quiet)
    std::fprintf(stderr, "training %s on %s: %lld train samples, %lld parameters, %d thread(s)\n",
                 info["model"].get<std::string>().c_str(), data.source.description.c_str(),
                 static_cast<long long>(train->size()), static_cast<long long>(model.num_trainable_parameters()),
                 num_threads());
  json epochs = json::array();
  double train_seconds = 0.0;
  while (trainer.epochs_done() < o.epochs) {
    EpochStats s = trainer.train_epoch(train);
    progress.finish();
    if (val) {
      EvalResult v = evaluate(model, *val);
      s.has_val = true;
      s.val_loss = v.loss;
      s.val_accuracy = v.accuracy;
    }
    train_seconds += s.seconds;
    epochs.push_back(s.to_json());
    if (o.json) print_json({{"event", "epoch"}, {"stats", s.to_json()}});
    else if (!o.quiet)
      std::fprintf(stderr, "epoch %d: loss %.4f acc %.4f%s  %.1fs  %.0f samples/s  lr %.3g\n", s.epoch, s.train_loss,
                   s.train_accuracy,
                   s.has_val ? fmt::format("  val loss {:.4f} val acc {:.4f}", s.val_loss, s.val_accuracy).c_str() : "",
                   s.seconds, s.samples_per_s, s.lr);
    if (!o.checkpoint.empty())
      save_checkpoint(o.checkpoint, model, info, trainer.state_tensors(), trainer.state_json());
  }

  // Quantile gates run at the target sparsity, even when the ramp spanned all of training.
  if (sparse) sparse->finish(model);
  if (profile)
    for (const auto& t : trainer.executor().profile())
      std::fprintf(stderr, "profile node %3d %-14s forward %9.1f ms  backward %9.1f ms  (%lld calls)\n", t.node,
                   t.op.c_str(), t.forward_ms, t.backward_ms, static_cast<long long>(t.calls));
  EvalResult test = evaluate(model, *data.splits.test);
  // Compute actually spent, for comparisons at equal cost: rows trained on
  // (sample-gradient steps), plus the proxy run's when values were computed.
  const int64_t proxy_samples = efficiency.valuation ? efficiency.valuation->proxy_samples : 0;
  const int64_t full_samples = static_cast<int64_t>(o.epochs) * train->size();
  json compute = {{"samples_seen", trainer.samples_seen()},
                  {"sample_gradient_steps", trainer.samples_seen() + proxy_samples},
                  {"proxy_sample_gradient_steps", proxy_samples},
                  {"full_data_sample_gradient_steps", full_samples},
                  {"share_of_full_data", static_cast<double>(trainer.samples_seen() + proxy_samples) / full_samples}};
  if (de.active()) compute["data_efficiency"] = efficiency.summary();
  info["training"] = {{"config", trainer.config().to_json()}, {"epochs", epochs}, {"train_seconds", train_seconds},
                      {"compute", compute},
                      {"test", {{"loss", test.loss}, {"accuracy", test.accuracy}, {"mae", test.mae}}}};
  if (sparse) info["training"]["sparsity"] = sparse->achieved(model);
  save_model(o.out, model, info);
  json result = {{"event", "result"}, {"out", o.out}, {"epochs", trainer.epochs_done()}, {"train_seconds", train_seconds},
                 {"compute", compute}, {"test", test.to_json()}};
  if (sparse) result["sparsity"] = info["training"]["sparsity"];
  if (o.json) return print_json(result);
  if (sparse && result["sparsity"].contains("off_share"))
    std::printf("sparsity (%s gates): %.1f%% of gated neurons off\n", sparse->gates.c_str(),
                100.0 * result["sparsity"]["off_share"].get<double>());
  if (task == Task::classification) {
    std::printf("test accuracy %.4f  loss %.4f  (%lld samples)  saved %s\n", test.accuracy, test.loss,
                static_cast<long long>(test.count), o.out.c_str());
    if (de.active())
      std::printf("compute: %lld samples seen, %lld sample-gradient steps with the proxy run (%.1f%% of full data)\n",
                static_cast<long long>(trainer.samples_seen()), static_cast<long long>(trainer.samples_seen() + proxy_samples),
                100.0 * compute["share_of_full_data"].get<double>());
  } else {
    std::printf("test mse %.4f  mae %.4f  (%lld samples)  saved %s\n", test.loss, test.mae,
                static_cast<long long>(test.count), o.out.c_str());
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto opt = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model and save it");
  opt->data.add_to(*cmd, true);
  cmd->add_option("--model", opt->model, "preset (mlp, mlp-moe, cnn, cnn-bn, resnet) or a JSON spec file")->capture_default_str();
  cmd->add_option("-o,--out", opt->out, "where to save the trained model")->capture_default_str();
  cmd->add_option("--checkpoint", opt->checkpoint, "write a resumable checkpoint here after every epoch");
  cmd->add_option("--resume", opt->resume, "continue from a checkpoint written with --checkpoint");
  cmd->add_option("-e,--epochs", opt->epochs, "epochs")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("-b,--batch-size", opt->batch_size, "batch size")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->add_option("--optimizer", opt->optimizer, "sgd, adam or adamw")->check(CLI::IsMember({"sgd", "adam", "adamw"}))->capture_default_str();
  // Not CLI::Range(1e-9, ...): its message prints the bound as 0.000000 ("Value 0 not in range 0.000000 to 100").
  const CLI::Validator lr_range(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || !(v > 0.0 && v <= 100.0)) return "Value " + s + " is not a number in (0, 100]";
        return "";
      },
      "(0, 100]");
  cmd->add_option("--lr", opt->lr, "learning rate")->check(lr_range)->capture_default_str();
  cmd->add_option("--momentum", opt->momentum, "SGD momentum")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  cmd->add_flag("--nesterov", opt->nesterov, "SGD with Nesterov momentum");
  cmd->add_option("--weight-decay", opt->weight_decay, "weight decay (L2 for sgd/adam, decoupled for adamw)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--schedule", opt->schedule, "constant, step or cosine")->check(CLI::IsMember({"constant", "step", "cosine"}))->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "cosine: warm-up steps")->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--step-epochs", opt->step_epochs, "step: epochs between decays")->check(CLI::Range(1, 100000));
  cmd->add_option("--gamma", opt->gamma, "step: decay factor")->check(CLI::Range(1e-6, 1.0));
  cmd->add_option("--clip-norm", opt->clip_norm, "clip the global gradient norm (0 = off)")->check(CLI::Range(0.0, 1e9));
  cmd->add_option("--label-smoothing", opt->label_smoothing, "label smoothing")->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--val-fraction", opt->val_fraction, "hold out this share of the training split for validation")->check(CLI::Range(0.0, 0.9));
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "random seed")->capture_default_str();
  cmd->add_flag("--json", opt->json, "JSON lines on stdout instead of text");
  cmd->add_flag("-q,--quiet", opt->quiet, "no progress output");

  // Dynamic sparsity.
  cmd->add_option("--sparsity", opt->sparsity, "gate every hidden layer and switch off this share of its neurons")
      ->check(CLI::Range(0.0, 0.99))->capture_default_str()->group("Dynamic sparsity");
  cmd->add_option("--gates", opt->gates,
                  "quantile: neurons whose learned gates are below the sparsity quantile are off; "
                  "l0: hard-concrete L0 gates, the penalty weight steered so that share of gates closes; "
                  "input: each hidden linear layer runs the top round((1 - sparsity) * 8) of its 8 neuron blocks, chosen per input")
      ->check(CLI::IsMember({"quantile", "l0", "input"}))->capture_default_str()->group("Dynamic sparsity");
  cmd->add_option("--sparsity-ramp", opt->sparsity_ramp,
                  "share of training over which sparsity (quantile) or the target share of closed gates (l0) ramps up "
                  "(cubic) to --sparsity; input gates are sparse from the start")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str()->group("Dynamic sparsity");
  cmd->add_option("--dense-layers", opt->dense_layers,
                  "hidden layers to leave ungated (comma-separated, e.g. conv1: a CNN's stem is cheap, and every later "
                  "layer reads it); quantile and l0 gates")
      ->delimiter(',')->group("Dynamic sparsity");

  // Data-efficient training (classification).
  DataEfficiencyOptions& de = opt->efficiency;
  const std::string group = "Data-efficient training";
  cmd->add_option("--select", de.select, "train on a subset: top (highest value), stratified (across value bands), random")
      ->check(CLI::IsMember({"top", "stratified", "random"}))->group(group);
  cmd->add_option("--keep", de.selection.keep, "--select: share of the training set kept")
      ->check(CLI::Range(1e-6, 1.0))->capture_default_str()->group(group);
  cmd->add_option("--scores", de.scores_path, "values from `leanai value` (CSV); without it a proxy run computes them")->group(group);
  cmd->add_option("--proxy-epochs", de.valuation.proxy_epochs, "epochs of the proxy run that computes values")
      ->check(CLI::Range(1, 1000))->capture_default_str()->group(group);
  cmd->add_option("--weights", opt->weights, "value = weighted sum of score percentiles (entropy, grad_norm, el2n, forgetting)")
      ->capture_default_str()->group(group);
  cmd->add_option("--bands", de.selection.bands, "--select stratified: value bands")->check(CLI::Range(1, 100000))->capture_default_str()->group(group);
  cmd->add_option("--hard-prune", de.selection.hard_prune, "--select stratified: share of highest-value samples dropped first")
      ->check(CLI::Range(0.0, 0.99))->capture_default_str()->group(group);
  cmd->add_flag("--no-class-balance", opt->no_class_balance, "--select: ignore classes (default: each class keeps its share)")->group(group);
  cmd->add_option("--augment", de.augment, "none, light (crop/flip for all) or value-aware (CutMix/MixUp above --augment-threshold, crop/flip below)")
      ->check(CLI::IsMember({"none", "light", "value-aware"}))->capture_default_str()->group(group);
  cmd->add_option("--augment-threshold", de.augment_config.value_threshold, "value-aware: value at and above which samples are mixed")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str()->group(group);
  cmd->add_option("--mix", opt->mix, "value-aware: both, cutmix or mixup")->check(CLI::IsMember({"both", "cutmix", "mixup"}))->capture_default_str()->group(group);
  cmd->add_option("--prune", de.prune, "dynamic: skip a share of well-learned samples each epoch (InfoBatch)")
      ->check(CLI::IsMember({"none", "dynamic"}))->capture_default_str()->group(group);
  cmd->add_option("--prune-ratio", de.pruning.ratio, "--prune dynamic: probability of skipping a well-learned sample")
      ->check(CLI::Range(0.0, 0.99))->capture_default_str()->group(group);
  cmd->add_option("--prune-anneal", de.pruning.anneal, "--prune dynamic: final share of epochs on the full data")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str()->group(group);
  cmd->add_option("--scores-out", opt->scores_out, "write the values used (CSV)")->group(group);
  cmd->add_option("--selection-out", opt->selection_out, "write the chosen indices (CSV)")->group(group);
  cmd->callback([opt] { run_train(*opt); });
}

}  // namespace leanai::cli
