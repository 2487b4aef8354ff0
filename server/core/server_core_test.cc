#include "server/core/server_core.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;

TEST(ServerCoreTest, ShutdownStopsARunningJobBeforeWhatItUsesGoesAway) {
  // The quantization service used to be destroyed before the job manager:
  // a job running at shutdown went on on a freed service (and, at SIGTERM,
  // finished and published during the grace period), and was recorded
  // CANCELLED at best. Now jobs stop first, recorded INTERRUPTED, while
  // everything they use exists (also checked under --config=asan).
  ServerOptions options;
  options.store_path = NewTempDir("store");
  options.rollout_tick_ms = 0;
  std::string id;
  {
    auto core = ServerCore::Create(options);
    ASSERT_TRUE(core.ok()) << core.status();
    (*core)->LoadStoredModels();
    RegisterArgs args;
    args.name = "f";
    args.signature.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
    args.signature.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
    auto staged = (*core)->store()->StageBytes(
        ReadFileOrDie(FixturePath("fashion_cnn.pt")));
    ASSERT_TRUE((*core)->registrar()->Register(args, *staged).ok());
    auto split = ::twinserve::testing::LoadFashionSplit("t10k");
    auto set = (*core)->quantization()->NewSet("f", "calib");
    ASSERT_TRUE(set.ok());
    ASSERT_TRUE(
        set->Append({::twinserve::testing::RowsOf(split.images, 0, 4000)}, {},
                    {})
            .ok());
    ASSERT_TRUE((*core)->quantization()->PutSet("f", *set, false).ok());
    QuantizeRequest q;
    q.model = "f";
    q.options.max_calibration_samples = 4000;
    auto job = (*core)->quantization()->StartQuantize(q);
    ASSERT_TRUE(job.ok()) << job.status();
    id = job->id;
    while ((*core)->jobs()->Get(id)->done == 0 &&
           !IsTerminal((*core)->jobs()->Get(id)->state)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }  // destroyed while the job runs
  auto core = ServerCore::Create(options);
  ASSERT_TRUE(core.ok());
  (*core)->LoadStoredModels();
  auto job = (*core)->jobs()->Get(id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kInterrupted) << job->message;
  auto model = (*core)->registry()->Get("f");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->variants.size(), 1u);  // nothing half-made published
}

}  // namespace
}  // namespace twinserve
