// twinctl's model commands: health, register, register-variant, list,
// show, unregister, batching, infer.
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/npy.h"
#include "client/twinctl_common.h"

namespace twinserve {
namespace twinctl {
namespace {

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

}  // namespace

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
  const auto bytes = ReadBytes(args.positional[2]);
  if (!bytes) return Usage("cannot read " + args.positional[2]);
  const bool one_call = args.Has("quantize") || args.Has("calibrate") ||
                        args.Has("calibrate-idx") || args.Has("rollout") ||
                        args.Has("shadow");
  if (!one_call) {
    auto info = client.Register(options, *bytes);
    if (!info.ok()) return Fail(info.status());
    PrintModel(*info);
    return 0;
  }
  // Quantize at registration: the samples go in the same stream.
  if (!args.Has("quantize")) {
    return Usage("--calibrate, --rollout and --shadow go with --quantize");
  }
  if (options.inputs.empty()) {
    return Usage("register --quantize needs --input (the samples' shape)");
  }
  int64_t limit = -1;
  if (args.Has("limit") && !absl::SimpleAtoi(args.Get("limit"), &limit)) {
    return Usage("--limit takes a number");
  }
  std::string error;
  if (!ReadSamples(args, "calibrate", options.inputs[0].name, limit,
                   &options.calibration, &options.calibration_labels, &error) ||
      !ReadSamples(args, "eval", options.inputs[0].name, -1,
                   &options.evaluation, &options.evaluation_labels, &error)) {
    return Usage(error);
  }
  if (options.calibration.empty()) {
    return Usage("register --quantize needs --calibrate or --calibrate-idx");
  }
  v1::QuantizeRequest q;
  q.set_mode(args.Get("mode"));
  q.set_method(args.Get("method"));
  q.set_auto_fallback(args.Has("auto-fallback"));
  std::optional<double> v;
  if (!NumberFlag(args, "max-accuracy-loss", &v)) {
    return Usage("--max-accuracy-loss takes a number");
  }
  if (v) q.set_max_accuracy_loss(*v);
  if (!NumberFlag(args, "max-agreement-loss", &v)) {
    return Usage("--max-agreement-loss takes a number");
  }
  if (v) q.set_max_agreement_loss(*v);
  options.quantize = q;
  if (args.Has("rollout")) {
    v1::TrafficPolicy plan;
    Args rollout = args;
    if (rollout.Get("rollout") == "true") rollout.flags.erase("rollout");
    error = RolloutFromFlags(rollout, &plan);
    if (!error.empty()) return Usage(error);
    options.plan = plan;
  } else if (args.Has("shadow")) {
    v1::TrafficPolicy plan;
    plan.set_kind("shadow");
    if (args.Get("shadow") != "true") plan.set_candidate(args.Get("shadow"));
    if (!NumberFlag(args, "fraction", &v)) {
      return Usage("--fraction takes a share, e.g. 0.1");
    }
    if (v) plan.set_shadow_fraction(*v);
    options.plan = plan;
  }
  options.wait_for_variant = args.Has("wait");
  auto resp = client.RegisterModel(options, *bytes);
  if (!resp.ok()) return Fail(resp.status());
  PrintModel(resp->model());
  if (resp->has_job()) {
    const v1::Job& j = resp->job();
    std::printf("quantization job %s: %s%s%s\n", j.id().c_str(),
                v1::JobState_Name(j.state()).c_str(),
                j.message().empty() ? "" : ": ", j.message().c_str());
    if (options.wait_for_variant && j.state() != v1::JOB_SUCCEEDED) return 1;
  }
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
  const auto bytes = ReadBytes(args.positional[3]);
  if (!bytes) return Usage("cannot read " + args.positional[3]);
  RegisterOptions options;
  options.name = args.positional[1];
  options.variant = args.positional[2];
  auto info = client.Register(options, *bytes);
  if (!info.ok()) return Fail(info.status());
  PrintModel(*info);
  return 0;
}

int Show(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("show needs NAME");
  auto info = client.Get(args.positional[1]);
  if (!info.ok()) return Fail(info.status());
  PrintModel(*info);
  return 0;
}

int Unregister(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("unregister needs NAME");
  absl::Status st = client.Unregister(args.positional[1]);
  if (!st.ok()) return Fail(st);
  std::printf("unregistered %s\n", args.positional[1].c_str());
  return 0;
}

}  // namespace twinctl
}  // namespace twinserve
