#include "proto/grpc_status_util.h"

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(GrpcStatusUtilTest, EveryCodeAndMessageRoundTrips) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status in(static_cast<absl::StatusCode>(code),
                          code == 0 ? "" : "what went wrong");
    const grpc::Status wire = ToGrpcStatus(in);
    EXPECT_EQ(static_cast<int>(wire.error_code()), code);
    EXPECT_EQ(FromGrpcStatus(wire), in);
  }
}

}  // namespace
}  // namespace twinserve
