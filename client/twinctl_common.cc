#include "client/twinctl_common.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace twinserve {
namespace twinctl {

const char kUsage[] = R"(usage: twinctl [--server=HOST:PORT] COMMAND [ARGS]

Commands:
  health                         server liveness, readiness and gRPC health
  register NAME MODEL.pt --input NAME:DTYPE:DIMS --output NAME:DTYPE:DIMS
           [--input ...] [--output ...] [--description TEXT] [--replace]
           [--keep-previous]     (a new generation beside the old one)
           [--max-batch N [--batch-delay-us US] [--preferred 4,8]
            [--queue-capacity N]] (dynamic batching from the start)
                                 upload a TorchScript model (-1 = free dim,
                                 e.g. --input image:FP32:-1,1,28,28)
        [--calibrate FILE.npy|--calibrate-idx FILE [--calibrate-labels F]]
        [--eval FILE.npy|--eval-idx FILE [--eval-labels F]] [--limit N]
        [--quantize [--method M] [--mode static] [--auto-fallback]
         [--max-accuracy-loss PTS] [--max-agreement-loss PTS]]
        [--rollout [--steps 1,10,50,100 ...] | --shadow [--fraction F]]
        [--wait]                 ... and quantize in the same call: the
                                 samples go in the registration stream, a
                                 job starts when FP32 is ready, and the plan
                                 (rollout or shadow of the new variant)
                                 applies when it is published
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
        [--mode static|dynamic|int8-weight|int4-weight|bf16]
        [--group-size 32|64|128] [--no-activation-aware]
        [--method auto|minmax|percentile|entropy|mse] [--percentile P]
        [--no-equalize] [--no-bias-correction] [--smooth-alpha A]
        [--per-tensor] [--fp32 MODULE ...] [--max-samples N]
        [--max-agreement-loss PTS] [--max-accuracy-loss PTS]
        [--auto-fallback] [--max-trials N] [--no-watch]
                                 start a quantization job and follow it
                                 (method auto, the default, searches the
                                 recipe and reports the candidates)
  jobs [NAME]                    quantization jobs, newest first
  watch JOB | cancel JOB         follow or cancel a job
  report NAME [--variant int8] [--brief]
                                 the quantization report as tables
  policy NAME [--pinned VARIANT | --weights fp32=90,int8=10 [--baseline V]
        | --shadow CANDIDATE [--fraction F] [--baseline V]
        | --rollout CANDIDATE [--steps 1,10,50,100] [--min-requests N]
          [--min-seconds S] [--max-disagreement SHARE]]
        [--author WHO] [--reason WHY] [--if-version N]
                                 show or set the traffic policy
  promote NAME VARIANT [--if-version N]
                                 all traffic to VARIANT
  rollback NAME [--if-version N] back to the previous policy, at once
                                 (--if-version: only if the policy is still
                                 at version N, e.g. the one just shown)
  history NAME                   policy changes: when, what, who, why
  compare NAME [--watch] [--interval SECONDS] [--count N]
                                 per-variant requests, errors, p50/p90/p99,
                                 throughput, agreement, cosine, share

The server defaults to $TWINSERVE_SERVER or 127.0.0.1:8001; --token TOKEN
(default $TWINSERVE_TOKEN) is sent as a bearer token with every call.
TLS: --tls_ca CA.pem (default $TWINSERVE_TLS_CA) verifies the server; add
--tls_cert CERT.pem --tls_key KEY.pem (or $TWINSERVE_TLS_CERT/_KEY) for
mutual TLS; --tls_server_name NAME if the certificate names another host.
)";

namespace {

const char* const kBoolFlags[] = {
    "replace",  "help",          "per-tensor",
    "no-watch", "watch",         "auto-fallback",
    "brief",    "keep-previous", "off",
    "clear",    "no-equalize",   "no-bias-correction",
    "quantize", "wait",          "no-activation-aware"};

}  // namespace

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
    // --rollout and --shadow name a variant, but register takes them
    // bare (the variant its quantization makes).
    const bool optional_value = a == "rollout" || a == "shadow";
    if (optional_value &&
        (i + 1 >= argc || std::string(argv[i + 1]).rfind("--", 0) == 0)) {
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

std::optional<std::string> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool NumberFlag(const Args& args, const std::string& flag,
                std::optional<double>* out) {
  out->reset();
  if (!args.Has(flag)) return true;
  double v;
  if (!absl::SimpleAtod(args.Get(flag), &v)) return false;
  *out = v;
  return true;
}

bool IntegerFlag(const Args& args, const std::string& flag,
                 std::optional<int64_t>* out) {
  out->reset();
  if (!args.Has(flag)) return true;
  int64_t v;
  if (!absl::SimpleAtoi(args.Get(flag), &v)) return false;
  *out = v;
  return true;
}

}  // namespace twinctl
}  // namespace twinserve
