#include "client/report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

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
