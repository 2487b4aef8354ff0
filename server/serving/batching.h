// Dynamic batching settings (after Triton's dynamic_batching): how many
// rows one execution may hold, how long a request may wait for company,
// which batch sizes to prefer and how many requests may wait at all.
//
// A model has a default configuration and may override it per variant (an
// INT8 variant often wants larger batches than its FP32 twin). Settings are
// stored in the model's manifest and can change while the model serves.
#ifndef TWINSERVE_SERVER_SERVING_BATCHING_H_
#define TWINSERVE_SERVER_SERVING_BATCHING_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/common/signature.h"

namespace twinserve {

struct BatchingConfig {
  // Rows (dim 0) per execution. 0 or 1: batching off, each request runs
  // alone as soon as a worker is free.
  int max_batch_size = 0;
  // How long the oldest waiting request may wait for a fuller batch.
  int64_t max_queue_delay_us = 0;
  // Batch sizes to dispatch at once when reached (ascending).
  std::vector<int> preferred_batch_sizes;
  // Requests waiting to run; past it requests are refused at once with
  // RESOURCE_EXHAUSTED.
  int queue_capacity = 1024;

  bool enabled() const { return max_batch_size > 1; }
  bool operator==(const BatchingConfig& o) const {
    return max_batch_size == o.max_batch_size &&
           max_queue_delay_us == o.max_queue_delay_us &&
           preferred_batch_sizes == o.preferred_batch_sizes &&
           queue_capacity == o.queue_capacity;
  }
  bool operator!=(const BatchingConfig& o) const { return !(*this == o); }
};

struct BatchingPolicy {
  BatchingConfig defaults;
  std::map<std::string, BatchingConfig> per_variant;

  // The configuration `variant` runs with.
  const BatchingConfig& For(const std::string& variant) const;
};

// A model is batchable when dim 0 of every input and output is free (-1):
// requests can be stacked along it and the outputs split back.
// FAILED_PRECONDITION names the first tensor whose dim 0 is fixed.
absl::Status CheckBatchable(const Signature& signature);

// INVALID_ARGUMENT unless 0 <= max_batch_size <= 4096, every preferred size
// is in [2, max_batch_size], 0 <= delay <= 10 s and 1 <= capacity <=
// 1,000,000. When batching is enabled, also CheckBatchable. Sorts and
// de-duplicates the preferred sizes; drops them when batching is off.
absl::Status ValidateBatching(const Signature& signature,
                              BatchingConfig* config);

std::string BatchingPolicyToJson(const BatchingPolicy& policy);
// Empty text gives the default policy (batching off).
absl::StatusOr<BatchingPolicy> BatchingPolicyFromJson(const std::string& text);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_BATCHING_H_
