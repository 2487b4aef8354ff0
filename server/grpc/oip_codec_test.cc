#include "server/grpc/oip_codec.h"

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
  EncodeInferResponse(req, r, &resp);
  EXPECT_EQ(resp.id(), "abc");
  EXPECT_EQ(resp.model_version(), "fp32");
  EXPECT_EQ(resp.parameters().at(kVariantParameter).string_param(), "fp32");
  EXPECT_EQ(resp.outputs(0).datatype(), "INT64");
  EXPECT_EQ(resp.raw_output_contents(0), std::string(8, '\x01'));
}

}  // namespace
}  // namespace twinserve
