// twinserve: serves TorchScript models over the Open Inference Protocol,
// with twinserve.v1 for model management. See README.md.
#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "quant/quantize_worker.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/common/tokens.h"
#include "server/core/server_core.h"
#include "server/flags.h"
#include "server/grpc/auth.h"
#include "server/grpc/management_service.h"
#include "server/grpc/oip_service.h"
#include "server/grpc/tls.h"
#include "server/metrics/cluster_collector.h"
#include "server/metrics/metrics_http.h"
#include "server/metrics/process_collector.h"
#include "server/metrics/prometheus_exporter.h"
#include "server/runtime/runner.h"
#include "server/runtime/unsafe_ops.h"
#include "server/store/audit_log.h"

namespace {

int DefaultInferenceThreads() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return cores > 0 ? cores : 1;
}

int g_signal_pipe[2] = {-1, -1};

// Whether `address` (host:port, [v6]:port or unix:path) only accepts
// connections from this machine.
bool IsLoopback(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) return true;
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host == "[::1]" || host == "::1" ||
         host.rfind("127.", 0) == 0;
}

// Async-signal-safe: only write(2).
extern "C" void OnShutdownSignal(int sig) {
  const char c = static_cast<char>(sig);
  const int saved = errno;
  if (write(g_signal_pipe[1], &c, 1) < 0) {
  }
  errno = saved;
}

