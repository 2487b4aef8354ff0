// twinctl: the operator CLI for twinserve.
//
//   twinctl [--server=HOST:PORT] COMMAND [ARGS] [FLAGS]
//
// Exit codes: 0 success, 1 the server refused or failed, 2 bad usage.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/idx.h"
#include "client/npy.h"
#include "client/report.h"
#include "client/twin_client.h"
#include "proto/grpc_status_util.h"

namespace twinserve {
namespace {

constexpr char kUsage[] = R"(usage: twinctl [--server=HOST:PORT] COMMAND [ARGS]

Commands:
  health                         server liveness, readiness and gRPC health
  register NAME MODEL.pt --input NAME:DTYPE:DIMS --output NAME:DTYPE:DIMS
           [--input ...] [--output ...] [--description TEXT] [--replace]
           [--keep-previous]     (a new generation beside the old one)
           [--max-batch N [--batch-delay-us US] [--preferred 4,8]
            [--queue-capacity N]] (dynamic batching from the start)
                                 upload a TorchScript model (-1 = free dim,
                                 e.g. --input image:FP32:-1,1,28,28)
  list                           registered models and their variants
  show NAME                      one model: specs, variants, sizes, state
  batching NAME [--variant V] [--max-batch N] [--batch-delay-us US]
        [--preferred 4,8] [--queue-capacity N] [--off | --clear]
                                 show or change dynamic batching (a model's
                                 default, or one variant's own; --clear
                                 drops the variant's own settings)
  unregister NAME                remove a model and its stored files
  infer NAME --input [NAME=]FILE.npy [--input ...] [--version VARIANT]
        [--output-dir DIR] [--top-k K] [--labels FILE]
                                 run one request; writes outputs as .npy,
                                 prints top-k classes for [N,C] outputs
  register-variant NAME VARIANT MODEL.pt
                                 add an already-quantized model (e.g. from
                                 quantization-aware training) as a variant
  calibrate NAME [--set calib] (--input [NAME=]FILE.npy ... [--labels-npy
        FILE.npy] | --idx-images FILE [--idx-labels FILE]) [--limit N]
        [--replace]              upload calibration samples (N x ... arrays,
                                 or Fashion-MNIST IDX files)
  sets NAME                      list a model's calibration sets
  delete-set NAME SET            delete a calibration set
  quantize NAME [--variant int8] [--set calib] [--eval-set SET]
        [--method mse|minmax|percentile|entropy] [--percentile P]
        [--per-tensor] [--fp32 MODULE ...] [--max-samples N]
        [--max-agreement-loss PTS] [--max-accuracy-loss PTS]
        [--auto-fallback] [--max-trials N] [--no-watch]
                                 start a quantization job and follow it
  jobs [NAME]                    quantization jobs, newest first
  watch JOB | cancel JOB         follow or cancel a job
  report NAME [--variant int8] [--brief]
                                 the quantization report as tables
  policy NAME [--pinned VARIANT | --weights fp32=90,int8=10 [--baseline V]
        | --shadow CANDIDATE [--fraction F] [--baseline V]
        | --rollout CANDIDATE [--steps 1,10,50,100] [--min-requests N]
          [--min-seconds S] [--max-disagreement SHARE]]
        [--author WHO] [--reason WHY]
                                 show or set the traffic policy
  promote NAME VARIANT           all traffic to VARIANT
  rollback NAME                  back to the previous policy, at once
  history NAME                   policy changes: when, what, who, why
  compare NAME [--watch] [--interval SECONDS] [--count N]
                                 per-variant requests, errors, p50/p90/p99,
                                 throughput, agreement, cosine, share

The server defaults to $TWINSERVE_SERVER or 127.0.0.1:8001.
)";

struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> flags;

  std::string Get(const std::string& key, const std::string& def = "") const {
    auto it = flags.find(key);
    return it == flags.end() ? def : it->second;
  }
  std::vector<std::string> All(const std::string& key) const {
    std::vector<std::string> out;
    auto range = flags.equal_range(key);
    for (auto it = range.first; it != range.second; ++it) {
      out.push_back(it->second);
    }
    return out;
  }
  bool Has(const std::string& key) const { return flags.count(key) > 0; }
};

const char* const kBoolFlags[] = {
    "replace",       "help",  "per-tensor",    "no-watch", "watch",
    "auto-fallback", "brief", "keep-previous", "off",      "clear"};

bool ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      args->positional.push_back(a);
      continue;
    }
    a = a.substr(2);
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      args->flags.emplace(a.substr(0, eq), a.substr(eq + 1));
      continue;
    }
    if (std::find(std::begin(kBoolFlags), std::end(kBoolFlags), a) !=
        std::end(kBoolFlags)) {
      args->flags.emplace(a, "true");
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "twinctl: --%s needs a value\n", a.c_str());
      return false;
    }
    args->flags.emplace(a, argv[++i]);
  }
  return true;
}

