#include "server/serving/batching.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace twinserve {
namespace {

nlohmann::json ConfigToJson(const BatchingConfig& c) {
  return {{"max_batch_size", c.max_batch_size},
          {"max_queue_delay_us", c.max_queue_delay_us},
          {"preferred_batch_sizes", c.preferred_batch_sizes},
          {"queue_capacity", c.queue_capacity}};
}

BatchingConfig ConfigFromJson(const nlohmann::json& j) {
  BatchingConfig c;
  c.max_batch_size = j.value("max_batch_size", 0);
  c.max_queue_delay_us = j.value("max_queue_delay_us", int64_t{0});
  c.preferred_batch_sizes =
      j.value("preferred_batch_sizes", std::vector<int>());
  c.queue_capacity = j.value("queue_capacity", 1024);
  return c;
}

}  // namespace

const BatchingConfig& BatchingPolicy::For(const std::string& variant) const {
  auto it = per_variant.find(variant);
  return it == per_variant.end() ? defaults : it->second;
}

absl::Status CheckBatchable(const Signature& signature) {
  auto check = [](const std::vector<TensorSpec>& specs, const char* kind) {
    for (const TensorSpec& s : specs) {
      if (s.shape.empty() || s.shape[0] != -1) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the model is not batchable: ", kind, " '", s.name, "' is ",
            ShapeToString(s.shape),
            "; dynamic batching needs dim 0 of every input and output to be "
            "free (-1)"));
      }
    }
    return absl::OkStatus();
  };
  absl::Status st = check(signature.inputs, "input");
  if (!st.ok()) return st;
  return check(signature.outputs, "output");
}

absl::Status ValidateBatching(const Signature& signature,
                              BatchingConfig* config) {
  if (config->max_batch_size < 0 || config->max_batch_size > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch_size must be in [0, 4096], got ", config->max_batch_size));
  }
  if (config->max_queue_delay_us < 0 ||
      config->max_queue_delay_us > 10'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_delay_us must be in [0, 10000000], got ",
                     config->max_queue_delay_us));
  }
  if (config->queue_capacity < 1 || config->queue_capacity > 1'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_capacity must be in [1, 1000000], got ",
                     config->queue_capacity));
  }
  std::vector<int>& preferred = config->preferred_batch_sizes;
  // Turning batching off keeps nothing that only batching uses.
  if (!config->enabled()) preferred.clear();
  for (int p : preferred) {
    if (p < 2 || p > config->max_batch_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("preferred batch size ", p, " must be in [2, ",
                       config->max_batch_size, "] (max_batch_size)"));
    }
  }
  std::sort(preferred.begin(), preferred.end());
  preferred.erase(std::unique(preferred.begin(), preferred.end()),
                  preferred.end());
  if (config->enabled()) return CheckBatchable(signature);
  return absl::OkStatus();
}

std::string BatchingPolicyToJson(const BatchingPolicy& policy) {
  nlohmann::json j;
  j["default"] = ConfigToJson(policy.defaults);
  j["variants"] = nlohmann::json::object();
  for (const auto& [name, c] : policy.per_variant) {
    j["variants"][name] = ConfigToJson(c);
  }
  return j.dump();
}

absl::StatusOr<BatchingPolicy> BatchingPolicyFromJson(const std::string& text) {
  BatchingPolicy policy;
  if (text.empty()) return policy;
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    if (j.contains("default")) policy.defaults = ConfigFromJson(j["default"]);
    if (j.contains("variants")) {
      for (const auto& [name, c] : j["variants"].items()) {
        policy.per_variant[name] = ConfigFromJson(c);
      }
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("unreadable batching settings: ", e.what()));
  }
  return policy;
}

}  // namespace twinserve
