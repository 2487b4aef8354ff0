#include "server/cluster/etcd_client.h"

#include <stdlib.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/cluster/test_util/etcd_process.h"

namespace twinserve {
namespace {

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<testing::EtcdProcess>();
    EtcdOptions o;
    o.endpoints = etcd_->endpoint();
    o.timeout = absl::Seconds(1);
    client_ = *EtcdClient::Create(o);
  }
  std::unique_ptr<testing::EtcdProcess> etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST(PrefixRangeEnd, IncrementsTheLastByte) {
  EXPECT_EQ(PrefixRangeEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
}

TEST(EtcdClientCreate, RefusesMalformedEndpoints) {
  EXPECT_EQ(EtcdClient::Create({"", absl::Seconds(1)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      EtcdClient::Create({"http://h:1", absl::Seconds(1)}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdClientTest, ConditionalWritesRefuseStaleRevisions) {
  auto r1 = client_->PutIf("/t/a", "one", 0);
  ASSERT_TRUE(r1.ok()) << r1.status();
  // Creating again is refused: the key exists.
  EXPECT_EQ(client_->PutIf("/t/a", "x", 0).status().code(),
            absl::StatusCode::kAborted);
  auto r2 = client_->PutIf("/t/a", "two", *r1);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_GT(*r2, *r1);
  EXPECT_EQ(client_->PutIf("/t/a", "stale", *r1).status().code(),
            absl::StatusCode::kAborted);
  auto got = client_->Get("/t/a");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "two");
  EXPECT_EQ((*got)->mod_revision, *r2);
  EXPECT_EQ(client_->DeleteIf("/t/a", *r1).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(client_->DeleteIf("/t/a", *r2).ok());
  EXPECT_FALSE(client_->Get("/t/a")->has_value());
}

TEST_F(EtcdClientTest, ConcurrentIncrementsLoseNothing) {
  // Read-modify-write loops from four threads, as replicas would.
  constexpr int kThreads = 4, kEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        while (true) {
          auto got = client_->Get("/t/counter");
          ASSERT_TRUE(got.ok());
          int64_t rev = got->has_value() ? (*got)->mod_revision : 0;
          int n = got->has_value() ? std::stoi((*got)->value) : 0;
          auto put = client_->PutIf("/t/counter", std::to_string(n + 1), rev);
          if (put.ok()) break;
          ASSERT_EQ(put.status().code(), absl::StatusCode::kAborted);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ((*client_->Get("/t/counter"))->value,
            std::to_string(kThreads * kEach));
}

TEST_F(EtcdClientTest, ListReturnsThePrefixOnly) {
  ASSERT_TRUE(client_->Put("/p/b", "2").ok());
  ASSERT_TRUE(client_->Put("/p/a", "1").ok());
  ASSERT_TRUE(client_->Put("/q/a", "x").ok());
  auto snap = client_->List("/p/");
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->kvs.size(), 2u);
  EXPECT_EQ(snap->kvs[0].key, "/p/a");
  EXPECT_EQ(snap->kvs[1].key, "/p/b");
  EXPECT_GE(snap->revision, snap->kvs[1].mod_revision);
}

TEST_F(EtcdClientTest, LeasedKeysVanishWhenTheLeaseExpires) {
  auto lease = client_->GrantLease(absl::Seconds(1));
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(client_->Put("/l/k", "v", *lease).ok());
  // Kept alive for 2 s: still there.
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(client_->KeepAlive(*lease).ok());
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_TRUE(client_->Get("/l/k")->has_value());
  // Left alone: gone within a few seconds (etcd's minimum TTL applies).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    gone = !client_->Get("/l/k")->has_value();
  }
  EXPECT_TRUE(gone);
  EXPECT_EQ(client_->KeepAlive(*lease).code(), absl::StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, WatchSeesEveryChangeAcrossAnEtcdRestart) {
  absl::Mutex mu;
  std::vector<EtcdEvent> seen;
  auto start = client_->List("/w/");
  ASSERT_TRUE(start.ok());
  auto watch = client_->Watch(
      "/w/", start->revision,
      [&](const std::vector<EtcdEvent>& events) {
        absl::MutexLock lock(&mu);
        seen.insert(seen.end(), events.begin(), events.end());
      },
      [] { return int64_t{0}; });
  auto wait_for = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&] { return seen.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
  };
  ASSERT_TRUE(client_->Put("/w/a", "1").ok());
  ASSERT_TRUE(client_->Put("/x/ignored", "1").ok());
  ASSERT_TRUE(wait_for(1));
  // Restart etcd (same data): the watch resumes after the last event it
  // saw, so writes made while it was away arrive once each.
  etcd_->Kill9();
  etcd_->Start();
  ASSERT_TRUE(client_->Put("/w/b", "2").ok());
  auto b = client_->Get("/w/b");
  ASSERT_TRUE(client_->DeleteIf("/w/b", (*b)->mod_revision).ok());
  ASSERT_TRUE(wait_for(3));
  absl::SleepFor(absl::Milliseconds(300));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].kv.key, "/w/a");
  EXPECT_FALSE(seen[0].deleted);
  EXPECT_EQ(seen[1].kv.key, "/w/b");
  EXPECT_EQ(seen[2].kv.key, "/w/b");
  EXPECT_TRUE(seen[2].deleted);
  EXPECT_LT(seen[0].kv.mod_revision, seen[1].kv.mod_revision);
}

TEST_F(EtcdClientTest, CallsFailUnavailableWhileEtcdIsDown) {
  etcd_->Pause();
  auto got = client_->Get("/t/a");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable)
      << got.status();
  EXPECT_EQ(client_->PutIf("/t/a", "v", 0).status().code(),
            absl::StatusCode::kUnavailable);
  etcd_->Resume();
  EXPECT_TRUE(client_->PutIf("/t/a", "v", 0).ok());
}

// Certificates made with openssl for one test: a CA, etcd's certificate
// for 127.0.0.1, a client signed by the CA and one signed by another CA.
std::string MakeCertificates() {
  std::string dir = std::string(getenv("TEST_TMPDIR")) + "/certsXXXXXX";
  dir = mkdtemp(dir.data());
  const std::string script = absl::StrCat(
      "set -e; cd ", dir,
      "; ca() { openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
      "-subj /CN=$1 -keyout $1.key -out $1.pem 2>/dev/null; }; "
      "leaf() { openssl req -newkey rsa:2048 -nodes -subj /CN=$1 "
      "-keyout $1.key -out $1.csr 2>/dev/null; echo \"$3\" > $1.ext; "
      "openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key "
      "-CAcreateserial -days 2 -extfile $1.ext -out $1.pem 2>/dev/null; }; "
      "ca ca; ca rogue; leaf server ca subjectAltName=IP:127.0.0.1; "
      "leaf client ca extendedKeyUsage=clientAuth; "
      "leaf stranger rogue extendedKeyUsage=clientAuth");
  EXPECT_EQ(std::system(script.c_str()), 0);
  return dir;
}

TEST(EtcdTlsTest, MutualTlsServesOnlyTrustedClients) {
  const std::string c = MakeCertificates();
  testing::EtcdProcess etcd(
      "", {c + "/ca.pem", c + "/server.pem", c + "/server.key",
           c + "/client.pem", c + "/client.key"});
  EtcdOptions o;
  o.endpoints = etcd.endpoint();
  o.timeout = absl::Seconds(1);
  o.ca_file = c + "/ca.pem";
  o.cert_file = c + "/client.pem";
  o.key_file = c + "/client.key";
  auto trusted = EtcdClient::Create(o);
  ASSERT_TRUE(trusted.ok()) << trusted.status();
  ASSERT_TRUE((*trusted)->PutIf("/tls/k", "v", 0).ok());
  EXPECT_EQ((*(*trusted)->Get("/tls/k"))->value, "v");
  // No client certificate, or one from another CA: refused.
  o.cert_file = o.key_file = "";
  auto anonymous = EtcdClient::Create(o);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ((*anonymous)->Get("/tls/k").status().code(),
            absl::StatusCode::kUnavailable);
  o.cert_file = c + "/stranger.pem";
  o.key_file = c + "/stranger.key";
  EXPECT_EQ((*EtcdClient::Create(o))->Get("/tls/k").status().code(),
            absl::StatusCode::kUnavailable);
  // Plain text to a TLS etcd fails too.
  EXPECT_EQ((*EtcdClient::Create({etcd.endpoint(), absl::Seconds(1)}))
                ->Get("/tls/k")
                .status()
                .code(),
            absl::StatusCode::kUnavailable);
  // Half a key pair, or an unreadable file, is refused at once.
  o.key_file = "";
  EXPECT_EQ(EtcdClient::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.ca_file = c + "/missing.pem";
  o.cert_file = o.key_file = "";
  EXPECT_EQ(EtcdClient::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace twinserve