int Fail(const absl::Status& st) {
  std::fprintf(stderr, "twinctl: %s: %s\n",
               absl::StatusCodeToString(st.code()).c_str(),
               std::string(st.message()).c_str());
  return 1;
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "twinctl: %s\n\n%s", why.c_str(), kUsage);
  return 2;
}

std::string Specs(const google::protobuf::RepeatedPtrField<v1::TensorSpec>& s) {
  return absl::StrJoin(s, ", ", [](std::string* out, const v1::TensorSpec& t) {
    absl::StrAppend(out, t.name(), ":", t.datatype(), "[",
                    absl::StrJoin(t.shape(), ","), "]");
  });
}

std::string Time(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

std::string BatchingText(const v1::BatchingConfig& b) {
  if (b.max_batch_size() <= 1) {
    return absl::StrCat("off (queue capacity ", b.queue_capacity(), ")");
  }
  return absl::StrCat("max batch ", b.max_batch_size(), ", delay ",
                      b.max_queue_delay_microseconds(), " us, preferred [",
                      absl::StrJoin(b.preferred_batch_sizes(), ","),
                      "], queue capacity ", b.queue_capacity());
}

void PrintModel(const v1::ModelInfo& m) {
  std::printf("model:       %s (generation %llu)\n", m.name().c_str(),
              static_cast<unsigned long long>(m.generation()));
  std::printf("state:       %s%s\n", v1::VariantState_Name(m.state()).c_str(),
              m.last_error().empty() ? "" : ("  " + m.last_error()).c_str());
  if (!m.description().empty()) {
    std::printf("description: %s\n", m.description().c_str());
  }
  std::printf("inputs:      %s\n", Specs(m.inputs()).c_str());
  std::printf("outputs:     %s\n", Specs(m.outputs()).c_str());
  std::printf("created:     %s   updated: %s\n",
              Time(m.created_unix_ms()).c_str(),
              Time(m.updated_unix_ms()).c_str());
  std::printf("%-14s %-10s %14s %14s  %s\n", "variant", "state", "file bytes",
              "param bytes", "sha256");
  for (const auto& v : m.variants()) {
    std::printf("%-14s %-10s %14llu %14llu  %s\n", v.name().c_str(),
                v1::VariantState_Name(v.state()).c_str(),
                static_cast<unsigned long long>(v.serialized_bytes()),
                static_cast<unsigned long long>(v.parameter_bytes()),
                v.sha256().substr(0, 16).c_str());
    if (!v.last_error().empty()) {
      std::printf("    error: %s\n", v.last_error().c_str());
    }
  }
  std::printf("batching:    %s\n", BatchingText(m.batching()).c_str());
  for (const auto& v : m.variants()) {
    std::printf("  %-12s %s\n", v.name().c_str(),
                BatchingText(v.batching()).c_str());
  }
}

// Reads --max-batch, --batch-delay-us, --preferred, --queue-capacity into
// `config`; false with a message on a malformed value.
bool ParseBatchingFlags(const Args& args, v1::BatchingConfig* config,
                        std::string* error) {
  auto number = [&](const char* flag, int64_t* out) {
    if (!args.Has(flag)) return true;
    if (absl::SimpleAtoi(args.Get(flag), out)) return true;
    *error = absl::StrCat("--", flag, " takes a number");
    return false;
  };
  int64_t max_batch = config->max_batch_size(),
          delay = config->max_queue_delay_microseconds(),
          capacity = config->queue_capacity();
  if (!number("max-batch", &max_batch) || !number("batch-delay-us", &delay) ||
      !number("queue-capacity", &capacity)) {
    return false;
  }
  config->set_max_batch_size(max_batch);
  config->set_max_queue_delay_microseconds(delay);
  config->set_queue_capacity(capacity);
  if (args.Has("preferred")) {
    config->clear_preferred_batch_sizes();
    for (absl::string_view p :
         absl::StrSplit(args.Get("preferred"), ',', absl::SkipEmpty())) {
      int v = 0;
      if (!absl::SimpleAtoi(p, &v)) {
        *error = "--preferred takes sizes like 4,8";
        return false;
      }
      config->add_preferred_batch_sizes(v);
    }
  }
  return true;
}

int Health(TwinClient& client) {
  auto live = client.ServerLive();
  if (!live.ok()) return Fail(live.status());
  auto ready = client.ServerReady();
  if (!ready.ok()) return Fail(ready.status());
  auto health = client.Health();
  if (!health.ok()) return Fail(health.status());
  std::printf("live: %s\nready: %s\nhealth: %s\n", *live ? "true" : "false",
              *ready ? "true" : "false", health->c_str());
  return *ready ? 0 : 1;
}

int Register(TwinClient& client, const Args& args) {
  if (args.positional.size() != 3) {
    return Usage("register needs NAME and MODEL.pt");
  }
  RegisterOptions options;
  options.name = args.positional[1];
  options.description = args.Get("description");
  options.replace = args.Has("replace");
  options.keep_previous = args.Has("keep-previous");
  if (options.keep_previous) options.replace = true;
  for (const auto& s : args.All("input")) {
    auto spec = ParseSpec(s);
    if (!spec.ok()) return Usage(std::string(spec.status().message()));
    options.inputs.push_back(*spec);
  }
  for (const auto& s : args.All("output")) {
    auto spec = ParseSpec(s);
    if (!spec.ok()) return Usage(std::string(spec.status().message()));
    options.outputs.push_back(*spec);
  }
  if (args.Has("max-batch")) {
    v1::BatchingConfig config;
    std::string error;
    if (!ParseBatchingFlags(args, &config, &error)) return Usage(error);
    options.batching = config;
  }
  std::ifstream in(args.positional[2], std::ios::binary);
  if (!in) return Usage("cannot read " + args.positional[2]);
  std::stringstream ss;
  ss << in.rdbuf();
  auto info = client.Register(options, ss.str());
  if (!info.ok()) return Fail(info.status());
  PrintModel(*info);
  return 0;
}

int Batching(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("batching needs NAME");
  const std::string model = args.positional[1];
  auto info = client.Get(model);
  if (!info.ok()) return Fail(info.status());
  const bool change = args.Has("max-batch") || args.Has("batch-delay-us") ||
                      args.Has("preferred") || args.Has("queue-capacity") ||
                      args.Has("off") || args.Has("clear");
  if (change) {
    v1::SetBatchingRequest req;
    req.set_model(model);
    req.set_variant(args.Get("variant"));
    // Start from what the target runs with, so one flag changes one thing.
    *req.mutable_config() = info->batching();
    for (const auto& v : info->variants()) {
      if (v.name() == req.variant()) *req.mutable_config() = v.batching();
    }
    std::string error;
    if (!ParseBatchingFlags(args, req.mutable_config(), &error)) {
      return Usage(error);
    }
    if (args.Has("off")) req.mutable_config()->set_max_batch_size(0);
    req.set_clear(args.Has("clear"));
    info = client.SetBatching(req);
    if (!info.ok()) return Fail(info.status());
  }
  std::printf("model default: %s\n", BatchingText(info->batching()).c_str());
  for (const auto& v : info->variants()) {
    std::printf("%-13s %s\n", (v.name() + ":").c_str(),
                BatchingText(v.batching()).c_str());
  }
  return 0;
}

int List(TwinClient& client) {
  auto models = client.List();
  if (!models.ok()) return Fail(models.status());
  std::printf("%-24s %-10s %-4s %-28s %s\n", "model", "state", "gen",
              "variants", "inputs");
  for (const auto& m : *models) {
    std::string variants = absl::StrJoin(
        m.variants(), ",", [](std::string* out, const v1::VariantInfo& v) {
          absl::StrAppend(out, v.name(),
                          v.state() == v1::READY
                              ? ""
                              : "(" + v1::VariantState_Name(v.state()) + ")");
        });
    std::printf("%-24s %-10s %-4llu %-28s %s\n", m.name().c_str(),
                v1::VariantState_Name(m.state()).c_str(),
                static_cast<unsigned long long>(m.generation()),
                variants.c_str(), Specs(m.inputs()).c_str());
    if (!m.last_error().empty()) {
      std::printf("    error: %s\n", m.last_error().c_str());
    }
  }
  return 0;
}

std::vector<std::string> ReadLabels(const std::string& path) {
  std::vector<std::string> labels;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) labels.push_back(line);
  return labels;
}

