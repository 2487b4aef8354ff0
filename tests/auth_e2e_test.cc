// End to end: who may do what. Bearer tokens and roles on the real binary,
// the history's author as the authenticated principal, the audit log,
// token reload on SIGHUP, and the safe default (no authentication: loopback
// only unless --insecure).
#include <signal.h>

#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/common/tokens.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::AddSubOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

std::string Tokens(const std::string& admin_token) {
  return absl::StrCat(
      "# test tokens\nalice admin sha256:", TokenDigest(admin_token),
      "\nweb infer sha256:", TokenDigest("w3b-infer"), "\n");
}

HostTensor Ones(const std::string& name) {
  std::vector<float> v(4, 1.0f);
  return HostTensor::Owned(name, DataType::kFp32, {1, 4},
                           std::string(reinterpret_cast<char*>(v.data()), 16));
}

TEST(AuthE2eTest, RolesPrincipalsAuditAndReload) {
  const std::string dir = NewTempDir("auth");
  const std::string token_file = dir + "/tokens";
  ASSERT_TRUE(WriteFileAtomically(token_file, Tokens("s3cret-admin")).ok());
  const std::string store = NewTempDir("store");
  ServerProcess server(store, {"--token_file=" + token_file});
  const std::string model = ReadFileOrDie(FixturePath("add_sub.pt"));

  TwinClient anonymous(server.address(), 64 << 20, Connection{""});
  TwinClient web(server.address(), 64 << 20, Connection{"w3b-infer"});
  TwinClient alice(server.address(), 64 << 20, Connection{"s3cret-admin"});
  TwinClient wrong(server.address(), 64 << 20, Connection{"guess"});

  // Liveness stays open for probes; everything else needs a token.
  EXPECT_TRUE(anonymous.ServerLive().ok());
  EXPECT_EQ(anonymous.List().status().code(),
            absl::StatusCode::kUnauthenticated);
  auto r = anonymous.Register(AddSubOptions("m"), model);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(r.status().message(), HasSubstr("bearer token"));
  EXPECT_EQ(wrong.Register(AddSubOptions("m"), model).status().code(),
            absl::StatusCode::kUnauthenticated);

  // infer may infer, not manage.
  r = web.Register(AddSubOptions("m"), model);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(), HasSubstr("'web' has role infer"));
  ASSERT_TRUE(alice.Register(AddSubOptions("m"), model).ok());
  EXPECT_EQ(anonymous.Infer("m", {Ones("a"), Ones("b")}).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(web.Infer("m", {Ones("a"), Ones("b")}).ok());
  v1::SetTrafficPolicyRequest pin;
  pin.set_model("m");
  pin.mutable_policy()->set_kind("pinned");
  pin.mutable_policy()->set_baseline("fp32");
  pin.set_author("mallory");  // free text: not what the history records
  pin.set_reason("pin");
  EXPECT_EQ(web.SetPolicy(pin).status().code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(alice.SetPolicy(pin).ok());
  auto history = alice.PolicyHistory("m");
  ASSERT_TRUE(history.ok());
  ASSERT_FALSE(history->empty());
  EXPECT_EQ(history->back().actor(), "alice");

  // The audit log: who did what, and who was refused.
  const std::string audit = ReadFileOrDie(store + "/audit.log");
  EXPECT_THAT(audit, HasSubstr(R"("action":"RegisterModel")"));
  EXPECT_THAT(audit, HasSubstr(R"("principal":"alice")"));
  EXPECT_THAT(audit, HasSubstr(R"("outcome":"PERMISSION_DENIED")"));
  EXPECT_THAT(audit, HasSubstr(R"("action":"SetTrafficPolicy")"));
  EXPECT_EQ(audit.find("s3cret"), std::string::npos);

  // SIGHUP: a new admin token replaces the old one.
  ASSERT_TRUE(WriteFileAtomically(token_file, Tokens("n3w-admin")).ok());
  ASSERT_EQ(kill(server.pid(), SIGHUP), 0);
  TwinClient renewed(server.address(), 64 << 20, Connection{"n3w-admin"});
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; ++i) {
    reloaded = renewed.List().ok();
    if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(reloaded);
  EXPECT_EQ(alice.List().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(web.Infer("m", {Ones("a"), Ones("b")}).ok());
}

TEST(AuthE2eTest, WithoutAuthenticationOnlyLoopbackUnlessInsecure) {
  const std::string dir = NewTempDir("open");
  const std::string log = dir + "/log";
  const int rc = std::system(
      absl::StrCat("server/twinserve --address=0.0.0.0:0 --store=", dir,
                   "/store --metrics=false > ", log, " 2>&1")
          .c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  EXPECT_THAT(ReadFileOrDie(log),
              HasSubstr("refusing to listen on 0.0.0.0:0 without "
                        "authentication"));

  ServerProcess open(NewTempDir("store"),
                     {"--address=0.0.0.0:0", "--insecure"});
  TwinClient client(open.address());
  EXPECT_TRUE(client.List().ok());
  EXPECT_THAT(ReadFileOrDie(open.log_path()),
              HasSubstr("--insecure: listening on 0.0.0.0:0 without "
                        "authentication"));
}

}  // namespace
}  // namespace twinserve
