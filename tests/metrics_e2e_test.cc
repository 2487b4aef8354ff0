// /metrics over real HTTP from the real binary: request, latency, failure,
// policy, size and process series with their labels and plausible values.

#include <algorithm>
#include <cstring>
#include <iterator>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::MetricValue;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::Scrape;
using ::twinserve::testing::ServerProcess;

TEST(MetricsTest, PerVariantSeriesWithPlausibleValues) {
  ServerProcess server(NewTempDir("store"));
  TwinClient client(server.address());
  ASSERT_TRUE(::twinserve::testing::RegisterAddSubWithAlt(client).ok());
  HostTensor a =
      HostTensor::Owned("a", DataType::kFp32, {2, 4}, std::string(32, '\0'));
  HostTensor b = a;
  b.name = "b";
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(client.Infer("m", {a, b}).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(client.Infer("m", {a, b}, "alt").ok());
  }
  EXPECT_FALSE(client.Infer("m", {a}).ok());  // missing input b
  {
    grpc::ClientContext ctx;
    v1::SetTrafficPolicyRequest req;
    req.set_model("m");
    req.mutable_policy()->set_kind("weighted");
    (*req.mutable_policy()->mutable_weights())["fp32"] = 3;
    (*req.mutable_policy()->mutable_weights())["alt"] = 1;
    v1::TrafficPolicy out;
    ASSERT_TRUE(client.management()->SetTrafficPolicy(&ctx, req, &out).ok());
  }

  const std::string text = Scrape(server.metrics_address());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(MetricValue(text,
                        "twinserve_requests_total{code=\"OK\",model=\"m\","
                        "variant=\"fp32\"}"),
            30);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_requests_total{code=\"OK\",model=\"m\","
                        "variant=\"alt\"}"),
            10);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_requests_total{code=\"INVALID_ARGUMENT\","
                        "model=\"m\",variant=\"fp32\"}"),
            1);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_request_duration_seconds_count{model=\"m\","
                        "variant=\"fp32\"}"),
            30);
  const double sum =
      MetricValue(text,
                  "twinserve_request_duration_seconds_sum{model=\"m\","
                  "variant=\"fp32\"}");
  EXPECT_GT(sum, 0);
  EXPECT_LT(sum / 30, 0.5) << "mean latency of a 4-wide add is far below 0.5s";
  // Sub-millisecond buckets exist.
  EXPECT_THAT(text, HasSubstr("twinserve_request_duration_seconds_bucket{"
                              "model=\"m\",variant=\"fp32\",le=\"0.0001\"}"));
  EXPECT_EQ(MetricValue(text,
                        "twinserve_batch_size_count{model=\"m\","
                        "variant=\"alt\"}"),
            10);
  EXPECT_EQ(MetricValue(text, "twinserve_inflight_requests{model=\"m\"}"), 0);
  EXPECT_EQ(
      MetricValue(text, "twinserve_traffic_share{model=\"m\",variant=\"alt\"}"),
      0.25);
  EXPECT_GT(MetricValue(text,
                        "twinserve_model_size_bytes{model=\"m\","
                        "variant=\"fp32\"}"),
            1000);
  EXPECT_EQ(
      MetricValue(text, "twinserve_variant_ready{model=\"m\",variant=\"alt\"}"),
      1);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_policy_changes_total{action=\"set\","
                        "model=\"m\"}"),
            1);
  EXPECT_GT(MetricValue(text, "process_resident_memory_bytes"), 10e6);
  EXPECT_GE(MetricValue(text, "process_open_fds"), 3);
  EXPECT_GT(MetricValue(text, "process_cpu_seconds_total"), 0);
  EXPECT_EQ(MetricValue(text, "twinserve_build_info{version="), 1);
}

