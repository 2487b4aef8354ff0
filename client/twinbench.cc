// twinbench: a load generator for twinserve (and any Open Inference
// Protocol server), in the spirit of Triton's perf_analyzer.
//
//   twinbench --server=127.0.0.1:8001 --model=fashion
//       [--version=int8] --concurrency=1,2,4,8,16,32 [--rate=R]
//       [--batch=1] [--input=NAME=FILE.npy ...] [--warmup=1] [--duration=5]
//       [--channels=1] [--csv=FILE] [--json=FILE] [--repeat=N]
//       [--shared_memory]
//
// One step per concurrency (closed loop) or, with --rate, one open-loop
// step per concurrency cap. Prints a table with throughput, client
// latency percentiles and the server's own split (queue, compute, average
// executed batch) taken from ModelStatistics over the same window.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/channel.h"
#include "client/load_generator.h"
#include "client/npy.h"
#include "client/twin_client.h"

ABSL_FLAG(std::string, server, "127.0.0.1:8001", "host:port of the server");
ABSL_FLAG(std::string, token, "",
          "bearer token sent with every call (default $TWINSERVE_TOKEN)");
ABSL_FLAG(std::string, tls_ca, "",
          "TLS: the CA (PEM) that signed the server's certificate");
ABSL_FLAG(std::string, tls_cert, "",
          "mutual TLS: this client's certificate (PEM); needs --tls_key");
ABSL_FLAG(std::string, tls_key, "", "mutual TLS: its private key (PEM)");
ABSL_FLAG(std::string, tls_server_name, "",
          "TLS: the name to check in the server's certificate, if not the "
          "--server host");
ABSL_FLAG(std::string, model, "", "model name");
ABSL_FLAG(std::string, version, "",
          "variant to pin (empty: the traffic policy routes)");
ABSL_FLAG(std::string, concurrency, "1,2,4,8,16,32",
          "requests in flight per step (comma list: a sweep); with --rate, "
          "the cap on requests in flight");
ABSL_FLAG(double, rate, 0,
          "open loop: requests per second (0: closed loop at --concurrency)");
ABSL_FLAG(int, batch, 1, "rows per request (dim 0 of free-batch inputs)");
ABSL_FLAG(std::vector<std::string>, input, {},
          "NAME=FILE.npy: request inputs cut from these arrays (N x ...), "
          "--batch rows at a time, in turn; default: random inputs shaped "
          "by ModelMetadata");
ABSL_FLAG(double, warmup, 1, "seconds of load before measuring, per step");
ABSL_FLAG(double, duration, 5, "seconds measured per step");
ABSL_FLAG(int, repeat, 1,
          "measure each step this many times and report the run with the "
          "median throughput");
ABSL_FLAG(int, channels, 1, "gRPC connections to spread requests over");
ABSL_FLAG(std::string, routing_key, "",
          "routing_key parameter sent with each request (sticky A/B)");
ABSL_FLAG(std::string, csv, "", "write the results as CSV here");
ABSL_FLAG(std::string, json, "", "write the results as JSON here");
ABSL_FLAG(bool, ping, false,
          "send ServerLive instead of ModelInfer: the gRPC round trip of an "
          "empty call through the same server (the latency floor)");
ABSL_FLAG(bool, progress, true, "show a progress line on stderr");
ABSL_FLAG(bool, server_timings, false,
          "ask the server for each request's stage timings (decode, engine, "
          "encode) and print their medians below each row");
ABSL_FLAG(bool, shared_memory, false,
          "send inputs through system shared memory (Triton's extension): "
          "each distinct request's inputs go into a POSIX shm object, "
          "registered once, and requests name the region instead of carrying "
          "the bytes; outputs still come back in the response. The server "
          "must run with --shared_memory; keys are /twinserve_bench_*");

namespace twinserve {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "twinbench: %s\n", message.c_str());
  return 1;
}

// Moves requests' inputs into shared memory regions registered with the
// server; unregisters and removes them when destroyed.
class SharedMemoryInputs {
 public:
  explicit SharedMemoryInputs(inference::GRPCInferenceService::Stub* stub)
      : stub_(stub) {}
  ~SharedMemoryInputs() {
    for (const std::string& key : keys_) {
      grpc::ClientContext ctx;
      inference::SystemSharedMemoryUnregisterRequest req;
      req.set_name(key.substr(1));
      inference::SystemSharedMemoryUnregisterResponse resp;
      stub_->SystemSharedMemoryUnregister(&ctx, req, &resp);
      shm_unlink(key.c_str());
    }
  }

