// leanai predict: run a saved model on new inputs and write labels and class
// probabilities as CSV (or JSON). Inputs:
//   IDX images (.gz or plain; u8 pixels, normalized as in training)
//   CSV with the training feature columns by name (extra columns are ignored)
//   raw little-endian float32 (.f32/.bin), already preprocessed, N x sample
// A model imported from ONNX records no input preprocessing, so it takes raw
// float32 input only; its outputs print as they are unless it was imported
// with --task classification.
#include <cmath>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/core/numeric.h"
#include "leanai/core/error.h"
#include "leanai/data/csv_reader.h"
#include "leanai/data/gz_file.h"
#include "leanai/data/idx.h"
#include "leanai/data/standardizer.h"
#include "leanai/io/atomic_file.h"
#include "leanai/io/model_file.h"
#include "leanai/runtime/plan.h"

namespace leanai::cli {
namespace {

struct PredictOptions {
  std::string model;
  std::string input;
  std::string format = "auto";
  std::string output;
  int64_t batch_size = 256;
  int threads = 0;
  bool json = false;
  bool logits = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string detect_format(const std::string& path) {
  if (ends_with(path, ".csv") || ends_with(path, ".csv.gz")) return "csv";
  if (ends_with(path, ".f32") || ends_with(path, ".bin") || ends_with(path, ".raw")) return "raw";
  return "idx";
}

Tensor images_from_idx(const std::string& path, const Shape& sample) {
  Tensor raw = read_idx(path);
  check(raw.dtype() == DType::u8, path + ": IDX images must hold u8 pixels");
  const int64_t per_sample = shape_numel(sample);
  check(raw.rank() >= 2 && raw.dim(0) > 0, path + ": holds no images");
  check(raw.numel() / raw.dim(0) == per_sample,
        fmt::format("{}: images of shape {} do not match the model's input {}", path, shape_str(raw.shape()), shape_str(sample)));
  Shape s = sample;
  s.insert(s.begin(), raw.dim(0));
  Tensor x = Tensor::empty(s);
  const uint8_t* p = raw.data<uint8_t>();
  float* f = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) f[i] = (p[i] / 255.0f - kFashionMnistMean) / kFashionMnistStd;
  return x;
}

Tensor rows_from_csv(const std::string& path, const json& info) {
  const json data = info.value("data", json::object());
  const auto names = data.value("feature_names", std::vector<std::string>{});
  check(!names.empty(), path + ": this model was not trained on CSV data; give IDX images or raw float32 input");
  auto records = split_csv_records(read_whole_file(path), path, ',');
  check(records.size() >= 2, path + ": needs a header row and at least one data row");
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < records[0].fields.size(); ++i) column[records[0].fields[i]] = i;
  std::vector<size_t> pick;
  for (const auto& n : names) {
    check(column.count(n), path + ": missing feature column '" + n + "' the model was trained with");
    pick.push_back(column[n]);
  }
  Tensor x = Tensor::empty({static_cast<int64_t>(records.size() - 1), static_cast<int64_t>(names.size())});
  float* f = x.data<float>();
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& fields = records[r].fields;
    check(fields.size() == records[0].fields.size(),
          fmt::format("{}: line {} has {} fields, the header has {}", path, records[r].line, fields.size(), records[0].fields.size()));
    for (size_t c = 0; c < pick.size(); ++c) {
      const std::string& v = fields[pick[c]];
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      check(!v.empty() && end && *end == '\0' && std::isfinite(d),
            fmt::format("{}: line {}, column '{}': '{}' is not a number", path, records[r].line, names[c], v));
      f[(r - 1) * pick.size() + c] = static_cast<float>(d);
    }
  }
  if (data.contains("standardizer")) x = Standardizer::from_json(data["standardizer"]).apply(x);
  return x;
}

Tensor rows_from_raw(const std::string& path, const Shape& sample) {
  const std::string bytes = read_whole_file(path);
  const size_t per_sample = shape_numel(sample) * sizeof(float);
  check(!bytes.empty() && bytes.size() % per_sample == 0,
        fmt::format("{}: {} bytes is not a whole number of float32 samples of shape {} ({} bytes each)", path,
                    bytes.size(), shape_str(sample), per_sample));
  Shape s = sample;
  s.insert(s.begin(), static_cast<int64_t>(bytes.size() / per_sample));
  Tensor x = Tensor::empty(s);
  std::memcpy(x.raw(), bytes.data(), bytes.size());
  for (int64_t i = 0; i < x.numel(); ++i)
    check(std::isfinite(x.data<float>()[i]), path + ": holds NaN or infinite values");
  return x;
}

