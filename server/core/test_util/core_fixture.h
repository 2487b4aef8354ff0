// A registry over a fresh store with its writers, for the core's unit
// tests: real LibTorch models from tests/fixtures, no gRPC.
#ifndef TWINSERVE_SERVER_CORE_TEST_UTIL_CORE_FIXTURE_H_
#define TWINSERVE_SERVER_CORE_TEST_UTIL_CORE_FIXTURE_H_

#include <memory>
#include <string>

#include "server/core/registrar.h"
#include "server/core/registry.h"
#include "server/core/traffic_control.h"
#include "server/serving/scheduler.h"
#include "server/store/model_store.h"

namespace twinserve {
namespace testing {

// add_sub.pt's registration: a, b FP32 [-1, 4] -> sum, diff.
RegisterArgs AddSubArgs(const std::string& name);

struct CoreFixture {
  // Opens a store at `root` (a fresh temp folder when empty) and, unless
  // `load` is false, loads it.
  explicit CoreFixture(std::string root = "", bool load = true);
  // A fixture file copied into the store's staging folder.
  StagedFile Stage(const std::string& fixture);
  // Registers add_sub.pt as `name`; aborts the test binary on failure.
  ModelStatus RegisterAddSub(const std::string& name);
  // Adds add_sub.pt as variant `variant` of `name`.
  void AddVariant(const std::string& name, const std::string& variant);

  std::string root;
  std::unique_ptr<ModelStore> store;
  std::unique_ptr<SchedulerFactory> schedulers;
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<Registrar> registrar;
  std::unique_ptr<TrafficControl> traffic;
};

}  // namespace testing
}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_TEST_UTIL_CORE_FIXTURE_H_
