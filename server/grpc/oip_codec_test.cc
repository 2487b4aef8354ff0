#include "server/grpc/oip_codec.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

TEST(OipCodecTest, RawContentsAreBorrowedNotCopied) {
  inference::ModelInferRequest req;
  req.set_model_name("m");
  req.set_model_version("fp32");
  auto* in = req.add_inputs();
  in->set_name("x");
  in->set_datatype("FP32");
  in->add_shape(2);
  req.add_raw_input_contents(std::string(8, '\0'));
  req.add_outputs()->set_name("y");
  auto d = DecodeInferRequest(req);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->model, "m");
  EXPECT_EQ(d->version, "fp32");
  EXPECT_EQ(d->inputs[0].data, req.raw_input_contents(0).data());
  EXPECT_EQ(d->requested_outputs, (std::vector<std::string>{"y"}));
}

TEST(OipCodecTest, TypedContentsArePackedAndRangeChecked) {
  inference::ModelInferRequest req;
  auto* in = req.add_inputs();
  in->set_name("x");
  in->set_datatype("INT16");
  in->add_shape(2);
  in->mutable_contents()->add_int_contents(-2);
  in->mutable_contents()->add_int_contents(300);
  auto d = DecodeInferRequest(req);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->inputs[0].byte_size, 4u);
  EXPECT_EQ(reinterpret_cast<const int16_t*>(d->inputs[0].data)[1], 300);

  in->mutable_contents()->set_int_contents(1, 70000);
  EXPECT_THAT(DecodeInferRequest(req).status().message(),
              HasSubstr("out of range"));
  in->mutable_contents()->add_int_contents(1);
  EXPECT_THAT(DecodeInferRequest(req).status().message(),
              HasSubstr("needs 2 INT16 elements, contents hold 3"));
}

TEST(OipCodecTest, TypedContentsOfAnotherDatatypeAreNamed) {
  inference::ModelInferRequest req;
  auto* in = req.add_inputs();
  in->set_name("x");
  in->set_datatype("FP64");
  in->add_shape(2);
  in->mutable_contents()->add_fp32_contents(1);
  in->mutable_contents()->add_fp32_contents(2);
  EXPECT_THAT(DecodeInferRequest(req).status().message(),
              HasSubstr("needs 2 FP64 elements, contents hold 0 (the request "
                        "filled fp32_contents, which does not carry FP64)"));
}

TEST(OipCodecTest, MalformedRequests) {
  inference::ModelInferRequest req;
  auto* in = req.add_inputs();
  in->set_name("x");
  in->set_datatype("FP32");
  in->add_shape(1);
  req.add_raw_input_contents(std::string(4, '\0'));
  req.add_raw_input_contents(std::string(4, '\0'));
  EXPECT_THAT(DecodeInferRequest(req).status().message(),
              HasSubstr("2 entries for 1 inputs"));
  req.mutable_raw_input_contents()->RemoveLast();
  in->mutable_contents()->add_fp32_contents(1);
  EXPECT_THAT(DecodeInferRequest(req).status().message(),
              HasSubstr("use one or the other"));
  in->set_datatype("UINT64");
  EXPECT_EQ(DecodeInferRequest(req).status().code(),
            absl::StatusCode::kInvalidArgument);
  in->set_datatype("FP32");
  in->set_shape(0, -3);
  EXPECT_THAT(DecodeInferRequest(req).status().message(),
              HasSubstr("negative dim"));
}

TEST(OipCodecTest, EncodeNamesTheVariant) {
  inference::ModelInferRequest req;
  req.set_id("abc");
  InferResult r;
  r.model = "m";
  r.variant = "fp32";
  r.outputs.push_back(
      HostTensor::Owned("y", DataType::kInt64, {1}, std::string(8, '\x01')));
  inference::ModelInferResponse resp;
  ASSERT_TRUE(EncodeInferResponse(req, r, &resp).ok());
  EXPECT_EQ(resp.id(), "abc");
  EXPECT_EQ(resp.model_version(), "fp32");
  EXPECT_EQ(resp.parameters().at(kVariantParameter).string_param(), "fp32");
  EXPECT_EQ(resp.outputs(0).datatype(), "INT64");
  EXPECT_EQ(resp.raw_output_contents(0), std::string(8, '\x01'));
}

