#include "client/twin_client.h"

#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/grpc_status_util.h"

namespace twinserve {
namespace {

void SpecToProto(const TensorSpec& spec, v1::TensorSpec* out) {
  out->set_name(spec.name);
  out->set_datatype(DataTypeName(spec.dtype));
  for (int64_t d : spec.shape) out->add_shape(d);
}

// One unary call with a fresh context: `call(ctx, response)` issues it; a
// failure comes back as the server's status.
template <typename Response, typename Call>
absl::StatusOr<Response> Unary(Call call) {
  grpc::ClientContext ctx;
  Response response;
  grpc::Status st = call(&ctx, &response);
  if (!st.ok()) return FromGrpcStatus(st);
  return response;
}

}  // namespace

TwinClient::TwinClient(const std::string& address, int max_message_bytes,
                       const Connection& connection) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  channel_ = MakeChannel(address, args, connection);
  oip_ = inference::GRPCInferenceService::NewStub(channel_);
  management_ = v1::ModelService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

absl::Status TwinClient::WaitForReady(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  absl::Status last = absl::DeadlineExceededError("server not ready");
  while (std::chrono::steady_clock::now() < deadline) {
    auto ready = ServerReady();
    if (ready.ok() && *ready) return absl::OkStatus();
    if (!ready.ok()) last = ready.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("server not ready in time: ", last.message()));
}

absl::StatusOr<bool> TwinClient::ServerLive() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  inference::ServerLiveResponse resp;
  grpc::Status st = oip_->ServerLive(&ctx, {}, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp.live();
}

absl::StatusOr<bool> TwinClient::ServerReady() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  inference::ServerReadyResponse resp;
  grpc::Status st = oip_->ServerReady(&ctx, {}, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return resp.ready();
}

absl::StatusOr<std::string> TwinClient::Health() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;  // service "": the whole server
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status st = health_->Check(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
      resp.status());
}

namespace {

// Samples [b, e) of `inputs` (all along dim 0) with their labels.
void FillSamples(const std::vector<HostTensor>& inputs,
                 const std::vector<int64_t>& labels, int64_t b, int64_t e,
                 v1::CalibrationSamples* samples) {
  for (const HostTensor& t : inputs) {
    const size_t per = t.byte_size / std::max<int64_t>(1, t.shape[0]);
    auto* in = samples->add_inputs();
    in->set_name(t.name);
    in->set_datatype(DataTypeName(t.dtype));
    in->add_shape(e - b);
    for (size_t d = 1; d < t.shape.size(); ++d) in->add_shape(t.shape[d]);
    samples->add_raw_input_contents()->assign(t.data + b * per, (e - b) * per);
  }
  if (!labels.empty()) {
    for (int64_t i = b; i < e && i < static_cast<int64_t>(labels.size()); ++i) {
      samples->add_labels(labels[i]);
    }
  }
}

int64_t Rows(const std::vector<HostTensor>& inputs) {
  return inputs.empty() || inputs[0].shape.empty() ? 0 : inputs[0].shape[0];
}

}  // namespace

absl::StatusOr<v1::ModelInfo> TwinClient::Register(
    const RegisterOptions& options, const std::string& model_bytes,
    std::function<void(uint64_t)> progress) {
  auto resp = RegisterModel(options, model_bytes, std::move(progress));
  if (!resp.ok()) return resp.status();
  return resp->model();
}