void PrintTopK(const HostTensor& t, int k,
               const std::vector<std::string>& labels) {
  if (t.dtype != DataType::kFp32 || t.shape.size() != 2) return;
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const float* data = reinterpret_cast<const float*>(t.data);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int> idx(cols);
    for (int i = 0; i < cols; ++i) idx[i] = i;
    const int kk = std::min<int64_t>(k, cols);
    std::partial_sort(
        idx.begin(), idx.begin() + kk, idx.end(),
        [&](int a, int b) { return data[r * cols + a] > data[r * cols + b]; });
    std::printf("%s[%lld] top-%d:", t.name.c_str(), static_cast<long long>(r),
                kk);
    for (int i = 0; i < kk; ++i) {
      const int c = idx[i];
      std::printf("  %s (%.3f)",
                  c < static_cast<int>(labels.size())
                      ? labels[c].c_str()
                      : absl::StrCat("class ", c).c_str(),
                  data[r * cols + c]);
    }
    std::printf("\n");
  }
}

int Infer(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("infer needs NAME");
  const std::string model = args.positional[1];
  std::vector<HostTensor> inputs;
  const auto specs = args.All("input");
  if (specs.empty()) return Usage("infer needs at least one --input");
  std::vector<std::string> input_names;
  if (specs.size() == 1 && specs[0].find('=') == std::string::npos) {
    auto info = client.Get(model);
    if (!info.ok()) return Fail(info.status());
    if (info->inputs_size() != 1) {
      return Usage(
          "the model has several inputs: name each, --input NAME=FILE");
    }
    input_names.push_back(info->inputs(0).name());
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    std::string name, path = specs[i];
    const size_t eq = specs[i].find('=');
    if (eq != std::string::npos) {
      name = specs[i].substr(0, eq);
      path = specs[i].substr(eq + 1);
    } else if (i < input_names.size()) {
      name = input_names[i];
    }
    auto t = ReadNpy(path, name);
    if (!t.ok()) return Usage(std::string(t.status().message()));
    inputs.push_back(std::move(*t));
  }
  auto result = client.Infer(model, inputs, args.Get("version"));
  if (!result.ok()) return Fail(result.status());
  std::printf("served by %s version %s\n", result->model.c_str(),
              result->version.c_str());
  int k = 0;
  if (args.Has("top-k") && !absl::SimpleAtoi(args.Get("top-k"), &k)) {
    return Usage("--top-k takes a number");
  }
  const auto labels = ReadLabels(args.Get("labels"));
  const std::string dir = args.Get("output-dir");
  for (const HostTensor& t : result->outputs) {
    std::printf("output %s: %s %s\n", t.name.c_str(), DataTypeName(t.dtype),
                ShapeToString(t.shape).c_str());
    if (!dir.empty()) {
      const std::string path = absl::StrCat(dir, "/", t.name, ".npy");
      absl::Status st = WriteNpy(path, t);
      if (!st.ok()) return Fail(st);
      std::printf("  wrote %s\n", path.c_str());
    }
    if (k > 0) PrintTopK(t, k, labels);
  }
  return 0;
}

