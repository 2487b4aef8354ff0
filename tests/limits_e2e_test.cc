// Limits a client cannot push the server past, each a flag answered with
// RESOURCE_EXHAUSTED naming it: models, variants, calibration sets, the
// memory of calibration uploads in progress, requests in flight on one
// ModelStreamInfer stream, gRPC's memory quota. (Input bytes in flight:
// engine_test; concurrent jobs: jobs_test.)

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::AddSubOptions;
using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

void ExpectLimit(const absl::Status& st, const std::string& flag) {
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr(flag));
}

TEST(LimitsE2eTest, ModelsVariantsAndCalibrationSets) {
  ServerProcess server(
      NewTempDir("store"),
      {"--max_models=1", "--max_variants=2", "--max_calibration_sets=1"});
  TwinClient client(server.address());
  const std::string add_sub = ReadFileOrDie(FixturePath("add_sub.pt"));
  ASSERT_TRUE(client.Register(AddSubOptions("m"), add_sub).ok());
  ExpectLimit(client.Register(AddSubOptions("other"), add_sub).status(),
              "--max_models=1");
  RegisterOptions again = AddSubOptions("m");
  again.replace = true;  // a new generation of a model already held: fine
  EXPECT_TRUE(client.Register(again, add_sub).ok());

  RegisterOptions alt;
  alt.name = "m";
  alt.variant = "alt";
  ASSERT_TRUE(client.Register(alt, add_sub).ok());
  EXPECT_TRUE(client.Register(alt, add_sub).ok());  // the same name again
  alt.variant = "alt2";
  ExpectLimit(client.Register(alt, add_sub).status(), "--max_variants=2");

  HostTensor a =
      HostTensor::Owned("a", DataType::kFp32, {2, 4}, std::string(32, '\0'));
  HostTensor b = a;
  b.name = "b";
  ASSERT_TRUE(client.UploadCalibration("m", "calib", {a, b}, {}, false).ok());
  EXPECT_TRUE(client.UploadCalibration("m", "calib", {a, b}, {}, true).ok());
  ExpectLimit(client.UploadCalibration("m", "more", {a, b}, {}, false).status(),
              "--max_calibration_sets=1");
  auto models = client.List();
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->size(), 1u);
}

TEST(LimitsE2eTest, CalibrationUploadsShareAMemoryBudget) {
  ServerProcess server(NewTempDir("store"),
                       {"--max_calibration_memory_bytes=4096"});
  TwinClient client(server.address());
  ASSERT_TRUE(client
                  .Register(AddSubOptions("m"),
                            ReadFileOrDie(FixturePath("add_sub.pt")))
                  .ok());
  // 200 samples of 2 x 16 bytes: 6400 bytes held before the set is stored.
  HostTensor a = HostTensor::Owned("a", DataType::kFp32, {200, 4},
                                   std::string(200 * 16, '\0'));
  HostTensor b = a;
  b.name = "b";
  ExpectLimit(
      client.UploadCalibration("m", "calib", {a, b}, {}, false, 50).status(),
      "--max_calibration_memory_bytes=4096");
  // What was held is given back: a smaller upload fits afterwards.
  HostTensor small_a = HostTensor::Owned("a", DataType::kFp32, {50, 4},
                                         std::string(50 * 16, '\0'));
  HostTensor small_b = small_a;
  small_b.name = "b";
  EXPECT_TRUE(
      client.UploadCalibration("m", "calib", {small_a, small_b}, {}, false, 50)
          .ok());
}

// Past the cap, a stream's requests are answered at once with
// RESOURCE_EXHAUSTED; every request gets exactly one answer.
TEST(LimitsE2eTest, RequestsInFlightPerStreamAreCapped) {
  ServerProcess server(NewTempDir("store"), {"--max_stream_in_flight=2"});
  TwinClient client(server.address());
  ASSERT_TRUE(client
                  .Register(FashionOptions("fashion"),
                            ReadFileOrDie(FixturePath("fashion_cnn.pt")))
                  .ok());
  inference::ModelInferRequest req;
  req.set_model_name("fashion");
  auto* in = req.add_inputs();
  in->set_name("image");
  in->set_datatype("FP32");
  for (int d : {8, 1, 28, 28}) in->add_shape(d);
  req.add_raw_input_contents(std::string(8 * 28 * 28 * 4, '\0'));
  grpc::ClientContext ctx;
  auto stream = client.oip()->ModelStreamInfer(&ctx);
  constexpr int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) {
    req.set_id(absl::StrCat(i));
    ASSERT_TRUE(stream->Write(req));
  }
  stream->WritesDone();
  int ok = 0, refused = 0, other = 0;
  inference::ModelStreamInferResponse resp;
  while (stream->Read(&resp)) {
    if (resp.error_message().empty()) {
      ++ok;
    } else if (absl::StrContains(resp.error_message(),
                                 "--max_stream_in_flight=2")) {
      ++refused;
    } else {
      ++other;
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ok + refused, kRequests);
  EXPECT_EQ(other, 0);
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
}

// gRPC's resource quota bounds the transport's buffers over all
// connections: requests far larger than it, sent at once, are refused by
// gRPC (it names no flag of ours: the status is its own) and the server
// neither grows past it nor dies; small requests are served after.
// Four concurrent 12.8 MB requests; the statuses they get.
std::vector<absl::Status> FourLargeRequests(const std::string& address) {
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      TwinClient c(address);
      results[i] =
          c.Infer("fashion", {testing::RandomImages(4096, i)}).status();
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

TEST(LimitsE2eTest, GrpcMemoryQuotaRefusesWhatDoesNotFit) {
  const std::string model = ReadFileOrDie(FixturePath("fashion_cnn.pt"));
  {
    // Control: with the default quota all four are served.
    ServerProcess server(NewTempDir("store"));
    TwinClient client(server.address());
    ASSERT_TRUE(client.Register(FashionOptions("fashion"), model).ok());
    for (const absl::Status& st : FourLargeRequests(server.address())) {
      EXPECT_TRUE(st.ok()) << st;
    }
  }
  ServerProcess server(NewTempDir("store"),
                       {"--max_grpc_memory_bytes=4194304"});
  TwinClient client(server.address());
  ASSERT_TRUE(client.Register(FashionOptions("fashion"), model).ok());
  int refused = 0;
  for (const absl::Status& st : FourLargeRequests(server.address())) {
    if (st.ok()) continue;
    ++refused;
    // gRPC refuses a stream that does not fit with RST_STREAM
    // (RESOURCE_EXHAUSTED), or, when the quota is short for the whole
    // connection, with a GOAWAY (UNAVAILABLE, which clients retry): both
    // are its transport's choice under pressure, and both leave the server
    // serving (checked below).
    EXPECT_TRUE(st.code() == absl::StatusCode::kResourceExhausted ||
                (st.code() == absl::StatusCode::kUnavailable &&
                 absl::StrContains(st.message(), "GOAWAY")))
        << st;
    std::printf("refused under the quota: %s\n", st.ToString().c_str());
  }
  EXPECT_GT(refused, 0) << "12.8 MB requests passed a 4 MiB quota";
  EXPECT_TRUE(server.running());
  EXPECT_TRUE(client.Infer("fashion", {testing::RandomImages(1, 9)}).ok());
}

}  // namespace
}  // namespace twinserve
