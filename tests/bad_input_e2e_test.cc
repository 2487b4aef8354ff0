// End-to-end, bad input: the real twinserve binary refuses what it cannot
// serve with a clear status naming the problem, stores nothing, and keeps
// serving.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "tests/e2e_fixture.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::AddSubOptions;
using ::twinserve::testing::AsFloats;
using ::twinserve::testing::E2eTest;
using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::Floats;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

TEST_F(E2eTest, UnknownModelOrVersionIsNotFound) {
  RegisterAddSub();
  auto out = client_->Infer("ghost", {Floats("a", {1, 4}, {1, 2, 3, 4})});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(out.status().message(), HasSubstr("'ghost'"));
  out = client_->Infer("addsub", {Floats("a", {1, 4}, {1, 2, 3, 4})}, "int8");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(out.status().message(), HasSubstr("no version 'int8'"));
  grpc::ClientContext ctx;
  inference::ModelMetadataRequest req;
  req.set_name("ghost");
  inference::ModelMetadataResponse md;
  EXPECT_EQ(client_->oip()->ModelMetadata(&ctx, req, &md).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(E2eTest, WrongInputsAreInvalidArgumentNamingTheInput) {
  RegisterAddSub();
  const HostTensor b = Floats("b", {1, 4}, {1, 1, 1, 1});
  struct Case {
    std::vector<HostTensor> inputs;
    std::vector<std::string> want;
  };
  HostTensor wrong_dtype =
      HostTensor::Owned("a", DataType::kFp64, {1, 4}, std::string(32, '\0'));
  HostTensor short_bytes =
      HostTensor::Owned("a", DataType::kFp32, {1, 4}, std::string(12, '\0'));
  std::vector<Case> cases = {
      {{Floats("x", {1, 4}, {1, 2, 3, 4}), b}, {"unknown input 'x'"}},
      {{b}, {"missing input 'a'"}},
      {{wrong_dtype, b}, {"input 'a'", "expected datatype FP32", "got FP64"}},
      {{Floats("a", {1, 5}, {1, 2, 3, 4, 5}), b},
       {"input 'a'", "expected shape [-1, 4]", "got [1, 5]"}},
      {{Floats("a", {4}, {1, 2, 3, 4}), b}, {"input 'a'", "got [4]"}},
      {{short_bytes, b}, {"input 'a'", "needs 16 bytes, got 12"}},
  };
  for (const Case& c : cases) {
    auto out = client_->Infer("addsub", c.inputs);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument)
        << out.status();
    for (const auto& w : c.want) {
      EXPECT_THAT(out.status().message(), HasSubstr(w));
    }
  }
  // Unknown requested output, unknown datatype string.
  auto out = client_->Infer("addsub", {Floats("a", {1, 4}, {1, 2, 3, 4}), b},
                            "", {"product"});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("unknown output 'product'"));
  auto req = MakeInferRequest("addsub", {Floats("a", {1, 4}, {1, 2, 3, 4}), b},
                              "", {}, "");
  req.mutable_inputs(0)->set_datatype("FLOAT");
  inference::ModelInferResponse resp;
  grpc::Status st = client_->RawInfer(req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("unknown datatype 'FLOAT'"));
  // The server still serves.
  EXPECT_TRUE(
      client_->Infer("addsub", {Floats("a", {1, 4}, {1, 2, 3, 4}), b}).ok());
}

TEST_F(E2eTest, NonTorchScriptAndTruncatedUploadsStoreNothing) {
  auto out = client_->Register(AddSubOptions("junk"),
                               ReadFileOrDie(FixturePath("not_a_model.pt")));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("not a loadable TorchScript"));

  // A stream that carries fewer bytes than its header announced.
  const std::string model = ReadFileOrDie(FixturePath("add_sub.pt"));
  grpc::ClientContext ctx;
  v1::RegisterModelResponse resp;
  auto writer = client_->management()->RegisterModel(&ctx, &resp);
  v1::RegisterModelRequest msg;
  auto* header = msg.mutable_header();
  header->set_name("truncated");
  header->set_total_bytes(model.size());
  auto* in = header->add_inputs();
  in->set_name("a");
  in->set_datatype("FP32");
  in->add_shape(-1);
  in->add_shape(4);
  *header->add_inputs() = *in;
  header->mutable_inputs(1)->set_name("b");
  auto* o = header->add_outputs();
  o->set_name("sum");
  o->set_datatype("FP32");
  o->add_shape(-1);
  o->add_shape(4);
  *header->add_outputs() = *o;
  header->mutable_outputs(1)->set_name("diff");
  ASSERT_TRUE(writer->Write(msg));
  v1::RegisterModelRequest chunk;
  chunk.set_chunk(model.substr(0, model.size() / 2));
  ASSERT_TRUE(writer->Write(chunk));
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("truncated upload"));

  // A truncated file with no announced size fails to load instead.
  RegisterOptions opts = AddSubOptions("truncated2");
  auto cut = client_->Register(opts, model.substr(0, model.size() / 2));
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_TRUE(client_->List()->empty());
  EXPECT_TRUE(ListDir(store_ + "/models")->empty());
  EXPECT_TRUE(ListDir(store_ + "/staging")->empty());
}