int RegisterVariant(TwinClient& client, const Args& args) {
  if (args.positional.size() != 4) {
    return Usage("register-variant needs NAME, VARIANT and MODEL.pt");
  }
  std::ifstream in(args.positional[3], std::ios::binary);
  if (!in) return Usage("cannot read " + args.positional[3]);
  std::stringstream ss;
  ss << in.rdbuf();
  RegisterOptions options;
  options.name = args.positional[1];
  options.variant = args.positional[2];
  auto info = client.Register(options, ss.str());
  if (!info.ok()) return Fail(info.status());
  PrintModel(*info);
  return 0;
}

int Calibrate(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("calibrate needs NAME");
  const std::string model = args.positional[1];
  std::vector<HostTensor> inputs;
  std::vector<int64_t> labels;
  int64_t limit = -1;
  if (args.Has("limit") && !absl::SimpleAtoi(args.Get("limit"), &limit)) {
    return Usage("--limit takes a number");
  }
  if (args.Has("idx-images")) {
    auto images = ReadIdx(args.Get("idx-images"));
    if (!images.ok()) return Usage(std::string(images.status().message()));
    auto info = client.Get(model);
    if (!info.ok()) return Fail(info.status());
    HostTensor x = ImagesToFloat(*images);
    x.name = info->inputs(0).name();
    inputs.push_back(x);
    if (args.Has("idx-labels")) {
      auto y = ReadIdx(args.Get("idx-labels"));
      if (!y.ok()) return Usage(std::string(y.status().message()));
      for (size_t i = 0; i < y->byte_size; ++i) {
        labels.push_back(static_cast<unsigned char>(y->data[i]));
      }
    }
  } else {
    const auto specs = args.All("input");
    if (specs.empty()) return Usage("calibrate needs --input or --idx-images");
    for (const auto& spec : specs) {
      std::string name, path = spec;
      const size_t eq = spec.find('=');
      if (eq != std::string::npos) {
        name = spec.substr(0, eq);
        path = spec.substr(eq + 1);
      } else {
        auto info = client.Get(model);
        if (!info.ok()) return Fail(info.status());
        name = info->inputs(0).name();
      }
      auto t = ReadNpy(path, name);
      if (!t.ok()) return Usage(std::string(t.status().message()));
      inputs.push_back(std::move(*t));
    }
    if (args.Has("labels-npy")) {
      auto y = ReadNpy(args.Get("labels-npy"), "labels");
      if (!y.ok()) return Usage(std::string(y.status().message()));
      const int64_t n = ElementCount(y->shape);
      for (int64_t i = 0; i < n; ++i) {
        switch (y->dtype) {
          case DataType::kInt64:
            labels.push_back(reinterpret_cast<const int64_t*>(y->data)[i]);
            break;
          case DataType::kInt32:
            labels.push_back(reinterpret_cast<const int32_t*>(y->data)[i]);
            break;
          case DataType::kUint8:
            labels.push_back(reinterpret_cast<const uint8_t*>(y->data)[i]);
            break;
          default:
            return Usage("labels must be int64, int32 or uint8");
        }
      }
    }
  }
  if (limit > 0) {
    for (HostTensor& t : inputs) {
      if (!t.shape.empty() && t.shape[0] > limit) {
        t.byte_size = t.byte_size / t.shape[0] * limit;
        t.shape[0] = limit;
      }
    }
    if (static_cast<int64_t>(labels.size()) > limit) labels.resize(limit);
  }
  const std::string set = args.Get("set", "calib");
  auto info = client.UploadCalibration(
      model, set, inputs, labels, args.Has("replace"), 64,
      [](int64_t done, int64_t total) {
        const int width = 30;
        const int filled =
            static_cast<int>(width * done / std::max<int64_t>(1, total));
        std::fprintf(stderr, "\r[%s%s] %lld/%lld samples",
                     std::string(filled, '#').c_str(),
                     std::string(width - filled, '.').c_str(),
                     static_cast<long long>(done),
                     static_cast<long long>(total));
      });
  std::fprintf(stderr, "\n");
  if (!info.ok()) return Fail(info.status());
  std::printf("stored set '%s' of %s: %lld samples, %llu bytes%s\n",
              info->name().c_str(), info->model().c_str(),
              static_cast<long long>(info->samples()),
              static_cast<unsigned long long>(info->bytes()),
              info->labels() ? ", labelled" : "");
  return 0;
}