absl::StatusOr<v1::RegisterModelResponse> TwinClient::RegisterModel(
    const RegisterOptions& options, const std::string& model_bytes,
    std::function<void(uint64_t)> progress) {
  grpc::ClientContext ctx;
  v1::RegisterModelResponse resp;
  auto writer = management_->RegisterModel(&ctx, &resp);
  v1::RegisterModelRequest msg;
  auto* header = msg.mutable_header();
  header->set_name(options.name);
  header->set_description(options.description);
  header->set_replace(options.replace);
  header->set_keep_previous(options.keep_previous);
  header->set_total_bytes(model_bytes.size());
  header->set_variant(options.variant);
  if (options.batching.has_value()) {
    *header->mutable_batching() = *options.batching;
  }
  if (options.quantize.has_value()) {
    *header->mutable_quantize() = *options.quantize;
  }
  if (options.plan.has_value()) *header->mutable_plan() = *options.plan;
  header->set_wait_for_variant(options.wait_for_variant);
  for (const auto& s : options.inputs) SpecToProto(s, header->add_inputs());
  for (const auto& s : options.outputs) SpecToProto(s, header->add_outputs());
  bool ok = writer->Write(msg);
  for (size_t off = 0; ok && off < model_bytes.size();
       off += options.chunk_bytes) {
    v1::RegisterModelRequest chunk;
    chunk.set_chunk(model_bytes.substr(off, options.chunk_bytes));
    ok = writer->Write(chunk);
    if (progress) {
      progress(
          std::min<uint64_t>(off + options.chunk_bytes, model_bytes.size()));
    }
  }
  const int64_t per = std::max<int64_t>(1, options.samples_per_message);
  for (int set = 0; set < 2; ++set) {
    const auto& inputs = set == 0 ? options.calibration : options.evaluation;
    const auto& labels =
        set == 0 ? options.calibration_labels : options.evaluation_labels;
    const int64_t n = Rows(inputs);
    for (int64_t b = 0; ok && b < n; b += per) {
      v1::RegisterModelRequest m;
      FillSamples(inputs, labels, b, std::min(n, b + per),
                  set == 0 ? m.mutable_calibration() : m.mutable_evaluation());
      ok = writer->Write(m);
    }
  }
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

absl::Status TwinClient::Unregister(const std::string& name) {
  grpc::ClientContext ctx;
  v1::UnregisterModelRequest req;
  req.set_name(name);
  v1::UnregisterModelResponse resp;
  return FromGrpcStatus(management_->UnregisterModel(&ctx, req, &resp));
}

absl::StatusOr<std::vector<v1::ModelInfo>> TwinClient::List() {
  auto resp = Unary<v1::ListModelsResponse>([&](auto* ctx, auto* resp) {
    return management_->ListModels(ctx, {}, resp);
  });
  if (!resp.ok()) return resp.status();
  return std::vector<v1::ModelInfo>(resp->models().begin(),
                                    resp->models().end());
}

absl::StatusOr<v1::ModelInfo> TwinClient::Get(const std::string& name) {
  v1::GetModelRequest req;
  req.set_name(name);
  return Unary<v1::ModelInfo>([&](auto* ctx, auto* resp) {
    return management_->GetModel(ctx, req, resp);
  });
}

absl::StatusOr<v1::ModelInfo> TwinClient::SetBatching(
    const v1::SetBatchingRequest& request) {
  return Unary<v1::ModelInfo>([&](auto* ctx, auto* resp) {
    return management_->SetBatching(ctx, request, resp);
  });
}

absl::StatusOr<v1::CalibrationSetInfo> TwinClient::UploadCalibration(
    const std::string& model, const std::string& set,
    const std::vector<HostTensor>& inputs, const std::vector<int64_t>& labels,
    bool replace, int64_t per_message,
    std::function<void(int64_t, int64_t)> progress) {
  if (inputs.empty() || inputs[0].shape.empty()) {
    return absl::InvalidArgumentError("no samples to upload");
  }
  const int64_t n = inputs[0].shape[0];
  grpc::ClientContext ctx;
  v1::CalibrationSetInfo resp;
  auto writer = management_->UploadCalibration(&ctx, &resp);
  v1::UploadCalibrationRequest header;
  header.mutable_header()->set_model(model);
  header.mutable_header()->set_set(set);
  header.mutable_header()->set_replace(replace);
  bool ok = writer->Write(header);
  for (int64_t b = 0; ok && b < n; b += per_message) {
    const int64_t e = std::min(n, b + per_message);
    v1::UploadCalibrationRequest msg;
    FillSamples(inputs, labels, b, e, msg.mutable_samples());
    ok = writer->Write(msg);
    if (progress) progress(e, n);
  }
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  if (!st.ok()) return FromGrpcStatus(st);
  return resp;
}

absl::StatusOr<std::vector<v1::CalibrationSetInfo>>
TwinClient::ListCalibrationSets(const std::string& model) {
  v1::ListCalibrationSetsRequest req;
  req.set_model(model);
  auto resp =
      Unary<v1::ListCalibrationSetsResponse>([&](auto* ctx, auto* resp) {
        return management_->ListCalibrationSets(ctx, req, resp);
      });
  if (!resp.ok()) return resp.status();
  return std::vector<v1::CalibrationSetInfo>(resp->sets().begin(),
                                             resp->sets().end());
}

absl::Status TwinClient::DeleteCalibrationSet(const std::string& model,
                                              const std::string& set) {
  grpc::ClientContext ctx;
  v1::DeleteCalibrationSetRequest req;
  req.set_model(model);
  req.set_set(set);
  v1::DeleteCalibrationSetResponse resp;
  return FromGrpcStatus(management_->DeleteCalibrationSet(&ctx, req, &resp));
}

absl::StatusOr<v1::Job> TwinClient::Quantize(
    const v1::QuantizeRequest& request) {
  return Unary<v1::Job>([&](auto* ctx, auto* resp) {
    return management_->Quantize(ctx, request, resp);
  });
}

absl::StatusOr<v1::Job> TwinClient::GetJob(const std::string& id) {
  v1::GetJobRequest req;
  req.set_id(id);
  return Unary<v1::Job>([&](auto* ctx, auto* resp) {
    return management_->GetJob(ctx, req, resp);
  });
}

absl::StatusOr<v1::Job> TwinClient::CancelJob(const std::string& id) {
  v1::GetJobRequest req;
  req.set_id(id);
  return Unary<v1::Job>([&](auto* ctx, auto* resp) {
    return management_->CancelJob(ctx, req, resp);
  });
}

absl::StatusOr<std::vector<v1::Job>> TwinClient::ListJobs(
    const std::string& model) {
  v1::ListJobsRequest req;
  req.set_model(model);
  auto resp = Unary<v1::ListJobsResponse>([&](auto* ctx, auto* resp) {
    return management_->ListJobs(ctx, req, resp);
  });
  if (!resp.ok()) return resp.status();
  return std::vector<v1::Job>(resp->jobs().begin(), resp->jobs().end());
}

absl::StatusOr<v1::Job> TwinClient::WatchJob(
    const std::string& id, std::function<void(const v1::Job&)> on_update) {
  grpc::ClientContext ctx;
  v1::GetJobRequest req;
  req.set_id(id);
  auto reader = management_->WatchJob(&ctx, req);
  v1::Job job, last;
  bool any = false;
  while (reader->Read(&job)) {
    last = job;
    any = true;
    if (on_update) on_update(job);
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return FromGrpcStatus(st);
  if (!any) return absl::InternalError("WatchJob sent nothing");
  return last;
}

absl::StatusOr<v1::QuantizationReport> TwinClient::GetReport(
    const std::string& model, const std::string& variant) {
  v1::GetQuantizationReportRequest req;
  req.set_model(model);
  req.set_variant(variant);
  return Unary<v1::QuantizationReport>([&](auto* ctx, auto* resp) {
    return management_->GetQuantizationReport(ctx, req, resp);
  });
}

inference::ModelInferRequest MakeInferRequest(
    const std::string& model, const std::vector<HostTensor>& inputs,
    const std::string& version, const std::vector<std::string>& outputs,
    const std::string& id) {
  inference::ModelInferRequest req;
  req.set_model_name(model);
  req.set_model_version(version);
  req.set_id(id);
  for (const HostTensor& t : inputs) {
    auto* in = req.add_inputs();
    in->set_name(t.name);
    in->set_datatype(DataTypeName(t.dtype));
    for (int64_t d : t.shape) in->add_shape(d);
    req.add_raw_input_contents()->assign(t.data, t.byte_size);
  }
  for (const std::string& o : outputs) req.add_outputs()->set_name(o);
  return req;
}

absl::StatusOr<InferOutputs> DecodeInferResponse(
    const inference::ModelInferResponse& resp) {
  InferOutputs out;
  out.model = resp.model_name();
  out.version = resp.model_version();
  out.id = resp.id();
  if (resp.raw_output_contents_size() != resp.outputs_size()) {
    return absl::InternalError(
        absl::StrCat("response has ", resp.outputs_size(), " outputs but ",
                     resp.raw_output_contents_size(), " raw contents"));
  }
  for (int i = 0; i < resp.outputs_size(); ++i) {
    const auto& o = resp.outputs(i);
    auto dtype = ParseDataType(o.datatype());
    if (!dtype.ok()) return dtype.status();
    out.outputs.push_back(HostTensor::Owned(
        o.name(), *dtype, Shape(o.shape().begin(), o.shape().end()),
        resp.raw_output_contents(i)));
  }
  return out;
}

grpc::Status TwinClient::RawInfer(const inference::ModelInferRequest& request,
                                  inference::ModelInferResponse* response) {
  grpc::ClientContext ctx;
  return oip_->ModelInfer(&ctx, request, response);
}

absl::StatusOr<v1::TrafficPolicy> TwinClient::SetPolicy(
    const v1::SetTrafficPolicyRequest& request) {
  return Unary<v1::TrafficPolicy>([&](auto* ctx, auto* resp) {
    return management_->SetTrafficPolicy(ctx, request, resp);
  });
}

absl::StatusOr<v1::TrafficPolicy> TwinClient::GetPolicy(
    const std::string& model) {
  v1::GetTrafficPolicyRequest req;
  req.set_model(model);
  return Unary<v1::TrafficPolicy>([&](auto* ctx, auto* resp) {
    return management_->GetTrafficPolicy(ctx, req, resp);
  });
}

absl::StatusOr<v1::TrafficPolicy> TwinClient::Promote(
    const v1::PromoteRequest& request) {
  return Unary<v1::TrafficPolicy>([&](auto* ctx, auto* resp) {
    return management_->Promote(ctx, request, resp);
  });
}

absl::StatusOr<v1::TrafficPolicy> TwinClient::Rollback(
    const v1::RollbackRequest& request) {
  return Unary<v1::TrafficPolicy>([&](auto* ctx, auto* resp) {
    return management_->Rollback(ctx, request, resp);
  });
}

absl::StatusOr<std::vector<v1::PolicyChange>> TwinClient::PolicyHistory(
    const std::string& model) {
  v1::PolicyHistoryRequest req;
  req.set_model(model);
  auto resp = Unary<v1::PolicyHistoryResponse>([&](auto* ctx, auto* resp) {
    return management_->PolicyHistory(ctx, req, resp);
  });
  if (!resp.ok()) return resp.status();
  return std::vector<v1::PolicyChange>(resp->changes().begin(),
                                       resp->changes().end());
}

absl::StatusOr<v1::ModelStats> TwinClient::GetModelStats(
    const std::string& model) {
  v1::GetModelStatsRequest req;
  req.set_model(model);
  return Unary<v1::ModelStats>([&](auto* ctx, auto* resp) {
    return management_->GetModelStats(ctx, req, resp);
  });
}

absl::StatusOr<InferOutputs> TwinClient::Infer(
    const std::string& model, const std::vector<HostTensor>& inputs,
    const std::string& version, const std::vector<std::string>& outputs,
    const std::string& id) {
  inference::ModelInferResponse resp;
  grpc::Status st =
      RawInfer(MakeInferRequest(model, inputs, version, outputs, id), &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  return DecodeInferResponse(resp);
}

absl::StatusOr<TensorSpec> ParseSpec(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor spec '", text, "' should be NAME:DATATYPE:DIM,DIM,..."));
  }
  TensorSpec spec;
  spec.name = parts[0];
  auto dtype = ParseDataType(parts[1]);
  if (!dtype.ok()) return dtype.status();
  spec.dtype = *dtype;
  for (absl::string_view d : absl::StrSplit(parts[2], ',', absl::SkipEmpty())) {
    int64_t v;
    if (!absl::SimpleAtoi(d, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor spec '", text, "': bad dim '", d, "'"));
    }
    spec.shape.push_back(v);
  }
  return spec;
}

}  // namespace twinserve