TEST(MetricsTest, ShadowRunsOffThePathAndFeedsDriftMetrics) {
  ServerProcess server(NewTempDir("store"));
  TwinClient client(server.address());
  ASSERT_TRUE(::twinserve::testing::RegisterAddSubWithAlt(client).ok());
  {
    grpc::ClientContext ctx;
    v1::SetTrafficPolicyRequest req;
    req.set_model("m");
    req.mutable_policy()->set_kind("shadow");
    req.mutable_policy()->set_candidate("alt");
    v1::TrafficPolicy out;
    ASSERT_TRUE(client.management()->SetTrafficPolicy(&ctx, req, &out).ok());
    EXPECT_EQ(out.shadow_fraction(), 1.0);
  }
  std::vector<float> v = {1, 5, 2, 3, 4, 0, 9, 1};
  HostTensor a =
      HostTensor::Owned("a", DataType::kFp32, {2, 4},
                        std::string(reinterpret_cast<char*>(v.data()), 32));
  HostTensor b = a;
  b.name = "b";
  for (int i = 0; i < 20; ++i) {
    auto out = client.Infer("m", {a, b});
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->version, "fp32") << "the baseline answers under shadow";
  }
  // A pinned request is never shadowed.
  ASSERT_TRUE(client.Infer("m", {a, b}, "fp32").ok());
  std::string text;
  for (int i = 0; i < 50; ++i) {  // shadow runs finish after the answers
    text = Scrape(server.metrics_address());
    if (MetricValue(text,
                    "twinserve_shadow_runs_total{model=\"m\","
                    "variant=\"alt\"}") == 20) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(MetricValue(text,
                        "twinserve_shadow_runs_total{model=\"m\","
                        "variant=\"alt\"}"),
            20);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_drift_top1_agreements_total{model=\"m\","
                        "variant=\"alt\"}"),
            40);  // 2 rows per request
  EXPECT_EQ(MetricValue(text,
                        "twinserve_drift_top1_disagreements_total{model="
                        "\"m\",variant=\"alt\"}"),
            0);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_drift_cosine_similarity_count{model=\"m\","
                        "variant=\"alt\"}"),
            20);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_drift_max_abs_error_sum{model=\"m\","
                        "variant=\"alt\"}"),
            0);
  EXPECT_EQ(MetricValue(text,
                        "twinserve_requests_total{code=\"OK\",model=\"m\","
                        "variant=\"alt\"}"),
            0)
      << "shadow runs are not counted as served requests";
}

// Series names and labels of a scrape (values dropped).
std::set<std::string> Series(const std::string& text) {
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    out.insert(std::string(line.substr(0, line.rfind(' '))));
  }
  return out;
}

// Client text never becomes a label value: 10,000 requests naming random
// models and versions add no series.
TEST(MetricsTest, RandomNamesAddNoSeries) {
  ServerProcess server(NewTempDir("store"));
  TwinClient client(server.address());
  ASSERT_TRUE(::twinserve::testing::RegisterAddSubWithAlt(client).ok());
  HostTensor a =
      HostTensor::Owned("a", DataType::kFp32, {1, 4}, std::string(16, '\0'));
  HostTensor b = a;
  b.name = "b";
  std::mt19937 rng(11);
  auto random_name = [&rng] {
    return absl::StrCat("n", rng(), "\xc3\xa9\"}\n");
  };
  auto calls = [&](int n) {
    for (int i = 0; i < n; ++i) {
      switch (i % 5) {
        case 0:
          EXPECT_FALSE(client.Infer(random_name(), {a, b}).ok());
          break;
        case 1:
          EXPECT_FALSE(client.Infer("m", {a, b}, random_name()).ok());
          break;
        case 2:
          EXPECT_FALSE(client.GetModelStats(random_name()).ok());
          break;
        case 3: {
          grpc::ClientContext ctx;
          inference::ModelReadyRequest req;
          req.set_name(random_name());
          req.set_version(random_name());
          inference::ModelReadyResponse resp;
          client.oip()->ModelReady(&ctx, req, &resp);
          break;
        }
        case 4:
          EXPECT_FALSE(client.GetPolicy(random_name()).ok());
          break;
      }
    }
  };
  calls(10);  // the first failure of each kind may add its fixed series
  const std::set<std::string> before = Series(Scrape(server.metrics_address()));
  calls(10000);
  const std::set<std::string> after = Series(Scrape(server.metrics_address()));
  std::vector<std::string> added;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(added));
  EXPECT_TRUE(added.empty())
      << added.size() << " new series, e.g. " << added.front();
  EXPECT_EQ(after.size(), before.size());
}

}  // namespace
}  // namespace twinserve