int Sets(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("sets needs NAME");
  auto sets = client.ListCalibrationSets(args.positional[1]);
  if (!sets.ok()) return Fail(sets.status());
  std::printf("%-16s %10s %14s %-8s %s\n", "set", "samples", "bytes", "labels",
              "created");
  for (const auto& s : *sets) {
    std::printf("%-16s %10lld %14llu %-8s %s\n", s.name().c_str(),
                static_cast<long long>(s.samples()),
                static_cast<unsigned long long>(s.bytes()),
                s.labels() ? "yes" : "no", Time(s.created_unix_ms()).c_str());
  }
  return 0;
}

int Follow(TwinClient& client, const std::string& id) {
  const bool tty = isatty(fileno(stderr));
  auto last = client.WatchJob(id, [tty](const v1::Job& j) {
    if (tty) {
      std::fprintf(stderr, "\r%s", FormatProgress(j).c_str());
    } else {
      std::fprintf(stderr, "%s\n", FormatProgress(j).c_str());
    }
  });
  if (tty) std::fprintf(stderr, "\n");
  if (!last.ok()) return Fail(last.status());
  std::printf("job %s %s: %s\n", last->id().c_str(),
              v1::JobState_Name(last->state()).c_str(),
              last->message().c_str());
  return last->state() == v1::JOB_SUCCEEDED ? 0 : 1;
}