// SIGHUP: tokens and TLS files re-read; on error the ones in force stay.
void ReloadOnHangup(twinserve::TokenAuthenticator* tokens,
                    twinserve::ServerTls* tls) {
  if (tokens != nullptr) {
    absl::Status st = tokens->Reload();
    if (st.ok()) {
      TS_LOG(INFO) << "SIGHUP: reloaded " << tokens->size() << " tokens";
    } else {
      TS_LOG(ERROR) << "SIGHUP: tokens not reloaded (the old ones stay): "
                    << st;
    }
  }
  if (tls != nullptr) {
    absl::Status st = tls->Reload();
    if (st.ok()) {
      TS_LOG(INFO) << "SIGHUP: reloaded TLS certificates (new connections "
                      "use them within a second)";
    } else {
      TS_LOG(ERROR) << "SIGHUP: TLS certificates not reloaded (the old ones "
                       "stay): "
                    << st;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --help lists the server's own flags (absl's default matches files named
  // after the binary, which ours are not).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/flags.cc") ||
           absl::EndsWith(file, "absl/flags/parse.cc");  // --flagfile
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
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
  sigaction(SIGHUP, &action, nullptr);

  // Who may call: tokens, or loopback only unless --insecure.
  std::unique_ptr<twinserve::TokenAuthenticator> tokens;
  if (const std::string path = absl::GetFlag(FLAGS_token_file); !path.empty()) {
    auto loaded = twinserve::TokenAuthenticator::Load(path);
    if (!loaded.ok()) {
      TS_LOG(ERROR) << loaded.status();
      return 2;
    }
    tokens = std::move(*loaded);
    TS_LOG(INFO) << "authentication on: " << tokens->size() << " tokens from "
                 << path;
  }
  std::unique_ptr<twinserve::ServerTls> tls;
  if (!absl::GetFlag(FLAGS_tls_cert).empty() ||
      !absl::GetFlag(FLAGS_tls_key).empty() ||
      !absl::GetFlag(FLAGS_tls_client_ca).empty()) {
    auto created = twinserve::ServerTls::Create(
        {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
         absl::GetFlag(FLAGS_tls_client_ca)});
    if (!created.ok()) {
      TS_LOG(ERROR) << created.status();
      return 2;
    }
    tls = std::move(*created);
    TS_LOG(INFO) << (tls->mutual() ? "mutual TLS" : "TLS")
                 << " on the gRPC port";
  }
  const bool authenticated =
      tokens != nullptr || (tls != nullptr && tls->mutual());
  if (!IsLoopback(absl::GetFlag(FLAGS_address)) && !authenticated) {
    if (!absl::GetFlag(FLAGS_insecure)) {
      TS_LOG(ERROR) << "refusing to listen on " << absl::GetFlag(FLAGS_address)
                    << " without authentication: set --token_file or "
                       "--tls_client_ca (see README, Security), listen on "
                       "127.0.0.1, or pass --insecure";
      return 2;
    }
    TS_LOG(WARNING) << "--insecure: listening on "
                    << absl::GetFlag(FLAGS_address)
                    << " without authentication; anyone who reaches the port "
                       "can register models, move traffic and roll back";
  }

  const int intra = std::max(1, absl::GetFlag(FLAGS_intra_op_threads));
  int workers = absl::GetFlag(FLAGS_inference_threads);
  if (workers <= 0) workers = std::max(1, DefaultInferenceThreads() / intra);
  twinserve::LimitOneDnnCaches(absl::GetFlag(FLAGS_onednn_cache_capacity));
  twinserve::ConfigureTorchThreads(intra, 1);
  twinserve::UseOneDnnQuantizedEngine();
  twinserve::AllowUnsafeOps(absl::GetFlag(FLAGS_allow_unsafe_ops));
  if (absl::GetFlag(FLAGS_allow_unsafe_ops)) {
    TS_LOG(WARNING) << "--allow_unsafe_ops: models may read and write files "
                       "and use the network with the server's permissions";
  }

  twinserve::ServerOptions options;
  options.store_path = absl::GetFlag(FLAGS_store);
  options.cluster.etcd = absl::GetFlag(FLAGS_cluster_etcd);
  options.cluster.prefix = absl::GetFlag(FLAGS_cluster_prefix);
  options.cluster.etcd_ca = absl::GetFlag(FLAGS_cluster_etcd_ca);
  options.cluster.etcd_cert = absl::GetFlag(FLAGS_cluster_etcd_cert);
  options.cluster.etcd_key = absl::GetFlag(FLAGS_cluster_etcd_key);
  options.cluster.blobs = absl::GetFlag(FLAGS_cluster_blobs);
  options.cluster.replica_id = absl::GetFlag(FLAGS_cluster_replica_id);
  options.cluster.lease_ttl =
      absl::Seconds(std::max(2, absl::GetFlag(FLAGS_cluster_lease_ttl_s)));
  options.cluster.blob_grace =
      absl::Seconds(std::max(0, absl::GetFlag(FLAGS_cluster_blob_grace_s)));
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
  options.max_calibration_memory_bytes =
      std::max<int64_t>(0, absl::GetFlag(FLAGS_max_calibration_memory_bytes));
  options.engine.max_inflight_bytes =
      std::max<int64_t>(0, absl::GetFlag(FLAGS_max_inflight_bytes));
  options.limits.max_models = absl::GetFlag(FLAGS_max_models);
  options.limits.max_variants = absl::GetFlag(FLAGS_max_variants);
  options.limits.max_calibration_sets =
      absl::GetFlag(FLAGS_max_calibration_sets);
  options.max_concurrent_jobs = absl::GetFlag(FLAGS_max_concurrent_jobs);
  {
    std::string worker = absl::GetFlag(FLAGS_quantize_worker);
    if (worker == "auto") {
      worker = twinserve::DefaultWorkerBinary();
      if (worker.empty()) {
        TS_LOG(WARNING) << "twinserve_quantize is not beside this binary: "
                           "quantization jobs run inside the server";
      }
    } else if (worker == "none") {
      worker.clear();
    }
    options.quantize_worker.binary = worker;
    options.quantize_worker.intra_op_threads = intra;
    options.quantize_worker.optimize_fp32 = options.runner.optimize;
  }
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
    std::vector<std::shared_ptr<prometheus::Collectable>> collectors = {
        twinserve::MakeCoreCollector((*core)->registry(), (*core)->engine()),
        twinserve::MakeProcessCollector(twinserve::kServerVersion)};
    if ((*core)->fleet() != nullptr) {
      collectors.push_back(
          twinserve::MakeClusterCollector((*core)->store(), (*core)->fleet()));
    }
    auto started = twinserve::MetricsHttpServer::Start(addr, collectors);
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

  twinserve::CallAuth auth(tokens.get(), tls != nullptr && tls->mutual());
  twinserve::AuditLog audit(options.store_path + "/audit.log");
  twinserve::OipServiceOptions oip_options;
  oip_options.shared_memory = absl::GetFlag(FLAGS_shared_memory);
  oip_options.shared_memory_key_prefix =
      absl::GetFlag(FLAGS_shared_memory_key_prefix);
  oip_options.max_stream_in_flight = absl::GetFlag(FLAGS_max_stream_in_flight);
  if (oip_options.shared_memory_key_prefix.empty() ||
      oip_options.shared_memory_key_prefix[0] != '/') {
    TS_LOG(ERROR) << "--shared_memory_key_prefix must start with '/'";
    return 2;
  }
  twinserve::OipService oip(core->get(), oip_options, &auth);
  twinserve::ManagementService management(core->get(), &auth, &audit);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      absl::GetFlag(FLAGS_address),
      tls != nullptr ? tls->credentials() : grpc::InsecureServerCredentials(),
      &port);
  grpc::ResourceQuota quota("twinserve");
  if (absl::GetFlag(FLAGS_max_grpc_memory_bytes) > 0) {
    quota.Resize(absl::GetFlag(FLAGS_max_grpc_memory_bytes));
    builder.SetResourceQuota(quota);
  }
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
  // Health alone, in plain text, for probes (nothing else listens there).
  std::unique_ptr<grpc::Server> health_server;
  if (const std::string a = absl::GetFlag(FLAGS_health_address); !a.empty()) {
    grpc::ServerBuilder hb;
    int health_port = 0;
    hb.AddListeningPort(a, grpc::InsecureServerCredentials(), &health_port);
    health_server = hb.BuildAndStart();
    if (health_server == nullptr || health_port == 0) {
      TS_LOG(ERROR) << "cannot listen on --health_address " << a;
      return 1;
    }
  }
  auto set_serving = [&](bool serving) {
    server->GetHealthCheckService()->SetServingStatus(serving);
    if (health_server != nullptr) {
      health_server->GetHealthCheckService()->SetServingStatus(serving);
    }
  };
  set_serving(false);
  const std::string address = absl::GetFlag(FLAGS_address);
  TS_LOG(INFO) << "twinserve listening on "
               << (address.rfind("unix:", 0) == 0 ? address
                                                  : absl::StrCat("port ", port))
               << ", store " << options.store_path << ", " << workers
               << " inference threads x " << intra << " intra-op threads";

  // First SIGTERM/SIGINT: NOT_SERVING at once (load balancers and
  // Kubernetes stop sending), the grace period still serving, then jobs
  // stopped and recorded INTERRUPTED, no new calls, in-flight calls drained
  // within --drain_ms, exit 0. A second signal exits at once. While the
  // stored models still load (a large store, or an etcd that does not
  // answer yet) a stop signal exits at once: nothing is acknowledged before
  // the server is ready (writers are refused until then, no job runs).
  std::atomic<bool> loading{true};
  std::thread shutdown_thread;
  std::thread signal_thread([&] {
    bool stopping = false;
    for (;;) {
      char sig = 0;
      if (read(g_signal_pipe[0], &sig, 1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (sig == 0) break;  // main is done
      if (sig == SIGHUP) {
        ReloadOnHangup(tokens.get(), tls.get());
        continue;
      }
      if (loading) {
        TS_LOG(INFO) << "signal " << static_cast<int>(sig)
                     << " while loading the stored models: exiting";
        _exit(0);
      }
      if (stopping) {
        TS_LOG(WARNING) << "second signal " << static_cast<int>(sig)
                        << ": exiting now";
        _exit(1);
      }
      stopping = true;
      const auto grace =
          std::chrono::milliseconds(absl::GetFlag(FLAGS_shutdown_grace_ms));
      const auto drain =
          std::chrono::milliseconds(absl::GetFlag(FLAGS_drain_ms));
      TS_LOG(INFO) << "signal " << static_cast<int>(sig)
                   << ": NOT_SERVING; serving " << grace.count()
                   << " ms more, then draining for up to " << drain.count()
                   << " ms (a second signal exits at once)";
      set_serving(false);
      shutdown_thread = std::thread([&, grace, drain] {
        std::this_thread::sleep_for(grace);
        // Jobs first: they stop (recorded INTERRUPTED) while everything
        // they use exists, and publish nothing half-made.
        (*core)->Shutdown();
        server->Shutdown(std::chrono::system_clock::now() + drain);
        if (health_server != nullptr) health_server->Shutdown();
      });
    }
  });
  (*core)->LoadStoredModels();
  set_serving(true);
  loading = false;
  TS_LOG(INFO) << "ready: " << (*core)->registry()->List().size() << " models";

  server->Wait();
  const char done = 0;
  while (write(g_signal_pipe[1], &done, 1) < 0 && errno == EINTR) {
  }
  signal_thread.join();
  if (shutdown_thread.joinable()) shutdown_thread.join();
  TS_LOG(INFO) << "stopped";
  return 0;
}
