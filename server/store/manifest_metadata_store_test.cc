#include "server/store/manifest_metadata_store.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

ModelRecord Record(const std::string& name, const std::string& description) {
  ModelRecord r;
  r.name = name;
  r.registration_id = "reg-" + name;
  r.description = description;
  r.signature.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  r.signature.outputs = {{"y", DataType::kFp32, {-1}}};
  r.generation = 1;
  return r;
}

class ManifestMetadataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string root = ::twinserve::testing::NewTempDir("manifests");
    models_ = JoinPath(root, "models");
    trash_ = JoinPath(root, "trash");
    ASSERT_TRUE(MakeDirs(models_).ok());
    ASSERT_TRUE(MakeDirs(trash_).ok());
    store_ = std::make_unique<ManifestMetadataStore>(models_, trash_);
  }
  // A new store on the same folder: what a restarted server reads.
  std::unique_ptr<ManifestMetadataStore> Reopen() {
    return std::make_unique<ManifestMetadataStore>(models_, trash_);
  }

  std::string models_, trash_;
  std::unique_ptr<ManifestMetadataStore> store_;
};

TEST_F(ManifestMetadataStoreTest, CommitsSurviveAReopenWithTheirRevisions) {
  auto a = store_->Commit(Record("a", "one"), 0, {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->durable);
  auto b = store_->Commit(Record("b", "two"), 0, {});
  ASSERT_TRUE(b.ok());
  auto a2 = store_->Commit(Record("a", "three"), a->revision, {});
  ASSERT_TRUE(a2.ok());
  EXPECT_LT(a->revision, b->revision);
  EXPECT_LT(b->revision, a2->revision);
  EXPECT_TRUE(PathExists(JoinPath(store_->ModelDir("a"), "manifest.json")));

  auto reopened = Reopen();
  auto snap = reopened->List();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->models.size(), 2u);
  EXPECT_EQ(snap->models[0].name, "a");
  EXPECT_EQ(snap->models[0].record->description, "three");
  EXPECT_EQ(snap->models[0].record->revision, a2->revision);
  EXPECT_EQ(snap->models[1].record->revision, b->revision);
  EXPECT_EQ(snap->revision, a2->revision);
  // Revisions keep growing after a restart.
  auto c = reopened->Commit(Record("c", "four"), 0, {});
  ASSERT_TRUE(c.ok());
  EXPECT_GT(c->revision, a2->revision);
  auto read = reopened->Read("b");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->description, "two");
  EXPECT_TRUE(absl::IsNotFound(reopened->Read("zz").status()));
}

TEST_F(ManifestMetadataStoreTest, WritesCompareTheRevision) {
  auto a = store_->Commit(Record("a", "one"), 0, {});
  ASSERT_TRUE(a.ok());
  auto again = store_->Commit(Record("a", "dup"), 0, {});
  EXPECT_TRUE(absl::IsAborted(again.status())) << again.status();
  EXPECT_THAT(again.status().message(), HasSubstr("changed meanwhile"));
  auto a2 = store_->Commit(Record("a", "two"), a->revision, {});
  ASSERT_TRUE(a2.ok());
  EXPECT_TRUE(absl::IsAborted(
      store_->Commit(Record("a", "x"), a->revision, {}).status()));
  EXPECT_TRUE(absl::IsAborted(store_->Delete("a", a->revision)));
  EXPECT_EQ(store_->Read("a")->description, "two");
  EXPECT_TRUE(absl::IsNotFound(store_->Delete("nope", 0)));
}

TEST_F(ManifestMetadataStoreTest, DeleteRemovesTheWholeFolder) {
  auto a = store_->Commit(Record("a", "one"), 0, {});
  ASSERT_TRUE(a.ok());
  const std::string artifact = JoinPath(store_->ModelDir("a"), "fp32-x.pt");
  ASSERT_TRUE(WriteFileAtomically(artifact, "bytes").ok());
  ASSERT_TRUE(store_->Delete("a", a->revision).ok());
  EXPECT_FALSE(PathExists(store_->ModelDir("a")));
  EXPECT_TRUE(ListDir(trash_)->empty());
  EXPECT_TRUE(absl::IsNotFound(store_->Read("a").status()));
  EXPECT_TRUE(Reopen()->List()->models.empty());
  // Registered again: a new, higher revision.
  auto again = store_->Commit(Record("a", "two"), 0, {});
  ASSERT_TRUE(again.ok());
  EXPECT_GT(again->revision, a->revision);
}

TEST_F(ManifestMetadataStoreTest, UnreadableRecordsAreReportedAndReplaceable) {
  ASSERT_TRUE(store_->Commit(Record("good", "g"), 0, {}).ok());
  ASSERT_TRUE(MakeDirs(JoinPath(models_, "torn")).ok());
  ASSERT_TRUE(
      WriteFileAtomically(JoinPath(models_, "torn/manifest.json"), "{not json")
          .ok());
  ASSERT_TRUE(MakeDirs(JoinPath(models_, "moved")).ok());
  ASSERT_TRUE(WriteFileAtomically(JoinPath(models_, "moved/manifest.json"),
                                  ToManifest(Record("other", "o")))
                  .ok());
  auto reopened = Reopen();
  auto snap = reopened->List();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->models.size(), 3u);
  EXPECT_TRUE(snap->models[0].record.ok());  // good
  EXPECT_TRUE(absl::IsDataLoss(snap->models[1].record.status()));
  EXPECT_THAT(snap->models[1].record.status().message(),
              HasSubstr("names model 'other'"));
  EXPECT_FALSE(snap->models[2].record.ok());  // torn
  // An unreadable record has no revision: it is replaced from 0, and
  // removed with 0; a readable one is not.
  EXPECT_TRUE(reopened->Commit(Record("torn", "fixed"), 0, {}).ok());
  EXPECT_EQ(reopened->Read("torn")->description, "fixed");
  EXPECT_TRUE(reopened->Delete("moved", 0).ok());
  EXPECT_TRUE(absl::IsAborted(reopened->Delete("good", 0)));
}