int Quantize(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("quantize needs NAME");
  v1::QuantizeRequest req;
  req.set_model(args.positional[1]);
  req.set_variant(args.Get("variant"));
  req.set_calibration_set(args.Get("set"));
  req.set_eval_set(args.Get("eval-set"));
  req.set_method(args.Get("method"));
  req.set_mode(args.Get("mode"));
  req.set_per_tensor_weights(args.Has("per-tensor"));
  req.set_auto_fallback(args.Has("auto-fallback"));
  for (const auto& m : args.All("fp32")) req.add_fp32_modules(m);
  double d;
  int64_t n;
  if (args.Has("percentile")) {
    if (!absl::SimpleAtod(args.Get("percentile"), &d))
      return Usage("--percentile takes a number");
    req.set_percentile(d);
  }
  if (args.Has("max-samples")) {
    if (!absl::SimpleAtoi(args.Get("max-samples"), &n))
      return Usage("--max-samples takes a number");
    req.set_max_samples(n);
  }
  if (args.Has("max-agreement-loss")) {
    if (!absl::SimpleAtod(args.Get("max-agreement-loss"), &d))
      return Usage("--max-agreement-loss takes a number");
    req.set_max_agreement_loss(d);
  }
  if (args.Has("max-accuracy-loss")) {
    if (!absl::SimpleAtod(args.Get("max-accuracy-loss"), &d))
      return Usage("--max-accuracy-loss takes a number");
    req.set_max_accuracy_loss(d);
  }
  if (args.Has("max-trials")) {
    if (!absl::SimpleAtoi(args.Get("max-trials"), &n))
      return Usage("--max-trials takes a number");
    req.set_max_trials(static_cast<int32_t>(n));
  }
  auto job = client.Quantize(req);
  if (!job.ok()) return Fail(job.status());
  std::printf("started job %s\n", job->id().c_str());
  if (args.Has("no-watch")) return 0;
  return Follow(client, job->id());
}

int Jobs(TwinClient& client, const Args& args) {
  auto jobs =
      client.ListJobs(args.positional.size() > 1 ? args.positional[1] : "");
  if (!jobs.ok()) return Fail(jobs.status());
  std::printf("%-24s %-16s %-8s %-16s %7s %9s  %s\n", "job", "model", "variant",
              "state", "percent", "elapsed", "message");
  for (const auto& j : *jobs) {
    std::printf("%-24s %-16s %-8s %-16s %6.1f%% %8.1fs  %s\n", j.id().c_str(),
                j.model().c_str(), j.variant().c_str(),
                v1::JobState_Name(j.state()).c_str(), j.percent(),
                j.elapsed_seconds(), j.message().c_str());
  }
  return 0;
}

int Report(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("report needs NAME");
  auto r = client.GetReport(args.positional[1], args.Get("variant", "int8"));
  if (!r.ok()) return Fail(r.status());
  std::fputs(FormatReport(*r, args.Has("brief")).c_str(), stdout);
  return 0;
}

void PrintPolicy(const v1::TrafficPolicy& p) {
  std::string weights;
  for (const auto& [v, w] : p.weights()) {
    absl::StrAppend(&weights, weights.empty() ? "" : ", ", v, "=", w);
  }
  if (p.kind() == "shadow") {
    absl::StrAppend(&weights, "shadow ", p.candidate(), " on ",
                    100 * p.shadow_fraction(), "%");
  } else if (p.kind() == "rollout") {
    absl::StrAppend(&weights, "rollout of ", p.candidate(), " at stage ",
                    p.stage() + 1, "/", p.steps_size(), " (",
                    p.steps(std::min(p.stage(), p.steps_size() - 1)), "%)");
  }
  std::printf("policy v%llu: %s, baseline %s%s%s   (%s by %s%s%s)\n",
              static_cast<unsigned long long>(p.version()), p.kind().c_str(),
              p.baseline().c_str(), weights.empty() ? "" : ", ",
              weights.c_str(), Time(p.updated_unix_ms()).c_str(),
              p.author().empty() ? "-" : p.author().c_str(),
              p.reason().empty() ? "" : ": ", p.reason().c_str());
}

