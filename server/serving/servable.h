// A servable: one loaded variant of a model, immutable once published, and
// the handles requests hold on it (after TF Serving's ServableHandle). The
// registry (server/core) publishes servables; the engine reaches them
// through the ServableRouter interface, so serving/ never depends on core/.
#ifndef TWINSERVE_SERVER_SERVING_SERVABLE_H_
#define TWINSERVE_SERVER_SERVING_SERVABLE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/runtime/runner.h"
#include "server/serving/batching.h"
#include "server/serving/scheduler.h"
#include "server/serving/variant_stats.h"

namespace twinserve {

struct Servable {
  std::string model;
  std::string variant;
  std::string registration_id;
  uint64_t generation = 0;
  std::shared_ptr<const Runner> runner;
  // Shared by every servable of this variant (a batching change or a
  // reload publishes a new servable with the same statistics).
  std::shared_ptr<VariantStats> stats;
  // Built for this servable when it was published, from `batching`.
  std::shared_ptr<Scheduler> scheduler;
  BatchingConfig batching;
};

// Keeps a servable (its runner, scheduler and statistics) alive while a
// request uses it; the registry may have published another meanwhile.
using ServableHandle = std::shared_ptr<const Servable>;

// The routing decision for one request, made once: the servable that
// answers and, if the traffic policy wants one, the servable that runs
// beside it for comparison.
struct Acquired {
  ServableHandle served;
  ServableHandle comparison;  // null: none
  // Which of the two is the baseline; drift is recorded on the other.
  bool served_is_baseline = true;
};

class ServableRouter {
 public:
  virtual ~ServableRouter() = default;
  // An empty `version` lets the model's traffic policy choose (sticky by
  // `routing_key` when given); a named version bypasses the policy and is
  // never compared. NOT_FOUND for an unknown model or version; UNAVAILABLE
  // if it cannot serve now.
  virtual absl::StatusOr<Acquired> Acquire(
      const std::string& model, const std::string& version,
      absl::string_view routing_key) const = 0;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_SERVABLE_H_