void run_predict(const PredictOptions& o) {
  apply_threads(o.threads);
  LoadedModel m = load_model(o.model);
  const Shape sample = m.info.value("sample_shape", m.graph.input_sample_shape(m.graph.inputs()[0]));
  const std::string format = o.format == "auto" ? detect_format(o.input) : o.format;
  const bool imported = m.info.value("source", json::object()).value("format", std::string()) == "onnx";
  check(!imported || format == "raw", o.input + ": this model was imported from ONNX and records no input "
                                                "preprocessing; give raw float32 input (.f32), already preprocessed");
  Tensor x = format == "csv" ? rows_from_csv(o.input, m.info)
             : format == "raw" ? rows_from_raw(o.input, sample)
                               : images_from_idx(o.input, sample);
  const bool classify = !o.logits && m.info.value("task", std::string("classification")) == "classification";
  const auto names = m.info.value("data", json::object()).value("class_names", std::vector<std::string>{});

  Plan plan(m.graph);
  std::string csv = classify ? "index,label,name" : "index";
  const int64_t k = m.info.value("num_outputs", int64_t{0});
  for (int64_t c = 0; c < k; ++c) csv += classify ? fmt::format(",p{}", c) : fmt::format(",y{}", c);
  csv += "\n";
  json rows = json::array();
  for (int64_t start = 0; start < x.dim(0); start += o.batch_size) {
    const int64_t n = std::min(o.batch_size, x.dim(0) - start);
    const Tensor batch = x.slice0(start, start + n);
    const Tensor& out = plan.run(batch);
    const int64_t width = out.numel() / n;  // every output value of a sample, whatever the output's rank
    for (int64_t r = 0; r < n; ++r) {
      std::vector<float> row(out.data<float>() + r * width, out.data<float>() + (r + 1) * width);
      json jr = {{"index", start + r}};
      if (classify) {
        const float lse = log_sum_exp(row.data(), static_cast<int64_t>(row.size()));
        for (float& v : row) v = std::exp(v - lse);
        const int64_t label = std::max_element(row.begin(), row.end()) - row.begin();
        const std::string name = label < static_cast<int64_t>(names.size()) ? names[label] : "";
        csv += fmt::format("{},{},\"{}\"", start + r, label, name);
        jr["label"] = label;
        jr["name"] = name;
        jr["probabilities"] = row;
      } else {
        csv += fmt::format("{}", start + r);
        jr["prediction"] = row;
      }
      for (float v : row) csv += fmt::format(",{:.6g}", v);
      csv += "\n";
      rows.push_back(jr);
    }
  }
  if (!o.output.empty()) {
    write_text_atomic(o.output, o.json ? rows.dump() + "\n" : csv);
    std::fprintf(stderr, "wrote %lld predictions to %s\n", static_cast<long long>(x.dim(0)), o.output.c_str());
  } else if (o.json) {
    print_json(rows);
  } else {
    std::fputs(csv.c_str(), stdout);
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto opt = std::make_shared<PredictOptions>();
  CLI::App* cmd = app.add_subcommand("predict", "Predict labels and probabilities for new inputs");
  cmd->add_option("model", opt->model, "model file")->required();
  cmd->add_option("-i,--input", opt->input, "IDX images, a CSV file, or raw float32 (.f32/.bin)")->required();
  cmd->add_option("--format", opt->format, "auto, idx, csv or raw")->check(CLI::IsMember({"auto", "idx", "csv", "raw"}))->capture_default_str();
  cmd->add_option("-o,--output", opt->output, "write predictions here (atomically) instead of stdout");
  cmd->add_option("-b,--batch-size", opt->batch_size, "batch size")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->add_option("-t,--threads", opt->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--json", opt->json, "JSON instead of CSV");
  cmd->add_flag("--logits", opt->logits, "the model's raw outputs instead of class probabilities");
  cmd->callback([opt] { run_predict(*opt); });
}

}  // namespace leanai::cli
