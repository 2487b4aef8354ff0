// Two ModelStores sharing one real etcd and one blob folder, as two
// replicas do.
#include "server/cluster/etcd_metadata_store.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/cluster/test_util/etcd_process.h"
#include "server/common/file_util.h"
#include "server/store/model_store.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

// One replica: its own root, the shared blobs, its etcd client.
struct Replica {
  Replica(const std::string& endpoint, const std::string& blobs,
          absl::Duration timeout = absl::Seconds(2)) {
    client = *EtcdClient::Create({endpoint, timeout});
    metadata = std::make_unique<EtcdMetadataStore>(client.get(), "/ts/");
    store = *ModelStore::OpenShared(::twinserve::testing::NewTempDir("root"),
                                    metadata.get(), blobs);
  }
  // Follows the store; counts changes per model.
  void Follow(absl::Duration grace = absl::Hours(1)) {
    store->Scan();
    store->Follow(
        [this](const std::string& name) {
          absl::MutexLock lock(&mu);
          changes[name]++;
        },
        grace);
  }
  // Waits until this replica's copy of `name` has `revision` (0: absent).
  bool WaitFor(const std::string& name, uint64_t revision) {
    for (int i = 0; i < 200; ++i) {
      auto r = store->Get(name);
      uint64_t have = r.ok() ? r->revision : 0;
      if (have == revision) return true;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return false;
  }
  std::unique_ptr<EtcdClient> client;
  std::unique_ptr<EtcdMetadataStore> metadata;
  std::unique_ptr<ModelStore> store;
  absl::Mutex mu;
  std::map<std::string, int> changes ABSL_GUARDED_BY(mu);
};

absl::StatusOr<ModelRecord> Register(ModelStore* store, const std::string& name,
                                     const std::string& bytes) {
  auto staged = store->StageBytes(bytes);
  if (!staged.ok()) return staged.status();
  UpdateOptions o;
  o.files = {{"fp32-g1", ".pt", *staged}};
  const std::string sha = staged->sha256;
  return store->Update(
      name,
      [&](ModelRecord* r, const std::vector<std::string>& files) {
        if (r->revision != 0) return absl::AlreadyExistsError(name);
        r->registration_id = "reg-" + name;
        r->signature.inputs = {{"x", DataType::kFp32, {-1, 4}}};
        r->signature.outputs = {{"y", DataType::kFp32, {-1}}};
        r->generation = 1;
        VariantRecord v;
        v.file = files[0];
        v.sha256 = sha;
        v.bytes = bytes.size();
        r->variants["fp32"] = v;
        return absl::OkStatus();
      },
      o);
}

class SharedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<testing::EtcdProcess>();
    blobs_ = ::twinserve::testing::NewTempDir("blobs");
    a_ = std::make_unique<Replica>(etcd_->endpoint(), blobs_);
    b_ = std::make_unique<Replica>(etcd_->endpoint(), blobs_);
    a_->Follow();
    b_->Follow();
  }
  std::unique_ptr<testing::EtcdProcess> etcd_;
  std::string blobs_;
  std::unique_ptr<Replica> a_, b_;
};

TEST_F(SharedStoreTest, AWriteThroughOneReachesTheOther) {
  auto m = Register(a_->store.get(), "m", "model bytes");
  ASSERT_TRUE(m.ok()) << m.status();
  // Content-addressed: the blob is named by its digest.
  EXPECT_EQ(m->variants.at("fp32").file, m->variants.at("fp32").sha256 + ".pt");
  ASSERT_TRUE(b_->WaitFor("m", m->revision));
  auto seen = b_->store->Get("m");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->registration_id, "reg-m");
  EXPECT_TRUE(seen->variants.at("fp32").damage.empty());
  EXPECT_EQ(
      ReadFile(b_->store->VariantPath("m", seen->variants.at("fp32"))).value(),
      "model bytes");
  {
    absl::MutexLock lock(&b_->mu);
    EXPECT_EQ(b_->changes["m"], 1);
  }
  {
    // A's own commit does not come back to it as a change.
    absl::SleepFor(absl::Milliseconds(200));
    absl::MutexLock lock(&a_->mu);
    EXPECT_EQ(a_->changes["m"], 0);
  }
  // Registering again through B is refused by B's own view.
  EXPECT_EQ(Register(b_->store.get(), "m", "other").status().code(),
            absl::StatusCode::kAlreadyExists);
  // Removed through B: gone for A.
  ASSERT_TRUE(b_->store->Remove("m").ok());
  ASSERT_TRUE(a_->WaitFor("m", 0));
  EXPECT_EQ(a_->store->Get("m").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SharedStoreTest, AnUnreadableRecordIsReportedAndRemovable) {
  ASSERT_TRUE(a_->client->Put("/ts/models/torn", "{not json").ok());
  // Waits until `r`'s copy of "torn" answers with `code`.
  auto seen = [&](Replica* r, absl::StatusCode code) {
    for (int i = 0; i < 200; ++i) {
      if (r->store->Get("torn").status().code() == code) return true;
      absl::SleepFor(absl::Milliseconds(25));
    }
    return false;
  };
  ASSERT_TRUE(seen(a_.get(), absl::StatusCode::kDataLoss));
  ASSERT_TRUE(seen(b_.get(), absl::StatusCode::kDataLoss));
  // It has no revision to compare; removing it needs none.
  absl::Status st = b_->store->Remove("torn");
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_FALSE(a_->client->Get("/ts/models/torn")->has_value());
  // (WaitFor cannot tell: an unreadable record has revision 0 too.)
  EXPECT_TRUE(seen(a_.get(), absl::StatusCode::kNotFound));
}