TEST_F(ManifestMetadataStoreTest, ARefusedWriteFailsOrIsDeferred) {
  // A file where the model's folder should go: the disk refuses the write.
  const std::string blocker = store_->ModelDir("m");
  ASSERT_TRUE(WriteFileAtomically(blocker, "x").ok());
  auto refused = store_->Commit(Record("m", "one"), 0, {});
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(store_->pending(), 0u);

  CommitOptions defer;
  defer.defer_if_refused = true;
  auto deferred = store_->Commit(Record("m", "one"), 0, defer);
  ASSERT_TRUE(deferred.ok()) << deferred.status();
  EXPECT_FALSE(deferred->durable);
  EXPECT_EQ(store_->pending(), 1u);
  EXPECT_EQ(store_->Read("m")->description, "one");  // in effect
  // It is committed: the next write names its revision.
  auto next = store_->Commit(Record("m", "two"), deferred->revision, defer);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(store_->FlushPending(), 1u);  // still refused

  ASSERT_TRUE(RemoveAll(blocker).ok());
  EXPECT_EQ(store_->FlushPending(), 0u);
  auto read = Reopen()->Read("m");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->description, "two");
  EXPECT_EQ(read->revision, next->revision);
}

TEST_F(ManifestMetadataStoreTest, ConcurrentWritersLoseNoUpdate) {
  // Each writer appends its mark to the description, read-modify-write.
  constexpr int kWriters = 4, kEach = 25;
  std::vector<std::thread> writers;
  ASSERT_TRUE(store_->Commit(Record("m", ""), 0, {}).ok());
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kEach; ++i) {
        for (;;) {
          auto current = store_->Read("m");
          ASSERT_TRUE(current.ok());
          ModelRecord next = *current;
          next.description += std::to_string(w);
          auto st = store_->Commit(next, current->revision, {});
          if (st.ok()) break;
          ASSERT_TRUE(absl::IsAborted(st.status())) << st.status();
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  auto read = Reopen()->Read("m");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->description.size(), size_t{kWriters * kEach});
}

// Collects what a watch delivers.
struct Seen {
  absl::Mutex mu;
  std::vector<MetadataChange> changes ABSL_GUARDED_BY(mu);
  int resyncs ABSL_GUARDED_BY(mu) = 0;

  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return changes.size() >= n;
    };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }
  bool WaitForResync() {
    absl::MutexLock lock(&mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return resyncs > 0; };
    return mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(10));
  }
};

TEST_F(ManifestMetadataStoreTest, WatchDeliversCommitsAndRemovalsInOrder) {
  auto snap = store_->List();
  ASSERT_TRUE(snap.ok());
  Seen seen;
  auto watch = store_->Watch(
      snap->revision,
      [&](const std::vector<MetadataChange>& changes) {
        absl::MutexLock lock(&seen.mu);
        for (const auto& c : changes) seen.changes.push_back(c);
      },
      [&] {
        absl::MutexLock lock(&seen.mu);
        ++seen.resyncs;
        return uint64_t{0};
      });
  EXPECT_TRUE(watch->connected());
  auto a = store_->Commit(Record("a", "one"), 0, {});
  ASSERT_TRUE(a.ok());
  auto a2 = store_->Commit(Record("a", "two"), a->revision, {});
  ASSERT_TRUE(a2.ok());
  ASSERT_TRUE(store_->Delete("a", a2->revision).ok());
  ASSERT_TRUE(seen.WaitFor(3));
  absl::MutexLock lock(&seen.mu);
  ASSERT_EQ(seen.changes.size(), 3u);
  EXPECT_EQ(seen.changes[0].revision, a->revision);
  EXPECT_EQ(seen.changes[1].record->description, "two");
  EXPECT_TRUE(seen.changes[2].removed);
  EXPECT_GT(seen.changes[2].revision, a2->revision);
  EXPECT_EQ(seen.resyncs, 0);
}

TEST_F(ManifestMetadataStoreTest, AWatchFromAnOldRevisionBeginsWithAResync) {
  auto a = store_->Commit(Record("a", "one"), 0, {});
  ASSERT_TRUE(a.ok());
  Seen seen;
  auto watch = store_->Watch(
      0,
      [&](const std::vector<MetadataChange>& changes) {
        absl::MutexLock lock(&seen.mu);
        for (const auto& c : changes) seen.changes.push_back(c);
      },
      [&] {
        auto snap = store_->List();
        absl::MutexLock lock(&seen.mu);
        ++seen.resyncs;
        return snap->revision;
      });
  // What the resync listed is not delivered again; what follows is.
  ASSERT_TRUE(seen.WaitForResync());
  ASSERT_TRUE(store_->Commit(Record("b", "two"), 0, {}).ok());
  ASSERT_TRUE(seen.WaitFor(1));
  absl::MutexLock lock(&seen.mu);
  EXPECT_EQ(seen.resyncs, 1);
  ASSERT_EQ(seen.changes.size(), 1u);
  EXPECT_EQ(seen.changes[0].name, "b");
  EXPECT_GT(seen.changes[0].revision, a->revision);
}

}  // namespace
}  // namespace twinserve