void ShmParams(
    const std::string& region, int64_t offset, int64_t size,
    google::protobuf::Map<std::string, inference::InferParameter>* p) {
  (*p)[kShmRegionParameter].set_string_param(region);
  (*p)[kShmOffsetParameter].set_int64_param(offset);
  (*p)[kShmByteSizeParameter].set_int64_param(size);
}

TEST(OipCodecTest, SharedMemoryInputsAreViewsAndOutputsAreWrittenThere) {
  const std::string key = "/twinserve_codec_" + std::to_string(getpid());
  int fd = shm_open(key.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64), 0);
  close(fd);
  SharedMemoryManager shm;
  ASSERT_TRUE(shm.Register({"anonymous", "r", key, 0, 64}).ok());
  const SharedMemoryScope scope(&shm, "anonymous");

  inference::ModelInferRequest req;
  auto* a = req.add_inputs();  // in shared memory
  a->set_name("a");
  a->set_datatype("FP32");
  a->add_shape(2);
  ShmParams("r", 8, 8, a->mutable_parameters());
  auto* b = req.add_inputs();  // raw: takes raw entry 0
  b->set_name("b");
  b->set_datatype("FP32");
  b->add_shape(1);
  req.add_raw_input_contents(std::string(4, '\0'));
  auto* y = req.add_outputs();
  y->set_name("y");
  ShmParams("r", 32, 16, y->mutable_parameters());

  std::shared_ptr<SharedMemoryUse> use;
  auto d = DecodeInferRequest(req, &scope, &use);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_NE(use, nullptr);
  auto view = shm.View("anonymous", "r", 0, 64);
  EXPECT_EQ(d->inputs[0].data, view->data + 8);
  EXPECT_EQ(d->inputs[1].data, req.raw_input_contents(0).data());
  EXPECT_NE(d->inputs[0].owner, nullptr);  // pins the region
  EXPECT_EQ(d->inputs[1].owner, nullptr);  // borrows the request

  const float values[2] = {1.5f, -2.0f};
  InferResult result;
  result.model = "m";
  result.variant = "fp32";
  result.outputs.push_back(
      HostTensor::Owned("y", DataType::kFp32, {2},
                        std::string(reinterpret_cast<const char*>(values), 8)));
  inference::ModelInferResponse resp;
  ASSERT_TRUE(EncodeInferResponse(req, result, &resp, use.get()).ok());
  EXPECT_EQ(std::memcmp(view->data + 32, values, 8), 0);
  EXPECT_EQ(resp.raw_output_contents_size(), 1);
  EXPECT_TRUE(resp.raw_output_contents(0).empty());
  EXPECT_EQ(
      resp.outputs(0).parameters().at(kShmByteSizeParameter).int64_param(), 8);

  // An output larger than its range is refused, naming both sizes.
  ShmParams("r", 32, 4, y->mutable_parameters());
  use.reset();
  ASSERT_TRUE(DecodeInferRequest(req, &scope, &use).ok());
  EXPECT_THAT(
      EncodeInferResponse(req, result, &resp, use.get()).message(),
      HasSubstr("output 'y' needs 8 bytes; its shared memory range holds 4"));

  // The same output asked for twice, once in shared memory (found by the
  // fuzzer: the response then looked up the second request's parameters).
  auto* again = req.add_outputs();
  again->set_name("y");
  auto dup = DecodeInferRequest(req, &scope, &use);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dup.status().message(),
              HasSubstr("output 'y' is requested twice"));
  req.mutable_outputs()->RemoveLast();

  // Without a manager (calibration uploads), no byte size, unknown region.
  EXPECT_THAT(DecodeInferRequest(req).status().message(),
              HasSubstr("shared memory cannot be used here"));
  a->mutable_parameters()->erase(kShmByteSizeParameter);
  EXPECT_THAT(
      DecodeInferRequest(req, &scope, &use).status().message(),
      HasSubstr(
          "input 'a': shared_memory_region needs shared_memory_byte_size"));
  ShmParams("nope", 0, 8, a->mutable_parameters());
  EXPECT_EQ(DecodeInferRequest(req, &scope, &use).status().code(),
            absl::StatusCode::kNotFound);
  shm_unlink(key.c_str());
}

}  // namespace
}  // namespace twinserve