  // Copies the raw inputs of `req` into a new region (each input 64-byte
  // aligned) and makes the request name it instead.
  absl::Status Place(inference::ModelInferRequest* req) {
    std::vector<uint64_t> offsets;
    uint64_t total = 0;
    for (const std::string& raw : req->raw_input_contents()) {
      offsets.push_back(total);
      total += (raw.size() + 63) / 64 * 64;
    }
    const uint64_t size = std::max<uint64_t>(total, 1);  // no empty objects
    const std::string key =
        absl::StrFormat("/twinserve_bench_%d_%d", getpid(), keys_.size());
    const int fd = shm_open(key.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return absl::InternalError("cannot create " + key);
    keys_.push_back(key);
    void* base = MAP_FAILED;
    if (ftruncate(fd, size) == 0) {
      base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    close(fd);
    if (base == MAP_FAILED) return absl::InternalError("cannot map " + key);
    for (int i = 0; i < req->raw_input_contents_size(); ++i) {
      const std::string& raw = req->raw_input_contents(i);
      std::memcpy(static_cast<char*>(base) + offsets[i], raw.data(),
                  raw.size());
      auto& params = *req->mutable_inputs(i)->mutable_parameters();
      params["shared_memory_region"].set_string_param(key.substr(1));
      params["shared_memory_offset"].set_int64_param(offsets[i]);
      params["shared_memory_byte_size"].set_int64_param(raw.size());
    }
    munmap(base, size);
    req->clear_raw_input_contents();
    grpc::ClientContext ctx;
    inference::SystemSharedMemoryRegisterRequest reg;
    reg.set_name(key.substr(1));
    reg.set_key(key);
    reg.set_byte_size(size);
    inference::SystemSharedMemoryRegisterResponse resp;
    grpc::Status st = stub_->SystemSharedMemoryRegister(&ctx, reg, &resp);
    if (!st.ok()) {
      return absl::UnavailableError("registering shared memory: " +
                                    st.error_message());
    }
    return absl::OkStatus();
  }

 private:
  inference::GRPCInferenceService::Stub* const stub_;
  std::vector<std::string> keys_;
};

// Random tensors shaped like the model's inputs: dim 0 = rows when free,
// other free dims = 1.
absl::StatusOr<std::vector<HostTensor>> RandomInputs(
    inference::GRPCInferenceService::Stub* stub, const std::string& model,
    const std::string& version, int rows, std::mt19937* rng) {
  grpc::ClientContext ctx;
  inference::ModelMetadataRequest req;
  req.set_name(model);
  req.set_version(version);
  inference::ModelMetadataResponse md;
  grpc::Status st = stub->ModelMetadata(&ctx, req, &md);
  if (!st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("ModelMetadata(", model, "): ", st.error_message()));
  }
  std::vector<HostTensor> out;
  for (const auto& in : md.inputs()) {
    auto dtype = ParseDataType(in.datatype());
    if (!dtype.ok()) return dtype.status();
    Shape shape(in.shape().begin(), in.shape().end());
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == -1) shape[i] = i == 0 ? rows : 1;
    }
    const int64_t n = ElementCount(shape);
    std::string bytes(n * DataTypeSize(*dtype), '\0');
    if (*dtype == DataType::kFp32) {
      std::uniform_real_distribution<float> dist(0, 1);
      float* f = reinterpret_cast<float*>(bytes.data());
      for (int64_t i = 0; i < n; ++i) f[i] = dist(*rng);
    }
    out.push_back(HostTensor::Owned(in.name(), *dtype, shape, bytes));
  }
  return out;
}

// Requests cut from .npy arrays, `rows` samples each, up to 256 requests.
absl::StatusOr<std::vector<std::vector<HostTensor>>> NpyInputs(
    const std::vector<std::string>& specs, int rows) {
  std::vector<HostTensor> arrays;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError("--input takes NAME=FILE.npy");
    }
    auto t = ReadNpy(spec.substr(eq + 1), spec.substr(0, eq));
    if (!t.ok()) return t.status();
    if (t->shape.empty() || t->shape[0] < rows) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec, " has fewer than --batch=", rows, " samples"));
    }
    arrays.push_back(std::move(*t));
  }
  std::vector<std::vector<HostTensor>> requests;
  const int64_t n = arrays[0].shape[0];
  for (int64_t start = 0; start + rows <= n && requests.size() < 256;
       start += rows) {
    std::vector<HostTensor> req;
    for (const HostTensor& a : arrays) {
      const size_t row_bytes = a.byte_size / a.shape[0];
      Shape shape = a.shape;
      shape[0] = rows;
      req.push_back(HostTensor::Owned(
          a.name, a.dtype, shape,
          std::string(a.data + start * row_bytes, rows * row_bytes)));
    }
    requests.push_back(std::move(req));
  }
  return requests;
}

std::string Ms(double us) { return absl::StrFormat("%.3f", us / 1000); }

