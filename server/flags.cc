#include "server/flags.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

namespace {

std::string DefaultStore() {
  const char* home = std::getenv("TWINSERVE_HOME");
  if (home != nullptr && *home) return absl::StrCat(home, "/store");
  const char* user_home = std::getenv("HOME");
  return absl::StrCat(user_home ? user_home : ".", "/.twinserve/store");
}

}  // namespace

ABSL_FLAG(std::string, address, "127.0.0.1:8001",
          "gRPC listen address (host:port) for the OIP and management "
          "services.");
ABSL_FLAG(std::string, store, DefaultStore(),
          "Folder of the durable model store (default $TWINSERVE_HOME/store, "
          "else ~/.twinserve/store). Created if missing.");
ABSL_FLAG(int, intra_op_threads, 1,
          "LibTorch intra-op threads per forward pass. With the default "
          "inference_threads this keeps threads <= cores.");
ABSL_FLAG(int, onednn_cache_capacity, 256,
          "Entries kept in each of LibTorch's two caches of oneDNN "
          "primitives (keyed by shape and INT8 scales, so each new quantized "
          "variant and batch size adds some). Bounds the memory they hold "
          "(about 1 MB per distinct INT8 CNN); too few makes inference slow. "
          "LibTorch's own default is 1024.");
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
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:8002",
          "Where Prometheus scrapes /metrics (IPv4 host:port, port 0 picks "
          "one); empty disables the endpoint.");
ABSL_FLAG(bool, metrics, true,
          "Serve /metrics. Off changes nothing else: the statistics that "
          "rollout guards, GetModelStats and ModelStatistics read are always "
          "kept.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the bound metrics port is written here.");
ABSL_FLAG(bool, shared_memory, false,
          "Serve Triton's system shared memory extension: admin callers on "
          "this host may register regions of POSIX shm objects whose key "
          "starts with --shared_memory_key_prefix and pass tensors through "
          "them. Regions belong to the principal that registered them.");
ABSL_FLAG(std::string, shared_memory_key_prefix, "/twinserve_",
          "Only shm objects whose key starts with this may be mapped ('/' "
          "allows any the server's user can open).");
ABSL_FLAG(std::string, token_file, "",
          "Bearer tokens and roles (lines: NAME infer|admin sha256:<hex of "
          "the token>); every call then needs 'authorization: Bearer "
          "<token>'. Reloaded on SIGHUP. See README, Security.");
ABSL_FLAG(std::string, tls_cert, "",
          "Server certificate chain (PEM): the gRPC port then speaks TLS "
          "only. Needs --tls_key. Reloaded on SIGHUP.");
ABSL_FLAG(std::string, tls_key, "", "Private key of --tls_cert (PEM).");
ABSL_FLAG(std::string, tls_client_ca, "",
          "CA certificate(s) (PEM): clients must present a certificate it "
          "signed (mutual TLS). Without --token_file, the certificate's "
          "common name is the principal, with role admin.");
ABSL_FLAG(bool, insecure, false,
          "Allow listening on a non-loopback --address without "
          "authentication (anyone who reaches the port may do anything).");
ABSL_FLAG(bool, allow_unsafe_ops, false,
          "Load models that call operators touching files or the network "
          "(aten::from_file, aten::save, torch.distributed; the list is in "
          "server/runtime/unsafe_ops.cc). Off: such models are refused.");
ABSL_FLAG(int, shutdown_grace_ms, 1000,
          "On SIGTERM: health turns NOT_SERVING at once, then the server "
          "keeps serving this long (so load balancers stop sending) before "
          "it refuses new calls.");
ABSL_FLAG(int, drain_ms, 5000,
          "On SIGTERM, after the grace period: how long in-flight calls "
          "may take to finish before they are cancelled.");
// Byte budgets and limits: each refusal is RESOURCE_EXHAUSTED naming its
// flag (README, Security).
ABSL_FLAG(int64_t, max_grpc_memory_bytes, int64_t{2} << 30,
          "gRPC's resource quota: memory its transports may use for messages "
          "being received and sent, all connections together.");
ABSL_FLAG(int64_t, max_inflight_bytes, int64_t{1} << 30,
          "Input bytes all inference requests between admission and answer "
          "may hold together (0: no limit).");
ABSL_FLAG(int, max_stream_in_flight, 64,
          "Requests one ModelStreamInfer stream may have computing at once.");
ABSL_FLAG(int64_t, max_calibration_memory_bytes, int64_t{4} << 30,
          "Samples all calibration uploads in progress may hold in memory "
          "together.");
ABSL_FLAG(int, max_models, 256, "Models one server may hold.");
ABSL_FLAG(int, max_variants, 16, "Variants per model, fp32 included.");
ABSL_FLAG(int, max_calibration_sets, 32, "Calibration sets per model.");
ABSL_FLAG(std::string, quantize_worker, "auto",
          "Program that runs quantization jobs in a child process, so what "
          "LibTorch's passes leave in memory goes when the job ends and a "
          "crash in them fails only the job. \"auto\": twinserve_quantize "
          "beside this binary; \"none\": jobs run inside the server.");
ABSL_FLAG(int, max_concurrent_jobs, 2,
          "Quantization jobs running at once (one per model in any case).");
ABSL_FLAG(std::string, cluster_etcd, "",
          "Run as one replica of a fleet: etcd's client endpoints "
          "(HOST:PORT[,HOST:PORT...]). Records, variants and policies are "
          "shared through etcd; artifacts through --cluster_blobs. Empty: "
          "one server, everything in --store.");
ABSL_FLAG(std::string, cluster_etcd_ca, "",
          "CA (PEM) that signed etcd's certificate: talk to etcd over TLS.");
ABSL_FLAG(std::string, cluster_etcd_cert, "",
          "This replica's client certificate (PEM) for etcd's "
          "--client-cert-auth.");
ABSL_FLAG(std::string, cluster_etcd_key, "",
          "Private key of --cluster_etcd_cert (PEM).");
ABSL_FLAG(std::string, cluster_prefix, "/twinserve/",
          "etcd key prefix of this fleet (starts and ends with '/').");
ABSL_FLAG(std::string, cluster_blobs, "",
          "Artifact folder shared by every replica (on Kubernetes a "
          "ReadWriteMany volume); files named by their SHA-256.");
ABSL_FLAG(std::string, cluster_replica_id, "",
          "This replica's name in the fleet (on Kubernetes the pod name); "
          "empty: host name and a random suffix.");
ABSL_FLAG(int, cluster_lease_ttl_s, 5,
          "A dead replica's job claims, statistics and leadership vanish "
          "after this many seconds.");
ABSL_FLAG(int, cluster_blob_grace_s, 3600,
          "Blobs no record references are deleted after this many seconds.");
ABSL_FLAG(std::string, health_address, "",
          "If set, a second listener (HOST:PORT) without TLS or tokens that "
          "answers grpc.health.v1 only, mirroring the server's health: for "
          "Kubernetes gRPC probes, which cannot speak TLS.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written here once listening (for "
          "--address=HOST:0 in tests and scripts).");