TEST_F(SharedStoreTest, ConcurrentWritersOnBothReplicasLoseNothing) {
  auto m = Register(a_->store.get(), "m", "bytes");
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(b_->WaitFor("m", m->revision));
  constexpr int kThreads = 3, kEach = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (Replica* r : {a_.get(), b_.get()}) {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, r, t] {
        for (int i = 0; i < kEach; ++i) {
          absl::StatusOr<ModelRecord> st;
          // UNAVAILABLE: the winner's change had not arrived in time.
          do {
            st = r->store->Update(
                "m", [&](ModelRecord* rec, const std::vector<std::string>&) {
                  rec->description += absl::StrCat(t, ".");
                  return absl::OkStatus();
                });
          } while (absl::IsUnavailable(st.status()));
          if (!st.ok()) {
            ADD_FAILURE() << st.status();
            failures++;
          }
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  auto final_a = a_->metadata->Read("m");
  ASSERT_TRUE(final_a.ok());
  EXPECT_EQ(final_a->description.size(), 2u * 2 * kThreads * kEach);
  ASSERT_TRUE(a_->WaitFor("m", final_a->revision));
  ASSERT_TRUE(b_->WaitFor("m", final_a->revision));
  EXPECT_EQ(a_->store->Get("m")->description, final_a->description);
  EXPECT_EQ(b_->store->Get("m")->description, final_a->description);
}

TEST_F(SharedStoreTest, DamagedBlobsFailTheirVariantOnly) {
  auto m = Register(a_->store.get(), "m", "good bytes");
  ASSERT_TRUE(m.ok());
  const std::string path = a_->store->VariantPath("m", m->variants["fp32"]);
  ASSERT_TRUE(WriteFileAtomically(path, "evil bytes").ok());
  // A third replica starting now verifies the blob before using it.
  Replica c(etcd_->endpoint(), blobs_);
  c.Follow();
  auto seen = c.store->Get("m");
  ASSERT_TRUE(seen.ok());
  EXPECT_NE(seen->variants.at("fp32").damage.find("checksum mismatch"),
            std::string::npos)
      << seen->variants.at("fp32").damage;
}

TEST_F(SharedStoreTest, UnreferencedBlobsAreCollectedAfterTheirGrace) {
  auto m = Register(a_->store.get(), "m", "kept");
  ASSERT_TRUE(m.ok());
  auto n = Register(a_->store.get(), "n", "dropped");
  ASSERT_TRUE(n.ok());
  ASSERT_TRUE(a_->store->Remove("n").ok());
  ASSERT_TRUE(b_->WaitFor("n", 0));
  // Within the grace period nothing goes.
  EXPECT_EQ(b_->store->CollectBlobs(absl::Hours(1)), 0u);
  absl::SleepFor(absl::Milliseconds(1100));
  EXPECT_EQ(b_->store->CollectBlobs(absl::Seconds(1)), 1u);
  EXPECT_TRUE(PathExists(a_->store->VariantPath("m", m->variants["fp32"])));
  EXPECT_FALSE(PathExists(a_->store->VariantPath("n", n->variants["fp32"])));
}

TEST_F(SharedStoreTest, WritesAnswerUnavailableWhileEtcdIsDownThenCatchUp) {
  auto m = Register(a_->store.get(), "m", "bytes");
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(b_->WaitFor("m", m->revision));
  etcd_->Pause();
  auto refused = a_->store->Update(
      "m", [](ModelRecord* r, const std::vector<std::string>&) {
        r->description = "while down";
        return absl::OkStatus();
      });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable)
      << refused.status();
  // Reads keep answering from what each replica has.
  EXPECT_EQ(b_->store->Get("m").value().revision, m->revision);
  etcd_->Resume();
  auto later = a_->store->Update(
      "m", [](ModelRecord* r, const std::vector<std::string>&) {
        r->description = "after";
        return absl::OkStatus();
      });
  ASSERT_TRUE(later.ok()) << later.status();
  ASSERT_TRUE(b_->WaitFor("m", later->revision));
  EXPECT_EQ(b_->store->Get("m")->description, "after");
}

TEST_F(SharedStoreTest, AReplicaRestartedAfterEtcdRestartSeesEverything) {
  auto m = Register(a_->store.get(), "m", "bytes");
  ASSERT_TRUE(m.ok());
  etcd_->Kill9();
  etcd_->Start();
  auto n = Register(b_->store.get(), "n", "more");
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_TRUE(a_->WaitFor("n", n->revision));
  Replica c(etcd_->endpoint(), blobs_);
  auto all = c.store->Scan();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "m");
  EXPECT_EQ(all[1].name, "n");
}

}  // namespace
}  // namespace twinserve