std::string Row(const LoadResult& r) {
  return absl::StrFormat(
      "%6d %8s %9.0f %10.0f %9s %9s %9s %9s %7d %9s %9s %9s %6s", r.concurrency,
      r.target_rate > 0 ? absl::StrFormat("%.0f", r.target_rate) : "-",
      r.requests_per_second, r.inferences_per_second, Ms(r.p50_us),
      Ms(r.p90_us), Ms(r.p99_us), Ms(r.max_us), r.errors + r.skipped,
      r.server_request_us < 0 ? "-" : Ms(r.server_request_us),
      r.server_queue_us < 0 ? "-" : Ms(r.server_queue_us),
      r.server_compute_us < 0 ? "-" : Ms(r.server_compute_us),
      r.server_batch < 0 ? "-" : absl::StrFormat("%.1f", r.server_batch));
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // The load generator must not be the bottleneck: skip Abseil's lock-order
  // checks (on in Debian's build) in gRPC's mutexes and ours.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return Fail("--model is required");
  std::vector<int> levels;
  for (absl::string_view c :
       absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(c, &v) || v < 1) {
      return Fail("--concurrency takes numbers >= 1, e.g. 1,2,4");
    }
    levels.push_back(v);
  }
  const int channels = std::max(1, absl::GetFlag(FLAGS_channels));
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(256 << 20);
    args.SetMaxSendMessageSize(256 << 20);
    // A separate connection per channel, not a shared subchannel.
    args.SetInt("grpc.twinbench_channel", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    std::string token = absl::GetFlag(FLAGS_token);
    if (token.empty()) token = TokenFromEnvironment();
    auto connection = LoadConnection(
        token, absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert),
        absl::GetFlag(FLAGS_tls_key), absl::GetFlag(FLAGS_tls_server_name));
    if (!connection.ok()) {
      std::fprintf(stderr, "twinbench: %s\n",
                   std::string(connection.status().message()).c_str());
      return 2;
    }
    stubs.push_back(inference::GRPCInferenceService::NewStub(
        MakeChannel(absl::GetFlag(FLAGS_server), args, *connection)));
  }
  const int rows = absl::GetFlag(FLAGS_batch);
  const std::string version = absl::GetFlag(FLAGS_version);
  std::vector<std::vector<HostTensor>> inputs;
  if (absl::GetFlag(FLAGS_ping)) {
    inputs.emplace_back();  // ServerLive carries no tensors
  } else if (absl::GetFlag(FLAGS_input).empty()) {
    std::mt19937 rng(1);
    for (int i = 0; i < 16; ++i) {
      auto in = RandomInputs(stubs[0].get(), model, version, rows, &rng);
      if (!in.ok()) return Fail(std::string(in.status().message()));
      inputs.push_back(std::move(*in));
    }
  } else {
    auto in = NpyInputs(absl::GetFlag(FLAGS_input), rows);
    if (!in.ok()) return Fail(std::string(in.status().message()));
    inputs = std::move(*in);
  }
  LoadOptions options;
  options.model = model;
  options.version = version;
  options.rate = absl::GetFlag(FLAGS_rate);
  options.warmup_seconds = absl::GetFlag(FLAGS_warmup);
  options.duration_seconds = absl::GetFlag(FLAGS_duration);
  options.rows_per_request = rows;
  options.ping = absl::GetFlag(FLAGS_ping);
  options.server_timings = absl::GetFlag(FLAGS_server_timings);
  SharedMemoryInputs shm(stubs[0].get());
  for (const auto& in : inputs) {
    auto req = MakeInferRequest(model, in, version, {}, "");
    if (!absl::GetFlag(FLAGS_routing_key).empty()) {
      (*req.mutable_parameters())["routing_key"].set_string_param(
          absl::GetFlag(FLAGS_routing_key));
    }
    if (absl::GetFlag(FLAGS_server_timings)) {
      (*req.mutable_parameters())["twinserve_timings"].set_bool_param(true);
    }
    if (absl::GetFlag(FLAGS_shared_memory) && !options.ping) {
      if (absl::Status st = shm.Place(&req); !st.ok()) {
        return Fail(std::string(st.message()));
      }
    }
    options.requests.push_back(std::move(req));
  }
  const bool tty = isatty(2);
  if (absl::GetFlag(FLAGS_progress)) {
    options.progress = [tty](const std::string& line) {
      std::fprintf(stderr, tty ? "\r  %-70s" : "  %s\n", line.c_str());
      std::fflush(stderr);
    };
  }

  std::printf(
      "twinbench: model %s%s, %d row(s) per request, %s, %.1f s "
      "warm-up + %.1f s per step\n",
      model.c_str(), version.empty() ? " (routed)" : (":" + version).c_str(),
      rows,
      options.rate > 0
          ? absl::StrFormat("open loop at %.0f req/s", options.rate).c_str()
          : "closed loop",
      options.warmup_seconds, options.duration_seconds);
  const std::string header = absl::StrFormat(
      "%6s %8s %9s %10s %9s %9s %9s %9s %7s %9s %9s %9s %6s", "conc", "rate",
      "req/s", "infer/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors",
      "srv req", "srv queue", "srv comp", "batch");
  std::printf("%s\n", header.c_str());
  std::vector<LoadResult> results;
  const int repeat = std::max(1, absl::GetFlag(FLAGS_repeat));
  for (int level : levels) {
    options.concurrency = level;
    std::vector<LoadResult> runs;
    for (int i = 0; i < repeat; ++i) {
      auto r = RunLoad(stubs, options);
      if (tty && options.progress) std::fprintf(stderr, "\r%80s\r", "");
      if (!r.ok()) return Fail(std::string(r.status().message()));
      runs.push_back(*r);
    }
    std::sort(runs.begin(), runs.end(),
              [](const LoadResult& a, const LoadResult& b) {
                return a.requests_per_second < b.requests_per_second;
              });
    const LoadResult& median = runs[runs.size() / 2];
    std::printf("%s\n", Row(median).c_str());
    std::fflush(stdout);
    if (median.stage_engine_us >= 0) {
      std::printf(
          "         server stages (p50): decode %.1f us, engine %.1f us, "
          "encode %.1f us\n",
          median.stage_decode_us, median.stage_engine_us,
          median.stage_encode_us);
    }
    for (const auto& [code, n] : median.errors_by_code) {
      std::printf("         errors with gRPC code %s: %llu\n", code.c_str(),
                  static_cast<unsigned long long>(n));
    }
    results.push_back(median);
  }
  if (!absl::GetFlag(FLAGS_csv).empty()) {
    std::ofstream csv(absl::GetFlag(FLAGS_csv));
    csv << "model,version,batch,concurrency,rate,requests,errors,skipped,"
           "req_per_s,infer_per_s,mean_us,p50_us,p90_us,p99_us,max_us,"
           "server_request_us,server_queue_us,server_compute_us,server_batch\n";
    for (const LoadResult& r : results) {
      csv << absl::StrJoin(
                 {model, version, absl::StrCat(rows),
                  absl::StrCat(r.concurrency), absl::StrCat(r.target_rate),
                  absl::StrCat(r.requests), absl::StrCat(r.errors),
                  absl::StrCat(r.skipped), absl::StrCat(r.requests_per_second),
                  absl::StrCat(r.inferences_per_second),
                  absl::StrCat(r.mean_us), absl::StrCat(r.p50_us),
                  absl::StrCat(r.p90_us), absl::StrCat(r.p99_us),
                  absl::StrCat(r.max_us), absl::StrCat(r.server_request_us),
                  absl::StrCat(r.server_queue_us),
                  absl::StrCat(r.server_compute_us),
                  absl::StrCat(r.server_batch)},
                 ",")
          << "\n";
    }
    if (!csv) return Fail("cannot write " + absl::GetFlag(FLAGS_csv));
  }
  if (!absl::GetFlag(FLAGS_json).empty()) {
    std::ofstream json(absl::GetFlag(FLAGS_json));
    json << "{\"model\": \"" << model << "\", \"version\": \"" << version
         << "\", \"batch\": " << rows << ", \"steps\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const LoadResult& r = results[i];
      json << absl::StrFormat(
          "  {\"concurrency\": %d, \"rate\": %g, \"requests\": %d, "
          "\"errors\": %d, \"skipped\": %d, \"req_per_s\": %g, "
          "\"infer_per_s\": %g, \"mean_us\": %g, \"p50_us\": %g, "
          "\"p90_us\": %g, \"p99_us\": %g, \"max_us\": %g, "
          "\"server_request_us\": %g, \"server_queue_us\": %g, "
          "\"server_compute_us\": %g, "
          "\"server_batch\": %g, \"stage_decode_us\": %g, "
          "\"stage_engine_us\": %g, \"stage_encode_us\": %g}%s\n",
          r.concurrency, r.target_rate, r.requests, r.errors, r.skipped,
          r.requests_per_second, r.inferences_per_second, r.mean_us, r.p50_us,
          r.p90_us, r.p99_us, r.max_us, r.server_request_us, r.server_queue_us,
          r.server_compute_us, r.server_batch, r.stage_decode_us,
          r.stage_engine_us, r.stage_encode_us,
          i + 1 < results.size() ? "," : "");
    }
    json << "]}\n";
    if (!json) return Fail("cannot write " + absl::GetFlag(FLAGS_json));
  }
  int errors = 0;
  for (const LoadResult& r : results) errors += r.errors;
  return errors > 0 ? 3 : 0;
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::Main(argc, argv); }