TEST_F(E2eTest, DeclaredSpecsThatDoNotFitTheModelAreRefused) {
  RegisterOptions o = AddSubOptions("badspec");
  o.outputs.pop_back();  // the model returns two tensors
  auto out = client_->Register(o, ReadFileOrDie(FixturePath("add_sub.pt")));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("declares 1 outputs"));
  o = AddSubOptions("badspec");
  o.outputs[0].shape = {-1, 5};
  out = client_->Register(o, ReadFileOrDie(FixturePath("add_sub.pt")));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("output 'sum'"));
  o = AddSubOptions("badspec");
  o.inputs.pop_back();
  out = client_->Register(o, ReadFileOrDie(FixturePath("add_sub.pt")));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("forward takes 2 inputs"));
  o = AddSubOptions("badspec");
  o.inputs[0].dtype = DataType::kInvalid;
  out = client_->Register(o, ReadFileOrDie(FixturePath("add_sub.pt")));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(client_->List()->empty());
}

TEST_F(E2eTest, ForwardThatThrowsIsInternalAndServerKeepsServing) {
  RegisterOptions o;
  o.name = "throws";
  o.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  o.outputs = {{"y", DataType::kFp32, {-1, 4}}};
  ASSERT_TRUE(
      client_->Register(o, ReadFileOrDie(FixturePath("throws.pt"))).ok());
  auto out = client_->Infer("throws", {Floats("x", {1, 4}, {1, 2, 3, 1000})});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(out.status().message(),
              HasSubstr("value too large for this model"));
  EXPECT_EQ(out.status().message().find('\n'), std::string::npos)
      << "only the first line of LibTorch's message";
  out = client_->Infer("throws", {Floats("x", {1, 4}, {1, 2, 3, 4})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(AsFloats(out->outputs[0]), (std::vector<float>{2, 4, 6, 8}));
}

TEST_F(E2eTest, BadModelNamesAreInvalidArgument) {
  for (const std::string& name :
       {std::string(""), std::string("a/b"), std::string(".."),
        std::string("x..y"), std::string("tab\there"), std::string("nl\n"),
        std::string(".hidden"), std::string(200, 'a')}) {
    auto out = client_->Register(AddSubOptions(name),
                                 ReadFileOrDie(FixturePath("add_sub.pt")));
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument)
        << "name '" << name << "': " << out.status();
  }
  EXPECT_TRUE(client_->List()->empty());
}

TEST(E2eLimits, MessageOverTheLimitIsResourceExhausted) {
  ServerProcess server(NewTempDir("store"), {"--max_message_bytes=1048576"});
  TwinClient client(server.address());
  auto info = client.Register(AddSubOptions("addsub"),
                              ReadFileOrDie(FixturePath("add_sub.pt")));
  ASSERT_TRUE(info.ok()) << info.status();
  const int rows = 128 * 1024;  // 2 MiB per input
  auto out = client.Infer(
      "addsub", {Floats("a", {rows, 4}, std::vector<float>(rows * 4)),
                 Floats("b", {rows, 4}, std::vector<float>(rows * 4))});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted)
      << out.status();
  // Models larger than the message limit still register: they stream.
  RegisterOptions big = FashionOptions("fashion");
  big.chunk_bytes = 64 * 1024;
  EXPECT_TRUE(
      client.Register(big, ReadFileOrDie(FixturePath("fashion_cnn.pt"))).ok());
}

// A model that reads the server's files is refused at registration and
// nothing of it is stored (server/runtime/unsafe_ops.h).
TEST_F(E2eTest, ModelsThatTouchFilesAreRefused) {
  RegisterOptions o;
  o.name = "reads_file";
  o.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  o.outputs = {{"y", DataType::kFp32, {-1, 4}}};
  auto info = client_->Register(o, ReadFileOrDie(FixturePath("reads_file.pt")));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr("aten::from_file"));
  auto models = client_->List();
  ASSERT_TRUE(models.ok());
  for (const auto& m : *models) EXPECT_NE(m.name(), "reads_file");
}

TEST_F(E2eTest, UnimplementedExtensionsSaySo) {
  grpc::ClientContext ctx;
  // System shared memory is served (tests/python_client_test.py); CUDA's
  // is not: there is no GPU.
  inference::CudaSharedMemoryStatusResponse resp;
  grpc::Status st = client_->oip()->CudaSharedMemoryStatus(&ctx, {}, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(st.error_message(), HasSubstr("not supported by twinserve"));
}

TEST(E2eSharedMemoryTest, IsOffByDefault) {
  ServerProcess server(NewTempDir("store"));
  TwinClient client(server.address());
  grpc::ClientContext ctx;
  inference::SystemSharedMemoryRegisterRequest req;
  req.set_name("r");
  req.set_key("/anything");
  req.set_byte_size(8);
  inference::SystemSharedMemoryRegisterResponse resp;
  grpc::Status st = client.oip()->SystemSharedMemoryRegister(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(st.error_message(), HasSubstr("--shared_memory"));
}

TEST(E2eSharedMemoryTest, WhenOnOnlyKeysUnderThePrefixAreMapped) {
  ServerProcess server(NewTempDir("store"), {"--shared_memory"});
  TwinClient client(server.address());
  for (const char* key : {"/dev_shm_of_someone_else", "/../../etc/passwd"}) {
    grpc::ClientContext ctx;
    inference::SystemSharedMemoryRegisterRequest req;
    req.set_name("r");
    req.set_key(key);
    req.set_byte_size(8);
    inference::SystemSharedMemoryRegisterResponse resp;
    grpc::Status st =
        client.oip()->SystemSharedMemoryRegister(&ctx, req, &resp);
    EXPECT_TRUE(st.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                st.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
        << key << ": " << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr(key));
  }
}

}  // namespace
}  // namespace twinserve
