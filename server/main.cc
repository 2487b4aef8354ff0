// twinserve: serves TorchScript models over the Open Inference Protocol,
// with twinserve.v1 for model management. See README.md.
#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/core/server_core.h"
#include "server/grpc/management_service.h"
#include "server/grpc/oip_service.h"
#include "server/metrics/metrics_http.h"
#include "server/metrics/process_collector.h"
#include "server/metrics/prometheus_exporter.h"
#include "server/runtime/runner.h"

namespace {

std::string DefaultStore() {
  const char* home = std::getenv("TWINSERVE_HOME");
  if (home != nullptr && *home) return absl::StrCat(home, "/store");
  const char* user_home = std::getenv("HOME");
  return absl::StrCat(user_home ? user_home : ".", "/.twinserve/store");
}

int DefaultInferenceThreads() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return cores > 0 ? cores : 1;
}

int g_signal_pipe[2] = {-1, -1};

// Async-signal-safe: only write(2).
extern "C" void OnShutdownSignal(int sig) {
  const char c = static_cast<char>(sig);
  const int saved = errno;
  if (write(g_signal_pipe[1], &c, 1) < 0) {
  }
  errno = saved;
}

}  // namespace

ABSL_FLAG(std::string, address, "0.0.0.0:8001",
          "gRPC listen address (host:port) for the OIP and management "
          "services.");
ABSL_FLAG(std::string, store, DefaultStore(),
          "Folder of the durable model store (default $TWINSERVE_HOME/store, "
          "else ~/.twinserve/store). Created if missing.");
ABSL_FLAG(int, intra_op_threads, 1,
          "LibTorch intra-op threads per forward pass. With the default "
          "inference_threads this keeps threads <= cores.");
ABSL_FLAG(int, inference_threads, 0,
          "Worker threads running forward passes concurrently; 0 = cores / "
          "intra_op_threads.");
ABSL_FLAG(int64_t, inline_compute_us, -1,
          "Requests to a variant whose forward time is below this run on "
          "the gRPC thread that received them, sparing the thread hand-offs; "
          "-1 (default) = below what a hand-off to a worker costs on this "
          "machine (measured at startup and from use); 0 = always hand off.");
ABSL_FLAG(std::string, batch_policy, "adaptive",
          "How batching variants wait for company and cut waiting rows: "
          "adaptive (default: from each model's measured cost curve; waits "
          "only where a fuller batch pays for the wait), fixed (as "
          "configured, Triton's way: waits up to max_queue_delay, one "
          "execution takes all it may) or spread (as fixed, rows spread "
          "over every free worker).");
ABSL_FLAG(int, max_message_bytes, 64 << 20,
          "Largest gRPC message accepted or sent; larger requests get "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_model_bytes, int64_t{4} << 30,
          "Largest model file a registration may upload.");
ABSL_FLAG(bool, optimize_fp32, true,
          "Serve FP32 through torch::jit::freeze + optimize_for_inference "
          "(LibTorch's fastest FP32 path).");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(int64_t, max_calibration_samples, 100000,
          "Most samples one calibration set may hold; more is "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_calibration_bytes, int64_t{2} << 30,
          "Most bytes one calibration set may hold (held in memory while it "
          "uploads).");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0:8002",
          "Where Prometheus scrapes /metrics (IPv4 host:port, port 0 picks "
          "one); empty disables the endpoint.");
ABSL_FLAG(bool, metrics, true,
          "Serve /metrics. Off changes nothing else: the statistics that "
          "rollout guards, GetModelStats and ModelStatistics read are always "
          "kept.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the bound metrics port is written here.");
