// Every flag of the twinserve binary, defined (with its documentation, which
// `twinserve --help` prints) in flags.cc.
#ifndef TWINSERVE_SERVER_FLAGS_H_
#define TWINSERVE_SERVER_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, address);
ABSL_DECLARE_FLAG(std::string, store);
ABSL_DECLARE_FLAG(int, intra_op_threads);
ABSL_DECLARE_FLAG(int, onednn_cache_capacity);
ABSL_DECLARE_FLAG(int, inference_threads);
ABSL_DECLARE_FLAG(int64_t, inline_compute_us);
ABSL_DECLARE_FLAG(std::string, batch_policy);
ABSL_DECLARE_FLAG(int, max_message_bytes);
ABSL_DECLARE_FLAG(int64_t, max_model_bytes);
ABSL_DECLARE_FLAG(bool, optimize_fp32);
ABSL_DECLARE_FLAG(std::string, log_level);
ABSL_DECLARE_FLAG(int64_t, max_calibration_samples);
ABSL_DECLARE_FLAG(int64_t, max_calibration_bytes);
ABSL_DECLARE_FLAG(std::string, metrics_address);
ABSL_DECLARE_FLAG(bool, metrics);
ABSL_DECLARE_FLAG(std::string, metrics_port_file);
ABSL_DECLARE_FLAG(bool, shared_memory);
ABSL_DECLARE_FLAG(std::string, shared_memory_key_prefix);
ABSL_DECLARE_FLAG(std::string, token_file);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_client_ca);
ABSL_DECLARE_FLAG(bool, insecure);
ABSL_DECLARE_FLAG(bool, allow_unsafe_ops);
ABSL_DECLARE_FLAG(int, shutdown_grace_ms);
ABSL_DECLARE_FLAG(int, drain_ms);
ABSL_DECLARE_FLAG(int64_t, max_grpc_memory_bytes);
ABSL_DECLARE_FLAG(int64_t, max_inflight_bytes);
ABSL_DECLARE_FLAG(int, max_stream_in_flight);
ABSL_DECLARE_FLAG(int64_t, max_calibration_memory_bytes);
ABSL_DECLARE_FLAG(int, max_models);
ABSL_DECLARE_FLAG(int, max_variants);
ABSL_DECLARE_FLAG(int, max_calibration_sets);
ABSL_DECLARE_FLAG(std::string, quantize_worker);
ABSL_DECLARE_FLAG(int, max_concurrent_jobs);
ABSL_DECLARE_FLAG(std::string, cluster_etcd);
ABSL_DECLARE_FLAG(std::string, cluster_etcd_ca);
ABSL_DECLARE_FLAG(std::string, cluster_etcd_cert);
ABSL_DECLARE_FLAG(std::string, cluster_etcd_key);
ABSL_DECLARE_FLAG(std::string, cluster_prefix);
ABSL_DECLARE_FLAG(std::string, cluster_blobs);
ABSL_DECLARE_FLAG(std::string, cluster_replica_id);
ABSL_DECLARE_FLAG(int, cluster_lease_ttl_s);
ABSL_DECLARE_FLAG(int, cluster_blob_grace_s);
ABSL_DECLARE_FLAG(std::string, health_address);
ABSL_DECLARE_FLAG(std::string, port_file);

#endif  // TWINSERVE_SERVER_FLAGS_H_
