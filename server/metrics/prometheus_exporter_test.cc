#include "server/metrics/prometheus_exporter.h"

#include <prometheus/text_serializer.h>

#include <random>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/test_util/core_fixture.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::twinserve::testing::CoreFixture;

std::string Render(const prometheus::Collectable& c) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, c.Collect());
  return out.str();
}

TEST(PrometheusExporterTest, ExportsTheCoresStatisticsAndForgetsRemovedModels) {
  CoreFixture f;
  f.RegisterAddSub("m");
  InferenceEngine engine(f.registry.get(), {});
  auto collector = MakeCoreCollector(f.registry.get(), &engine);
  std::mt19937 rng(1);
  for (int i = 0; i < 3; ++i) {
    InferRequest req;
    req.model = "m";
    req.inputs = {::twinserve::testing::RandomFloats("a", {2, 4}, &rng),
                  ::twinserve::testing::RandomFloats("b", {2, 4}, &rng)};
    ASSERT_TRUE(engine.InferSync(std::move(req)).ok());
  }
  InferRequest bad;
  bad.model = "m";
  EXPECT_FALSE(engine.InferSync(std::move(bad)).ok());
  for (int i = 0; i < 5; ++i) {
    InferRequest unknown;
    unknown.model = "random-client-text-" + std::to_string(i);
    EXPECT_FALSE(engine.InferSync(std::move(unknown)).ok());
  }
  const std::string text = Render(*collector);
  EXPECT_THAT(text, HasSubstr("twinserve_requests_total{code=\"OK\",model="
                              "\"m\",variant=\"fp32\"} 3"));
  EXPECT_THAT(text, HasSubstr("twinserve_requests_total{code=\"INVALID_"
                              "ARGUMENT\",model=\"m\",variant=\"fp32\"} 1"));
  EXPECT_THAT(text, HasSubstr("twinserve_unrouted_requests_total{code=\""
                              "NOT_FOUND\"} 5"));
  EXPECT_THAT(text, Not(HasSubstr("random-client-text")));
  EXPECT_THAT(text, HasSubstr("twinserve_request_duration_seconds_count{"
                              "model=\"m\",variant=\"fp32\"} 3"));
  EXPECT_THAT(text, HasSubstr("twinserve_variant_ready{model=\"m\",variant="
                              "\"fp32\"} 1"));
  EXPECT_THAT(text, HasSubstr("twinserve_inflight_requests{model=\"m\"} 0"));

  ASSERT_TRUE(f.registrar->Unregister("m").ok());
  EXPECT_THAT(Render(*collector), Not(HasSubstr("model=\"m\"")));
}

}  // namespace
}  // namespace twinserve
