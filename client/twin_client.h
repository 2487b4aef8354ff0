// A small synchronous C++ client for twinserve: the OIP inference service
// and the twinserve.v1 management service. Used by twinctl, the demo and the
// end-to-end tests. Errors come back as absl::Status with the server's code
// and message.
#ifndef TWINSERVE_CLIENT_TWIN_CLIENT_H_
#define TWINSERVE_CLIENT_TWIN_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/grpc_service.grpc.pb.h"
#include "proto/twinserve.grpc.pb.h"
#include "server/common/tensor.h"

namespace twinserve {

struct RegisterOptions {
  std::string name;
  std::string description;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  bool replace = false;
  // With replace: the old generation keeps serving as "fp32-g<N>".
  bool keep_previous = false;
  // Empty for a new model; else the upload becomes this variant of an
  // existing model (e.g. "int8" from quantization-aware training).
  std::string variant;
  // Upload chunk size; models of any size stream in chunks of this.
  size_t chunk_bytes = 1 << 20;
  // Dynamic batching from the start (unset: none, or the replaced model's).
  std::optional<v1::BatchingConfig> batching;
  // Quantize at registration, in the same call: the samples (all along dim
  // 0, labels empty or one per sample) follow the model in the stream.
  std::optional<v1::QuantizeRequest> quantize;
  std::vector<HostTensor> calibration;
  std::vector<int64_t> calibration_labels;
  std::vector<HostTensor> evaluation;
  std::vector<int64_t> evaluation_labels;
  // Applied when the quantized variant is ready (e.g. a rollout of it).
  std::optional<v1::TrafficPolicy> plan;
  // Return when the quantization job has ended, not when FP32 is ready.
  bool wait_for_variant = false;
  int64_t samples_per_message = 64;
};

struct InferOutputs {
  std::string model;
  std::string version;  // the variant that served
  std::string id;
  std::vector<HostTensor> outputs;  // each owns its bytes
};

class TwinClient {
 public:
  // Connects lazily; nothing is sent until the first call.
  // Every call carries the connection's token as a bearer token when not
  // empty, over TLS when it names a CA (default: from the environment, see
  // ConnectionFromEnvironment).
  explicit TwinClient(
      const std::string& address, int max_message_bytes = 64 << 20,
      const Connection& connection = ConnectionFromEnvironment());

  // Polls ServerReady until true or the timeout passes.
  absl::Status WaitForReady(std::chrono::milliseconds timeout);
  absl::StatusOr<bool> ServerLive();
  absl::StatusOr<bool> ServerReady();
  // grpc.health.v1 Check for the whole server: "SERVING", "NOT_SERVING"...
  absl::StatusOr<std::string> Health();

  // Streams `model_bytes` to the server. `progress` (if set) is called with
  // bytes sent so far.
  absl::StatusOr<v1::ModelInfo> Register(
      const RegisterOptions& options, const std::string& model_bytes,
      std::function<void(uint64_t)> progress = nullptr);
  // Register with the whole response (the quantization job, if asked).
  absl::StatusOr<v1::RegisterModelResponse> RegisterModel(
      const RegisterOptions& options, const std::string& model_bytes,
      std::function<void(uint64_t)> progress = nullptr);
  absl::Status Unregister(const std::string& name);
  absl::StatusOr<std::vector<v1::ModelInfo>> List();
  absl::StatusOr<v1::ModelInfo> Get(const std::string& name);
  absl::StatusOr<v1::ModelInfo> SetBatching(
      const v1::SetBatchingRequest& request);

  // Uploads samples as set `set` of `model`: `inputs` hold all samples along
  // dim 0, sent `per_message` at a time; `labels` empty or one per sample.
  absl::StatusOr<v1::CalibrationSetInfo> UploadCalibration(
      const std::string& model, const std::string& set,
      const std::vector<HostTensor>& inputs, const std::vector<int64_t>& labels,
      bool replace, int64_t per_message = 64,
      std::function<void(int64_t, int64_t)> progress = nullptr);
  absl::StatusOr<std::vector<v1::CalibrationSetInfo>> ListCalibrationSets(
      const std::string& model);
  absl::Status DeleteCalibrationSet(const std::string& model,
                                    const std::string& set);
  absl::StatusOr<v1::Job> Quantize(const v1::QuantizeRequest& request);
  absl::StatusOr<v1::Job> GetJob(const std::string& id);
  absl::StatusOr<v1::Job> CancelJob(const std::string& id);
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const std::string& model);
  // Streams the job until it ends; returns the final state.
  absl::StatusOr<v1::Job> WatchJob(
      const std::string& id, std::function<void(const v1::Job&)> on_update);
  absl::StatusOr<v1::QuantizationReport> GetReport(const std::string& model,
                                                   const std::string& variant);

  // Traffic policy: set (the request names model, policy, author, reason),
  // read, promote a variant, roll back, and the history of changes.
  absl::StatusOr<v1::TrafficPolicy> SetPolicy(
      const v1::SetTrafficPolicyRequest& request);
  absl::StatusOr<v1::TrafficPolicy> GetPolicy(const std::string& model);
  absl::StatusOr<v1::TrafficPolicy> Promote(const v1::PromoteRequest& request);
  absl::StatusOr<v1::TrafficPolicy> Rollback(
      const v1::RollbackRequest& request);
  absl::StatusOr<std::vector<v1::PolicyChange>> PolicyHistory(
      const std::string& model);
  // Cumulative live statistics per variant (twinctl compare).
  absl::StatusOr<v1::ModelStats> GetModelStats(const std::string& model);

  absl::StatusOr<InferOutputs> Infer(
      const std::string& model, const std::vector<HostTensor>& inputs,
      const std::string& version = "",
      const std::vector<std::string>& outputs = {}, const std::string& id = "");
  // The raw OIP call, for tests that need full control of the message.
  grpc::Status RawInfer(const inference::ModelInferRequest& request,
                        inference::ModelInferResponse* response);

  inference::GRPCInferenceService::Stub* oip() { return oip_.get(); }
  v1::ModelService::Stub* management() { return management_.get(); }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> oip_;
  std::unique_ptr<v1::ModelService::Stub> management_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// Builds the OIP request for `inputs` (raw contents).
inference::ModelInferRequest MakeInferRequest(
    const std::string& model, const std::vector<HostTensor>& inputs,
    const std::string& version, const std::vector<std::string>& outputs,
    const std::string& id);
// Decodes a response into owning tensors.
absl::StatusOr<InferOutputs> DecodeInferResponse(
    const inference::ModelInferResponse& response);

// "image:FP32:-1,1,28,28" -> spec.
absl::StatusOr<TensorSpec> ParseSpec(const std::string& text);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_TWIN_CLIENT_H_
