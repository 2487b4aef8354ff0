#include "server/grpc/management_convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"

namespace twinserve {
namespace {

v1::VariantState StateToProto(VariantState s) {
  switch (s) {
    case VariantState::kLoading:
      return v1::LOADING;
    case VariantState::kCalibrating:
      return v1::CALIBRATING;
    case VariantState::kQuantizing:
      return v1::QUANTIZING;
    case VariantState::kReady:
      return v1::READY;
    case VariantState::kFailed:
      return v1::FAILED;
    case VariantState::kUnloading:
      return v1::UNLOADING;
    case VariantState::kUnloaded:
      return v1::UNLOADED;
  }
  return v1::VARIANT_STATE_UNSPECIFIED;
}

v1::JobState JobStateToProto(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return v1::JOB_QUEUED;
    case JobState::kRunning:
      return v1::JOB_RUNNING;
    case JobState::kSucceeded:
      return v1::JOB_SUCCEEDED;
    case JobState::kFailed:
      return v1::JOB_FAILED;
    case JobState::kCancelled:
      return v1::JOB_CANCELLED;
    case JobState::kInterrupted:
      return v1::JOB_INTERRUPTED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<TensorSpec> SpecFromProto(const v1::TensorSpec& proto) {
  TensorSpec spec;
  spec.name = proto.name();
  auto dtype = ParseDataType(proto.datatype());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor spec '", proto.name(), "': ", dtype.status().message()));
  }
  spec.dtype = *dtype;
  spec.shape.assign(proto.shape().begin(), proto.shape().end());
  absl::Status st = ValidateSpec(spec);
  if (!st.ok()) return st;
  return spec;
}

void SpecToProto(const TensorSpec& spec, v1::TensorSpec* out) {
  out->set_name(spec.name);
  out->set_datatype(DataTypeName(spec.dtype));
  for (int64_t d : spec.shape) out->add_shape(d);
}

BatchingConfig BatchingFromProto(const v1::BatchingConfig& p) {
  BatchingConfig c;
  c.max_batch_size = p.max_batch_size();
  c.max_queue_delay_us = static_cast<int64_t>(
      std::min<uint64_t>(p.max_queue_delay_microseconds(), uint64_t{1} << 62));
  c.preferred_batch_sizes.assign(p.preferred_batch_sizes().begin(),
                                 p.preferred_batch_sizes().end());
  if (p.queue_capacity() != 0) c.queue_capacity = p.queue_capacity();
  return c;
}

void BatchingToProto(const BatchingConfig& c, v1::BatchingConfig* out) {
  out->set_max_batch_size(c.max_batch_size);
  out->set_max_queue_delay_microseconds(c.max_queue_delay_us);
  for (int p : c.preferred_batch_sizes) out->add_preferred_batch_sizes(p);
  out->set_queue_capacity(c.queue_capacity);
}

void ModelStatusToProto(const ModelStatus& s, v1::ModelInfo* out) {
  out->set_name(s.name);
  out->set_description(s.description);
  for (const auto& spec : s.signature.inputs) {
    SpecToProto(spec, out->add_inputs());
  }
  for (const auto& spec : s.signature.outputs) {
    SpecToProto(spec, out->add_outputs());
  }
  for (const VariantStatus& v : s.variants) {
    auto* vi = out->add_variants();
    vi->set_name(v.name);
    vi->set_state(StateToProto(v.state));
    vi->set_serialized_bytes(v.serialized_bytes);
    vi->set_parameter_bytes(v.parameter_bytes);
    vi->set_sha256(v.sha256);
    vi->set_created_unix_ms(v.created_unix_ms);
    vi->set_last_error(v.last_error);
    vi->set_pending(v.pending);
    vi->set_execution_path(v.execution_path);
    BatchingToProto(v.batching, vi->mutable_batching());
  }
  BatchingToProto(s.batching.defaults, out->mutable_batching());
  out->set_created_unix_ms(s.created_unix_ms);
  out->set_updated_unix_ms(s.updated_unix_ms);
  out->set_state(StateToProto(s.state));
  out->set_last_error(s.last_error);
  out->set_generation(s.generation);
}

void JobToProto(const JobStatus& s, v1::Job* out) {
  out->set_id(s.id);
  out->set_model(s.model);
  out->set_variant(s.variant);
  out->set_kind(s.kind);
  out->set_state(JobStateToProto(s.state));
  out->set_stage(s.stage);
  out->set_done(s.done);
  out->set_total(s.total);
  out->set_percent(s.percent());
  const int64_t end = s.ended_unix_ms != 0 ? s.ended_unix_ms : NowUnixMs();
  out->set_elapsed_seconds((end - s.started_unix_ms) / 1000.0);
  out->set_message(s.message);
  out->set_created_unix_ms(s.created_unix_ms);
  out->set_ended_unix_ms(s.ended_unix_ms);
}

absl::StatusOr<TrafficPolicy> PolicyFromProto(const v1::TrafficPolicy& in) {
  TrafficPolicy p;
  if (!in.kind().empty()) {
    auto kind = ParsePolicyKind(in.kind());
    if (!kind.ok()) return kind.status();
    p.kind = *kind;
  }
  if (!in.baseline().empty()) p.baseline = in.baseline();
  for (const auto& [v, w] : in.weights()) p.weights[v] = w;
  p.candidate = in.candidate();
  if (in.has_shadow_fraction()) p.shadow_fraction = in.shadow_fraction();
  p.steps.assign(in.steps().begin(), in.steps().end());
  p.stage = in.stage();
  if (in.has_min_requests()) p.min_requests = in.min_requests();
  if (in.has_min_seconds()) p.min_seconds = in.min_seconds();
  if (in.has_compare_fraction()) p.compare_fraction = in.compare_fraction();
  if (in.has_max_disagreement()) {
    p.guards.max_disagreement = in.max_disagreement();
  }
  if (in.has_min_cosine()) p.guards.min_cosine = in.min_cosine();
  if (in.has_max_error_rate()) p.guards.max_error_rate = in.max_error_rate();
  if (in.has_max_p99_ratio()) p.guards.max_p99_ratio = in.max_p99_ratio();
  if (in.has_min_samples()) p.guards.min_samples = in.min_samples();
  return p;
}

void PolicyToProto(const TrafficPolicy& p, v1::TrafficPolicy* out) {
  out->set_kind(PolicyKindName(p.kind));
  out->set_baseline(p.baseline);
  for (const auto& [v, w] : p.weights) (*out->mutable_weights())[v] = w;
  out->set_candidate(p.candidate);
  out->set_shadow_fraction(p.shadow_fraction);
  for (double s : p.steps) out->add_steps(s);
  out->set_stage(p.stage);
  out->set_min_requests(p.min_requests);
  out->set_min_seconds(p.min_seconds);
  out->set_compare_fraction(p.compare_fraction);
  out->set_max_disagreement(p.guards.max_disagreement);
  out->set_min_cosine(p.guards.min_cosine);
  out->set_max_error_rate(p.guards.max_error_rate);
  out->set_max_p99_ratio(p.guards.max_p99_ratio);
  out->set_min_samples(p.guards.min_samples);
  out->set_version(p.version);
  out->set_updated_unix_ms(p.updated_unix_ms);
  out->set_author(p.author);
  out->set_reason(p.reason);
}

void PolicyChangeToProto(const PolicyChange& c, v1::PolicyChange* out) {
  out->set_version(c.version);
  out->set_unix_ms(c.unix_ms);
  out->set_action(c.action);
  out->set_actor(c.actor);
  out->set_reason(c.reason);
  PolicyToProto(c.policy, out->mutable_policy());
}

absl::StatusOr<QuantizeRequest> QuantizeRequestFromProto(
    const v1::QuantizeRequest& p) {
  QuantizeRequest r;
  r.model = p.model();
  QuantizeOptions& o = r.options;
  if (!p.mode().empty()) {
    auto mode = ParseQuantMode(p.mode());
    if (!mode.ok()) return mode.status();
    o.mode = *mode;
  }
  r.variant = p.variant();  // empty: the mode's default
  if (!p.calibration_set().empty()) r.calibration_set = p.calibration_set();
  r.eval_set = p.eval_set();
  if (!p.method().empty() && p.method() != "auto") {
    auto m = ParseRangeMethod(p.method());
    if (!m.ok()) return m.status();
    o.method = *m;
    o.search = false;
  }
  if (p.has_equalize()) o.equalize = p.equalize();
  if (p.has_bias_correction()) o.bias_correction = p.bias_correction();
  if (p.has_smooth_alpha()) o.smooth_alpha = p.smooth_alpha();
  if (p.has_group_size()) o.group_size = p.group_size();
  if (p.has_activation_aware()) o.activation_aware = p.activation_aware();
  if (p.has_percentile()) o.percentile = p.percentile();
  o.per_channel_weights = !p.per_tensor_weights();
  o.fp32_modules.assign(p.fp32_modules().begin(), p.fp32_modules().end());
  if (p.has_max_samples()) o.max_calibration_samples = p.max_samples();
  if (p.has_max_agreement_loss()) o.max_agreement_loss = p.max_agreement_loss();
  if (p.has_max_accuracy_loss()) o.max_accuracy_loss = p.max_accuracy_loss();
  o.auto_fallback = p.auto_fallback();
  if (p.has_max_trials()) o.max_trials = p.max_trials();
  if (p.has_time_limit_seconds()) o.time_limit_seconds = p.time_limit_seconds();
  return r;
}

void ReportToProto(const std::string& model, const std::string& variant,
                   const QuantizationReport& r, v1::QuantizationReport* out) {
  out->set_model(model);
  out->set_variant(variant);
  out->set_mode(r.mode);
  out->set_method(r.method);
  out->set_percentile(r.percentile);
  out->set_per_channel_weights(r.per_channel_weights);
  out->set_calibration_samples(r.calibration_samples);
  out->set_eval_samples(r.eval_samples);
  for (const LayerReport& l : r.layers) {
    auto* lr = out->add_layers();
    lr->set_name(l.name);
    lr->set_is_weight(l.is_weight);
    lr->set_sqnr_db(l.sqnr_db);
    lr->set_quantized(l.quantized);
  }
  for (const auto& m : r.fp32_modules) out->add_fp32_modules(m);
  for (const auto& m : r.fallback_log) out->add_fallback_log(m);
  out->set_trials(r.trials);
  out->set_criterion_met(r.criterion_met);
  out->set_top1_agreement(r.top1_agreement);
  out->set_cosine_mean(r.cosine_mean);
  out->set_max_abs_error(r.max_abs_error);
  out->set_mean_abs_error(r.mean_abs_error);
  out->set_fp32_accuracy(r.fp32_accuracy);
  out->set_int8_accuracy(r.int8_accuracy);
  out->set_fp32_serialized_bytes(r.fp32_serialized_bytes);
  out->set_int8_serialized_bytes(r.int8_serialized_bytes);
  out->set_fp32_parameter_bytes(r.fp32_parameter_bytes);
  out->set_int8_parameter_bytes(r.int8_parameter_bytes);
  out->set_fp32_latency_ms_b1(r.fp32_latency_ms_b1);
  out->set_int8_latency_ms_b1(r.int8_latency_ms_b1);
  out->set_fp32_latency_ms_b32(r.fp32_latency_ms_b32);
  out->set_int8_latency_ms_b32(r.int8_latency_ms_b32);
  out->set_duration_seconds(r.duration_seconds);
  out->set_searched(r.searched);
  out->set_equalized(r.equalized);
  out->set_bias_corrected_layers(r.bias_corrected_layers);
  out->set_smooth_alpha(r.smooth_alpha);
  for (const auto& l : r.rescaling) out->add_rescaling(l);
  for (const CandidateReport& c : r.candidates) {
    auto* cr = out->add_candidates();
    cr->set_recipe(c.recipe);
    cr->set_top1_agreement(c.top1_agreement);
    cr->set_accuracy(c.accuracy);
    cr->set_latency_ms_b1(c.latency_ms_b1);
    cr->set_criterion_met(c.criterion_met);
    cr->set_chosen(c.chosen);
  }
  for (const LayerSensitivity& l : r.sensitivity) {
    auto* lr = out->add_sensitivity();
    lr->set_layer(l.layer);
    lr->set_input_channel_spread(l.input_channel_spread);
    lr->set_agreement_quantized_alone(l.agreement_quantized_alone);
    lr->set_mean_abs_error_quantized_alone(l.mean_abs_error_quantized_alone);
  }
  out->set_kernel_path(r.kernel_path);
  for (const LinearKernelReport& l : r.linear_kernels) {
    auto* k = out->add_linear_kernels();
    k->set_layer(l.layer);
    k->set_out_features(l.out_features);
    k->set_in_features(l.in_features);
    k->set_kernel(l.kernel);
    k->set_awq_alpha(l.awq_alpha);
    k->set_awq_error_ratio(l.awq_error_ratio);
    k->set_gemm_from_rows(l.gemm_from_rows);
    k->set_twinserve_ms_b1(l.twinserve_ms_b1);
    k->set_libtorch_ms_b1(l.libtorch_ms_b1);
  }
}

void ModelSnapshotToProto(const ModelSnapshot& snap, v1::ModelStats* out) {
  out->set_model(snap.model);
  PolicyToProto(snap.policy, out->mutable_policy());
  out->set_unix_ms(snap.unix_ms);
  for (const VariantSnapshot& v : snap.variants) {
    auto* vs = out->add_variants();
    vs->set_variant(v.variant);
    vs->set_ready(v.ready);
    vs->set_requests(v.requests);
    vs->set_errors(v.errors);
    vs->set_latency_sum_seconds(v.latency_sum_seconds);
    for (double b : v.bucket_bounds) vs->add_bucket_bounds(b);
    for (uint64_t c : v.bucket_counts) vs->add_bucket_counts(c);
    vs->set_traffic_share(v.traffic_share);
    vs->set_shadow_runs(v.shadow_runs);
    vs->set_shadow_drops(v.shadow_drops);
    vs->set_top1_agreements(v.top1_agreements);
    vs->set_top1_disagreements(v.top1_disagreements);
    vs->set_cosine_sum(v.cosine_sum);
    vs->set_cosine_count(v.cosine_count);
    vs->set_max_abs_error_sum(v.max_abs_error_sum);
  }
}

}  // namespace twinserve