ABSL_FLAG(bool, shared_memory, true,
          "Serve Triton's system shared memory extension: clients on this "
          "host may register regions of POSIX shm objects (any the server's "
          "user can open) and pass tensors through them. Turn off where "
          "gRPC clients are not trusted.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written here once listening (for "
          "--address=HOST:0 in tests and scripts).");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "twinserve --address=HOST:PORT --store=DIR [flags]\n"
      "Serves TorchScript models over the Open Inference Protocol (KServe "
      "v2) gRPC API, with model management in twinserve.v1.ModelService.");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks every Mutex for lock-order cycles (a graph
  // update per lock, gRPC's included): ~3% of the CPU of a busy server.
  // Lock order is kept by design and exercised by the tests.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  twinserve::LogLevel level;
  if (!twinserve::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "unknown --log_level '%s'\n",
                 absl::GetFlag(FLAGS_log_level).c_str());
    return 2;
  }
  twinserve::SetLogLevel(level);

  // SIGINT/SIGTERM start a graceful shutdown. Blocking them and sigwait()ing
  // is not enough: shared libraries start threads before main (OpenBLAS's
  // pthread build does, at load) and a signal delivered to one of those would
  // kill the process. A handler on every thread writes the signal to a pipe
  // that the shutdown thread reads.
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) {
    std::perror("pipe2");
    return 1;
  }
  struct sigaction action {};
  action.sa_handler = OnShutdownSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  const int intra = std::max(1, absl::GetFlag(FLAGS_intra_op_threads));
  int workers = absl::GetFlag(FLAGS_inference_threads);
  if (workers <= 0) workers = std::max(1, DefaultInferenceThreads() / intra);
  twinserve::ConfigureTorchThreads(intra, 1);
  twinserve::UseOneDnnQuantizedEngine();

  twinserve::ServerOptions options;
  options.store_path = absl::GetFlag(FLAGS_store);
  options.runner.optimize = absl::GetFlag(FLAGS_optimize_fp32);
  options.scheduler.worker_threads = workers;
  options.scheduler.inline_compute_us = absl::GetFlag(FLAGS_inline_compute_us);
  const std::string policy = absl::GetFlag(FLAGS_batch_policy);
  if (policy == "adaptive") {
    options.scheduler.policy = twinserve::BatchPolicy::kAdaptive;
  } else if (policy == "fixed") {
    options.scheduler.policy = twinserve::BatchPolicy::kFixed;
  } else if (policy == "spread") {
    options.scheduler.policy = twinserve::BatchPolicy::kSpread;
  } else {
    TS_LOG(ERROR) << "--batch_policy must be adaptive, fixed or spread, not '"
                  << policy << "'";
    return 2;
  }
  options.max_model_bytes = absl::GetFlag(FLAGS_max_model_bytes);
  options.calibration.max_samples =
      absl::GetFlag(FLAGS_max_calibration_samples);
  options.calibration.max_bytes = absl::GetFlag(FLAGS_max_calibration_bytes);
  auto core = twinserve::ServerCore::Create(options);
  if (!core.ok()) {
    TS_LOG(ERROR) << "cannot open the store " << options.store_path << ": "
                  << core.status();
    return 1;
  }

  // /metrics on its own port: process, state and request metrics.
  std::unique_ptr<twinserve::MetricsHttpServer> metrics_server;
  if (const std::string addr = absl::GetFlag(FLAGS_metrics_address);
      !addr.empty() && absl::GetFlag(FLAGS_metrics)) {
    auto started = twinserve::MetricsHttpServer::Start(
        addr,
        {twinserve::MakeCoreCollector((*core)->registry(), (*core)->engine()),
         twinserve::MakeProcessCollector(twinserve::kServerVersion)});
    if (!started.ok()) {
      TS_LOG(ERROR) << started.status();
      return 1;
    }
    metrics_server = std::move(*started);
    TS_LOG(INFO) << "metrics on http://" << addr.substr(0, addr.rfind(':'))
                 << ":" << metrics_server->port() << "/metrics";
    if (const std::string path = absl::GetFlag(FLAGS_metrics_port_file);
        !path.empty()) {
      absl::Status st = twinserve::WriteFileAtomically(
          path, absl::StrCat(metrics_server->port()));
      if (!st.ok()) {
        TS_LOG(ERROR) << "cannot write --metrics_port_file: " << st;
      }
    }
  }

  twinserve::OipService oip(core->get(), absl::GetFlag(FLAGS_shared_memory));
  twinserve::ManagementService management(core->get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_address),
                           grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.RegisterService(&oip);
  builder.RegisterService(&management);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    TS_LOG(ERROR) << "cannot listen on " << absl::GetFlag(FLAGS_address);
    return 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    // Written atomically so a reader never sees a partial number.
    absl::Status st = twinserve::WriteFileAtomically(path, absl::StrCat(port));
    if (!st.ok()) {
      TS_LOG(ERROR) << "cannot write --port_file: " << st;
    }
  }
  auto* health = server->GetHealthCheckService();
  health->SetServingStatus(false);
  const std::string address = absl::GetFlag(FLAGS_address);
  TS_LOG(INFO) << "twinserve listening on "
               << (address.rfind("unix:", 0) == 0 ? address
                                                  : absl::StrCat("port ", port))
               << ", store " << options.store_path << ", " << workers
               << " inference threads x " << intra << " intra-op threads";

  (*core)->LoadStoredModels();
  health->SetServingStatus(true);
  TS_LOG(INFO) << "ready: " << (*core)->registry()->List().size() << " models";

  std::thread signal_thread([&] {
    char sig = 0;
    while (read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    TS_LOG(INFO) << "signal " << static_cast<int>(sig)
                 << ": shutting down (in-flight requests get up to 5 s)";
    health->SetServingStatus(false);
    // Jobs first: they stop (recorded INTERRUPTED) while everything they
    // use exists, and publish nothing half-made during the grace period.
    (*core)->Shutdown();
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
  });
  server->Wait();
  signal_thread.join();
  return 0;
}
