// The fixture of the end-to-end tests: a real twinserve on a loopback port
// with a fresh store, and a client for it.
#ifndef TWINSERVE_TESTS_E2E_FIXTURE_H_
#define TWINSERVE_TESTS_E2E_FIXTURE_H_

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "client/twin_client.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace testing {

inline HostTensor Floats(const std::string& name, Shape shape,
                         std::vector<float> values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return HostTensor::Owned(name, DataType::kFp32, std::move(shape),
                           std::move(bytes));
}

inline std::vector<float> AsFloats(const HostTensor& t) {
  std::vector<float> out(t.byte_size / sizeof(float));
  std::memcpy(out.data(), t.data, t.byte_size);
  return out;
}

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewTempDir("store");
    server_ = std::make_unique<ServerProcess>(store_);
    client_ = std::make_unique<TwinClient>(server_->address());
  }

  void RegisterAddSub(const std::string& name = "addsub") {
    auto info = client_->Register(AddSubOptions(name),
                                  ReadFileOrDie(FixturePath("add_sub.pt")));
    ASSERT_TRUE(info.ok()) << info.status();
  }

  std::string store_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TwinClient> client_;
};

}  // namespace testing
}  // namespace twinserve

#endif  // TWINSERVE_TESTS_E2E_FIXTURE_H_
