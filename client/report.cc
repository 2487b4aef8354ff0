#include "client/report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/common/quantile.h"

namespace twinserve {
namespace {

std::string Pct(double v) { return v < 0 ? "-" : absl::StrFormat("%.2f%%", v); }

std::string Ratio(double a, double b) {
  return b > 0 ? absl::StrFormat("%.2fx", a / b) : "-";
}

}  // namespace

std::string FormatReport(const v1::QuantizationReport& r, bool brief) {
  std::string out;
  absl::StrAppendFormat(
      &out,
      "%s:%s  mode %s, method %s%s, weights %s, %d calibration / %d "
      "evaluation samples, %.1f s\n",
      r.model(), r.variant(), r.mode().empty() ? "static" : r.mode(),
      r.method(),
      r.method() == "percentile" ? absl::StrFormat(" (p%.4g)", r.percentile())
                                 : "",
      r.per_channel_weights() ? "per-channel" : "per-tensor",
      r.calibration_samples(), r.eval_samples(), r.duration_seconds());
  if (r.mode().empty() || r.mode() == "static") {
    absl::StrAppendFormat(
        &out, "recipe: %s, %s, %d biases corrected, %s\n",
        r.searched() ? "searched (method auto)" : "method as asked",
        r.equalized() ? "equalized" : "not equalized",
        r.bias_corrected_layers(),
        r.smooth_alpha() > 0
            ? absl::StrFormat("Linear inputs smoothed (alpha %.2f)",
                              r.smooth_alpha())
            : "no smoothing");
  }
  if (r.candidates_size() > 0) {
    absl::StrAppendFormat(&out, "\n%-44s %10s %10s %12s\n",
                          "candidate (screening subset)", "agreement",
                          "accuracy", "b1 ms");
    for (const auto& c : r.candidates()) {
      absl::StrAppendFormat(&out, "%-44s %10s %10s %12.3f  %s%s\n", c.recipe(),
                            Pct(c.top1_agreement()), Pct(c.accuracy()),
                            c.latency_ms_b1(), c.criterion_met() ? "meets" : "",
                            c.chosen() ? " <- chosen" : "");
    }
  }
  absl::StrAppendFormat(&out, "\n%-26s %14s %14s %10s\n", "", "fp32",
                        r.variant(), "int8/fp32");
  absl::StrAppendFormat(
      &out, "%-26s %14s %14s %10s\n", "top-1 accuracy", Pct(r.fp32_accuracy()),
      Pct(r.int8_accuracy()),
      r.fp32_accuracy() >= 0
          ? absl::StrFormat("%+.2f pt", r.int8_accuracy() - r.fp32_accuracy())
          : "-");
  absl::StrAppendFormat(&out, "%-26s %14s %14s\n", "top-1 agreement", "",
                        Pct(r.top1_agreement()));
  absl::StrAppendFormat(&out, "%-26s %14s %14.5f\n", "cosine similarity", "",
                        r.cosine_mean());
  absl::StrAppendFormat(&out, "%-26s %14s %14.4g\n", "max |error|", "",
                        r.max_abs_error());
  absl::StrAppendFormat(&out, "%-26s %14s %14.4g\n", "mean |error|", "",
                        r.mean_abs_error());
  absl::StrAppendFormat(
      &out, "%-26s %14d %14d %10s\n", "serialized bytes",
      r.fp32_serialized_bytes(), r.int8_serialized_bytes(),
      Ratio(r.int8_serialized_bytes(), r.fp32_serialized_bytes()));
  absl::StrAppendFormat(
      &out, "%-26s %14d %14d %10s\n", "parameter bytes",
      r.fp32_parameter_bytes(), r.int8_parameter_bytes(),
      Ratio(r.int8_parameter_bytes(), r.fp32_parameter_bytes()));
  absl::StrAppendFormat(&out, "%-26s %14.3f %14.3f %10s\n",
                        "latency batch 1 (ms)", r.fp32_latency_ms_b1(),
                        r.int8_latency_ms_b1(),
                        Ratio(r.int8_latency_ms_b1(), r.fp32_latency_ms_b1()));
  absl::StrAppendFormat(
      &out, "%-26s %14.3f %14.3f %10s\n", "latency batch 32 (ms)",
      r.fp32_latency_ms_b32(), r.int8_latency_ms_b32(),
      Ratio(r.int8_latency_ms_b32(), r.fp32_latency_ms_b32()));
  if (r.int8_latency_ms_b1() > 0) {
    absl::StrAppendFormat(
        &out, "%-26s %14s %14s\n", "speedup batch 1", "",
        Ratio(r.fp32_latency_ms_b1(), r.int8_latency_ms_b1()));
  }
  if (!r.fp32_modules().empty()) {
    absl::StrAppend(
        &out, "\nkept in FP32: ", absl::StrJoin(r.fp32_modules(), ", "), "\n");
  }
  for (const auto& line : r.fallback_log()) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  if (!brief && r.rescaling_size() > 0) {
    absl::StrAppend(&out, "\nrescaling:\n");
    for (const auto& line : r.rescaling()) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  if (r.linear_kernels_size() > 0) {
    absl::StrAppendFormat(&out, "\nLinear kernels (%s path):\n",
                          r.kernel_path().empty() ? "-" : r.kernel_path());
    absl::StrAppendFormat(&out, "%-24s %12s  %-28s %8s %8s %10s\n", "layer",
                          "out x in", "kernel", "awq a", "err/rtn",
                          "gemm from");
    for (const auto& k : r.linear_kernels()) {
      std::string kernel = k.kernel();
      if (k.twinserve_ms_b1() >= 0 && k.libtorch_ms_b1() >= 0) {
        absl::StrAppendFormat(&kernel, " (%.3f vs %.3f ms)",
                              k.twinserve_ms_b1(), k.libtorch_ms_b1());
      }
      absl::StrAppendFormat(
          &out, "%-24s %12s  %-28s %8s %8s %10s\n", k.layer(),
          absl::StrCat(k.out_features(), "x", k.in_features()), kernel,
          k.awq_alpha() >= 0 ? absl::StrFormat("%.2f", k.awq_alpha()) : "-",
          k.awq_error_ratio() >= 0
              ? absl::StrFormat("%.2f", k.awq_error_ratio())
              : "-",
          k.gemm_from_rows() > 0 ? absl::StrCat(k.gemm_from_rows(), " rows")
                                 : "never");
    }
  }
  if (!brief && r.sensitivity_size() > 0) {
    absl::StrAppendFormat(&out, "\n%-32s %16s %22s\n", "layer", "input spread",
                          "agreement int8 alone");
    for (const auto& l : r.sensitivity()) {
      absl::StrAppendFormat(&out, "%-32s %15.1fx %22s\n", l.layer(),
                            l.input_channel_spread(),
                            Pct(l.agreement_quantized_alone()));
    }
    absl::StrAppend(&out,
                    "(input spread: largest input channel range over the "
                    "median one; agreement when only this layer is INT8, "
                    "measured when the fallback ranked layers)\n");
  }
  if (!brief) {
    absl::StrAppendFormat(&out, "\n%-40s %10s  %s\n", "tensor", "SQNR (dB)",
                          "quantized");
    for (const auto& l : r.layers()) {
      absl::StrAppendFormat(
          &out, "%-40s %10s  %s\n", l.name(),
          l.sqnr_db() >= 999 ? "inf" : absl::StrFormat("%.1f", l.sqnr_db()),
          l.quantized() ? "int8" : "fp32");
    }
    absl::StrAppend(&out,
                    "(SQNR of each tensor's own quantization on the evaluation "
                    "set: activations at their observed outputs, weights per "
                    "layer)\n");
  }
  return out;
}

std::string FormatCompare(const v1::ModelStats& now,
                          const v1::ModelStats* before) {
  const auto& p = now.policy();
  std::string weights;
  for (const auto& [v, w] : p.weights()) {
    absl::StrAppend(&weights, weights.empty() ? "" : " ", v, "=", w);
  }
  std::string stage;
  if (p.kind() == "rollout" && p.steps_size() > 0) {
    stage =
        absl::StrFormat(", stage %d/%d (%.4g%%)", p.stage() + 1, p.steps_size(),
                        p.steps(std::min(p.stage(), p.steps_size() - 1)));
  }
  std::string out = absl::StrFormat(
      "%s  policy v%d %s%s, baseline %s%s%s%s   (%s)\n", now.model(),
      p.version(), p.kind(), stage, p.baseline(),
      p.candidate().empty() ? "" : ", candidate " + p.candidate(),
      weights.empty() ? "" : ", weights ", weights,
      before != nullptr
          ? absl::StrFormat("last %.1f s",
                            (now.unix_ms() - before->unix_ms()) / 1000.0)
          : "since start");
  absl::StrAppendFormat(
      &out, "%-14s %-9s %9s %7s %9s %9s %9s %9s %8s %8s %10s %7s\n", "variant",
      "role", "requests", "err%", "p50 ms", "p90 ms", "p99 ms", "req/s",
      "agree%", "cosine", "max|err|", "share");
  const double seconds =
      before != nullptr ? (now.unix_ms() - before->unix_ms()) / 1000.0 : 0;
  for (const auto& v : now.variants()) {
    const v1::VariantLiveStats* old = nullptr;
    if (before != nullptr) {
      for (const auto& b : before->variants()) {
        if (b.variant() == v.variant()) old = &b;
      }
    }
    auto delta = [&](uint64_t a, uint64_t b) { return old ? a - b : a; };
    const uint64_t requests = delta(v.requests(), old ? old->requests() : 0);
    const uint64_t errors = delta(v.errors(), old ? old->errors() : 0);
    std::vector<double> bounds(v.bucket_bounds().begin(),
                               v.bucket_bounds().end());
    std::vector<uint64_t> counts(v.bucket_counts().begin(),
                                 v.bucket_counts().end());
    if (old != nullptr && old->bucket_counts_size() == v.bucket_counts_size()) {
      for (int i = 0; i < v.bucket_counts_size(); ++i) {
        counts[i] -= old->bucket_counts(i);
      }
    }
    const uint64_t agree =
        delta(v.top1_agreements(), old ? old->top1_agreements() : 0);
    const uint64_t disagree =
        delta(v.top1_disagreements(), old ? old->top1_disagreements() : 0);
    const double cos_sum = v.cosine_sum() - (old ? old->cosine_sum() : 0);
    const uint64_t cos_n =
        delta(v.cosine_count(), old ? old->cosine_count() : 0);
    const double err_sum =
        v.max_abs_error_sum() - (old ? old->max_abs_error_sum() : 0);
    std::string role = v.variant() == p.baseline() ? "baseline" : "";
    if (v.variant() == p.candidate()) {
      role = p.kind() == "rollout" ? "rollout" : "shadow";
    }
    if (p.kind() == "weighted" && role.empty() && v.traffic_share() > 0) {
      role = "weighted";
    }
    absl::StrAppendFormat(
        &out, "%-14s %-9s %9d %7s %9.3f %9.3f %9.3f %9s %8s %8s %10s %6.1f%%\n",
        v.variant(), role, requests,
        requests + errors > 0
            ? absl::StrFormat("%.2f", 100.0 * errors / (requests + errors))
            : "-",
        1e3 * QuantileFromBuckets(bounds, counts, 0.5),
        1e3 * QuantileFromBuckets(bounds, counts, 0.9),
        1e3 * QuantileFromBuckets(bounds, counts, 0.99),
        seconds > 0 ? absl::StrFormat("%.1f", requests / seconds) : "-",
        agree + disagree > 0
            ? absl::StrFormat("%.2f", 100.0 * agree / (agree + disagree))
            : "-",
        cos_n > 0 ? absl::StrFormat("%.5f", cos_sum / cos_n) : "-",
        cos_n > 0 ? absl::StrFormat("%.3g", err_sum / cos_n) : "-",
        100.0 * v.traffic_share());
  }
  return out;
}

std::string FormatProgress(const v1::Job& job) {
  const int width = 30;
  const int filled = static_cast<int>(
      std::round(width * std::min(100.0, job.percent()) / 100));
  return absl::StrFormat("[%s%s] %5.1f%%  %-28s %6.1f s",
                         std::string(filled, '#'),
                         std::string(width - filled, '.'), job.percent(),
                         job.stage(), job.elapsed_seconds());
}

}  // namespace twinserve
