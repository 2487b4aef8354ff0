// twinctl: the operator CLI for twinserve.
//
//   twinctl [--server=HOST:PORT] COMMAND [ARGS] [FLAGS]
//
// Exit codes: 0 success, 1 the server refused or failed, 2 bad usage.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/npy.h"
#include "client/twin_client.h"

namespace twinserve {
namespace {

constexpr char kUsage[] = R"(usage: twinctl [--server=HOST:PORT] COMMAND [ARGS]

Commands:
  health                         server liveness, readiness and gRPC health
  register NAME MODEL.pt --input NAME:DTYPE:DIMS --output NAME:DTYPE:DIMS
           [--input ...] [--output ...] [--description TEXT] [--replace]
                                 upload a TorchScript model (-1 = free dim,
                                 e.g. --input image:FP32:-1,1,28,28)
  list                           registered models and their variants
  show NAME                      one model: specs, variants, sizes, state
  unregister NAME                remove a model and its stored files
  infer NAME --input [NAME=]FILE.npy [--input ...] [--version VARIANT]
        [--output-dir DIR] [--top-k K] [--labels FILE]
                                 run one request; writes outputs as .npy,
                                 prints top-k classes for [N,C] outputs

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

const char* const kBoolFlags[] = {"replace", "help"};

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
  std::ifstream in(args.positional[2], std::ios::binary);
  if (!in) return Usage("cannot read " + args.positional[2]);
  std::stringstream ss;
  ss << in.rdbuf();
  auto info = client.Register(options, ss.str());
  if (!info.ok()) return Fail(info.status());
  PrintModel(*info);
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
  return Usage("unknown command '" + cmd + "'");
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::Main(argc, argv); }