int Policy(TwinClient& client, const Args& args) {
  if (args.positional.size() < 2) return Usage("policy needs NAME");
  const std::string model = args.positional[1];
  grpc::ClientContext ctx;
  v1::TrafficPolicy out;
  grpc::Status st;
  if (!args.Has("pinned") && !args.Has("weights") && !args.Has("shadow") &&
      !args.Has("rollout")) {
    v1::GetTrafficPolicyRequest req;
    req.set_model(model);
    st = client.management()->GetTrafficPolicy(&ctx, req, &out);
  } else {
    v1::SetTrafficPolicyRequest req;
    req.set_model(model);
    req.set_author(args.Get("author"));
    req.set_reason(args.Get("reason"));
    auto* p = req.mutable_policy();
    if (args.Has("pinned")) {
      p->set_kind("pinned");
      p->set_baseline(args.Get("pinned"));
    } else if (args.Has("rollout")) {
      p->set_kind("rollout");
      p->set_baseline(args.Get("baseline"));
      p->set_candidate(args.Get("rollout"));
      for (absl::string_view part :
           absl::StrSplit(args.Get("steps", "1,10,50,100"), ',')) {
        double v;
        if (!absl::SimpleAtod(part, &v))
          return Usage("--steps takes 1,10,50,100");
        p->add_steps(v);
      }
      double v;
      int64_t n;
      if (args.Has("min-requests")) {
        if (!absl::SimpleAtoi(args.Get("min-requests"), &n))
          return Usage("--min-requests takes a number");
        p->set_min_requests(n);
      }
      if (args.Has("min-seconds")) {
        if (!absl::SimpleAtod(args.Get("min-seconds"), &v))
          return Usage("--min-seconds takes a number");
        p->set_min_seconds(v);
      }
      if (args.Has("max-disagreement")) {
        if (!absl::SimpleAtod(args.Get("max-disagreement"), &v))
          return Usage("--max-disagreement takes a share, e.g. 0.02");
        p->set_max_disagreement(v);
      }
    } else if (args.Has("shadow")) {
      p->set_kind("shadow");
      p->set_baseline(args.Get("baseline"));
      p->set_candidate(args.Get("shadow"));
      if (args.Has("fraction")) {
        double f;
        if (!absl::SimpleAtod(args.Get("fraction"), &f)) {
          return Usage("--fraction takes a number in (0, 1]");
        }
        p->set_shadow_fraction(f);
      }
    } else {
      p->set_kind("weighted");
      p->set_baseline(args.Get("baseline"));
      for (absl::string_view part :
           absl::StrSplit(args.Get("weights"), ',', absl::SkipEmpty())) {
        std::vector<std::string> kv = absl::StrSplit(part, '=');
        double w;
        if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &w)) {
          return Usage("--weights takes VARIANT=SHARE,VARIANT=SHARE");
        }
        (*p->mutable_weights())[kv[0]] = w;
      }
    }
    st = client.management()->SetTrafficPolicy(&ctx, req, &out);
  }
  if (!st.ok()) return Fail(FromGrpcStatus(st));
  PrintPolicy(out);
  return 0;
}

int PromoteOrRollback(TwinClient& client, const Args& args) {
  grpc::ClientContext ctx;
  v1::TrafficPolicy out;
  grpc::Status st;
  if (args.positional[0] == "promote") {
    if (args.positional.size() != 3) return Usage("promote needs NAME VARIANT");
    v1::PromoteRequest req;
    req.set_model(args.positional[1]);
    req.set_variant(args.positional[2]);
    req.set_author(args.Get("author"));
    req.set_reason(args.Get("reason"));
    st = client.management()->Promote(&ctx, req, &out);
  } else {
    if (args.positional.size() != 2) return Usage("rollback needs NAME");
    v1::RollbackRequest req;
    req.set_model(args.positional[1]);
    req.set_author(args.Get("author"));
    req.set_reason(args.Get("reason"));
    st = client.management()->Rollback(&ctx, req, &out);
  }
  if (!st.ok()) return Fail(FromGrpcStatus(st));
  PrintPolicy(out);
  return 0;
}

int History(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("history needs NAME");
  grpc::ClientContext ctx;
  v1::PolicyHistoryRequest req;
  req.set_model(args.positional[1]);
  v1::PolicyHistoryResponse resp;
  grpc::Status st = client.management()->PolicyHistory(&ctx, req, &resp);
  if (!st.ok()) return Fail(FromGrpcStatus(st));
  std::printf("%-5s %-19s %-9s %-16s %-40s %s\n", "ver", "when", "action", "by",
              "policy", "why");
  for (const auto& c : resp.changes()) {
    std::string policy = c.policy().kind() + " " + c.policy().baseline();
    for (const auto& [v, w] : c.policy().weights()) {
      absl::StrAppend(&policy, " ", v, "=", w);
    }
    std::printf("%-5llu %-19s %-9s %-16s %-40s %s\n",
                static_cast<unsigned long long>(c.version()),
                Time(c.unix_ms()).c_str(), c.action().c_str(),
                c.actor().c_str(), policy.c_str(), c.reason().c_str());
  }
  return 0;
}

