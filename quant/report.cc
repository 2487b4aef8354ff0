#include "quant/report.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace twinserve {

std::string QuantizationReport::ToJson() const {
  nlohmann::json j;
  j["mode"] = mode;
  j["method"] = method;
  j["percentile"] = percentile;
  j["per_channel_weights"] = per_channel_weights;
  j["calibration_samples"] = calibration_samples;
  j["eval_samples"] = eval_samples;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : layers) {
    j["layers"].push_back(
        {{"name", l.name},
         {"is_weight", l.is_weight},
         {"sqnr_db", std::isfinite(l.sqnr_db) ? l.sqnr_db : 999.0},
         {"quantized", l.quantized}});
  }
  j["fp32_modules"] = fp32_modules;
  j["fallback_log"] = fallback_log;
  j["trials"] = trials;
  j["criterion_met"] = criterion_met;
  j["top1_agreement"] = top1_agreement;
  j["cosine_mean"] = cosine_mean;
  j["max_abs_error"] = max_abs_error;
  j["mean_abs_error"] = mean_abs_error;
  j["fp32_accuracy"] = fp32_accuracy;
  j["int8_accuracy"] = int8_accuracy;
  j["fp32_serialized_bytes"] = fp32_serialized_bytes;
  j["int8_serialized_bytes"] = int8_serialized_bytes;
  j["fp32_parameter_bytes"] = fp32_parameter_bytes;
  j["int8_parameter_bytes"] = int8_parameter_bytes;
  j["fp32_latency_ms_b1"] = fp32_latency_ms_b1;
  j["int8_latency_ms_b1"] = int8_latency_ms_b1;
  j["fp32_latency_ms_b32"] = fp32_latency_ms_b32;
  j["int8_latency_ms_b32"] = int8_latency_ms_b32;
  j["duration_seconds"] = duration_seconds;
  j["searched"] = searched;
  j["equalized"] = equalized;
  j["bias_corrected_layers"] = bias_corrected_layers;
  j["smooth_alpha"] = smooth_alpha;
  j["rescaling"] = rescaling;
  j["candidates"] = nlohmann::json::array();
  for (const auto& c : candidates) {
    j["candidates"].push_back({{"recipe", c.recipe},
                               {"top1_agreement", c.top1_agreement},
                               {"accuracy", c.accuracy},
                               {"latency_ms_b1", c.latency_ms_b1},
                               {"criterion_met", c.criterion_met},
                               {"chosen", c.chosen}});
  }
  j["sensitivity"] = nlohmann::json::array();
  for (const auto& l : sensitivity) {
    j["sensitivity"].push_back(
        {{"layer", l.layer},
         {"input_channel_spread",
          std::isfinite(l.input_channel_spread) ? l.input_channel_spread : 1e9},
         {"agreement_quantized_alone", l.agreement_quantized_alone},
         {"mean_abs_error_quantized_alone", l.mean_abs_error_quantized_alone}});
  }
  j["kernel_path"] = kernel_path;
  j["linear_kernels"] = nlohmann::json::array();
  for (const auto& l : linear_kernels) {
    j["linear_kernels"].push_back({{"layer", l.layer},
                                   {"out_features", l.out_features},
                                   {"in_features", l.in_features},
                                   {"kernel", l.kernel},
                                   {"awq_alpha", l.awq_alpha},
                                   {"awq_error_ratio", l.awq_error_ratio},
                                   {"gemm_from_rows", l.gemm_from_rows},
                                   {"twinserve_ms_b1", l.twinserve_ms_b1},
                                   {"libtorch_ms_b1", l.libtorch_ms_b1}});
  }
  return j.dump();
}

absl::StatusOr<QuantizationReport> QuantizationReport::FromJson(
    const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    QuantizationReport r;
    r.mode = j.value("mode", std::string("static"));
    r.method = j.at("method");
    r.percentile = j.at("percentile");
    r.per_channel_weights = j.at("per_channel_weights");
    r.calibration_samples = j.at("calibration_samples");
    r.eval_samples = j.at("eval_samples");
    for (const auto& l : j.at("layers")) {
      r.layers.push_back({l.at("name"), l.at("is_weight"), l.at("sqnr_db"),
                          l.at("quantized")});
    }
    r.fp32_modules = j.at("fp32_modules").get<std::vector<std::string>>();
    r.fallback_log = j.at("fallback_log").get<std::vector<std::string>>();
    r.trials = j.at("trials");
    r.criterion_met = j.at("criterion_met");
    r.top1_agreement = j.at("top1_agreement");
    r.cosine_mean = j.at("cosine_mean");
    r.max_abs_error = j.at("max_abs_error");
    r.mean_abs_error = j.at("mean_abs_error");
    r.fp32_accuracy = j.at("fp32_accuracy");
    r.int8_accuracy = j.at("int8_accuracy");
    r.fp32_serialized_bytes = j.at("fp32_serialized_bytes");
    r.int8_serialized_bytes = j.at("int8_serialized_bytes");
    r.fp32_parameter_bytes = j.at("fp32_parameter_bytes");
    r.int8_parameter_bytes = j.at("int8_parameter_bytes");
    r.fp32_latency_ms_b1 = j.at("fp32_latency_ms_b1");
    r.int8_latency_ms_b1 = j.at("int8_latency_ms_b1");
    r.fp32_latency_ms_b32 = j.at("fp32_latency_ms_b32");
    r.int8_latency_ms_b32 = j.at("int8_latency_ms_b32");
    r.duration_seconds = j.at("duration_seconds");
    // Reports written before issue 11 have none of these.
    r.searched = j.value("searched", false);
    r.equalized = j.value("equalized", false);
    r.bias_corrected_layers = j.value("bias_corrected_layers", 0);
    r.smooth_alpha = j.value("smooth_alpha", 0.0);
    r.rescaling = j.value("rescaling", std::vector<std::string>());
    for (const auto& c : j.value("candidates", nlohmann::json::array())) {
      r.candidates.push_back({c.at("recipe"), c.at("top1_agreement"),
                              c.at("accuracy"), c.at("latency_ms_b1"),
                              c.at("criterion_met"), c.at("chosen")});
    }
    for (const auto& l : j.value("sensitivity", nlohmann::json::array())) {
      r.sensitivity.push_back({l.at("layer"), l.at("input_channel_spread"),
                               l.at("agreement_quantized_alone"),
                               l.at("mean_abs_error_quantized_alone")});
    }
    // Reports written before issue 13 have none of these.
    r.kernel_path = j.value("kernel_path", std::string());
    for (const auto& l : j.value("linear_kernels", nlohmann::json::array())) {
      LinearKernelReport k;
      k.layer = l.at("layer");
      k.out_features = l.at("out_features");
      k.in_features = l.at("in_features");
      k.kernel = l.at("kernel");
      k.awq_alpha = l.at("awq_alpha");
      k.awq_error_ratio = l.at("awq_error_ratio");
      k.gemm_from_rows = l.at("gemm_from_rows");
      k.twinserve_ms_b1 = l.at("twinserve_ms_b1");
      k.libtorch_ms_b1 = l.at("libtorch_ms_b1");
      r.linear_kernels.push_back(std::move(k));
    }
    return r;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("corrupt report: ", e.what()));
  }
}

}  // namespace twinserve