absl::StatusOr<v1::ModelStats> FetchStats(TwinClient& client,
                                          const std::string& model) {
  grpc::ClientContext ctx;
  v1::GetModelStatsRequest req;
  req.set_model(model);
  v1::ModelStats out;
  grpc::Status st = client.management()->GetModelStats(&ctx, req, &out);
  if (!st.ok()) return FromGrpcStatus(st);
  return out;
}

int Compare(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("compare needs NAME");
  auto first = FetchStats(client, args.positional[1]);
  if (!first.ok()) return Fail(first.status());
  if (!args.Has("watch")) {
    std::fputs(FormatCompare(*first, nullptr).c_str(), stdout);
    return 0;
  }
  double interval = 2;
  int64_t count = -1;
  if (args.Has("interval") &&
      !absl::SimpleAtod(args.Get("interval"), &interval)) {
    return Usage("--interval takes seconds");
  }
  if (args.Has("count") && !absl::SimpleAtoi(args.Get("count"), &count)) {
    return Usage("--count takes a number");
  }
  v1::ModelStats before = *first;
  for (int64_t i = 0; count < 0 || i < count; ++i) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(static_cast<int64_t>(interval * 1000)));
    auto now = FetchStats(client, args.positional[1]);
    if (!now.ok()) return Fail(now.status());
    std::fputs(FormatCompare(*now, &before).c_str(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    before = *now;
  }
  return 0;
}

int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  if (args.Has("help") || args.positional.empty()) {
    std::fputs(kUsage, args.Has("help") ? stdout : stderr);
    return args.Has("help") ? 0 : 2;
  }
  const char* env = std::getenv("TWINSERVE_SERVER");
  const std::string server =
      args.Get("server", env && *env ? env : "127.0.0.1:8001");
  TwinClient client(server);
  const std::string& cmd = args.positional[0];
  if (cmd == "health") return Health(client);
  if (cmd == "register") return Register(client, args);
  if (cmd == "list") return List(client);
  if (cmd == "batching") return Batching(client, args);
  if (cmd == "show" || cmd == "unregister") {
    if (args.positional.size() != 2) return Usage(cmd + " needs NAME");
    if (cmd == "unregister") {
      absl::Status st = client.Unregister(args.positional[1]);
      if (!st.ok()) return Fail(st);
      std::printf("unregistered %s\n", args.positional[1].c_str());
      return 0;
    }
    auto info = client.Get(args.positional[1]);
    if (!info.ok()) return Fail(info.status());
    PrintModel(*info);
    return 0;
  }
  if (cmd == "infer") return Infer(client, args);
  if (cmd == "register-variant") return RegisterVariant(client, args);
  if (cmd == "calibrate") return Calibrate(client, args);
  if (cmd == "sets") return Sets(client, args);
  if (cmd == "delete-set") {
    if (args.positional.size() != 3) return Usage("delete-set needs NAME SET");
    absl::Status st =
        client.DeleteCalibrationSet(args.positional[1], args.positional[2]);
    if (!st.ok()) return Fail(st);
    std::printf("deleted set %s of %s\n", args.positional[2].c_str(),
                args.positional[1].c_str());
    return 0;
  }
  if (cmd == "quantize") return Quantize(client, args);
  if (cmd == "jobs") return Jobs(client, args);
  if (cmd == "watch" || cmd == "cancel") {
    if (args.positional.size() != 2) return Usage(cmd + " needs JOB");
    if (cmd == "watch") return Follow(client, args.positional[1]);
    auto job = client.CancelJob(args.positional[1]);
    if (!job.ok()) return Fail(job.status());
    std::printf("cancelling job %s\n", job->id().c_str());
    return 0;
  }
  if (cmd == "report") return Report(client, args);
  if (cmd == "policy") return Policy(client, args);
  if (cmd == "promote" || cmd == "rollback") {
    return PromoteOrRollback(client, args);
  }
  if (cmd == "history") return History(client, args);
  if (cmd == "compare") return Compare(client, args);
  return Usage("unknown command '" + cmd + "'");
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::Main(argc, argv); }
