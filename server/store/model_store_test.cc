#include "server/store/model_store.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::NewTempDir;

ModelRecord Record(const std::string& name) {
  ModelRecord r;
  r.name = name;
  r.registration_id = "reg-" + name;
  r.description = "d";
  r.signature.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  r.signature.outputs = {{"y", DataType::kInt64, {-1}}};
  r.generation = 1;
  return r;
}

StagedFile Stage(ModelStore* store, const std::string& bytes) {
  auto staged = store->StageBytes(bytes);
  EXPECT_TRUE(staged.ok());
  return *staged;
}

// Registers `name` with one fp32 variant made of `bytes`.
absl::StatusOr<ModelRecord> Create(ModelStore* store, const std::string& name,
                                   const std::string& bytes) {
  UpdateOptions o;
  o.files = {{"fp32-g1", ".pt", Stage(store, bytes)}};
  return store->Update(
      name,
      [&](ModelRecord* r, const std::vector<std::string>& files) {
        if (r->revision != 0) return absl::AlreadyExistsError(name);
        *r = Record(name);
        r->variants["fp32"] = {files[0], "", bytes.size(), 1, 0, ""};
        r->variants["fp32"].sha256 =
            Sha256File(store->root() + "/models/" + name + "/" + files[0])
                .value();
        return absl::OkStatus();
      },
      o);
}

TEST(ModelStoreTest, CommitsScanBackWithTheirRevisions) {
  const std::string root = NewTempDir("store");
  auto store = *ModelStore::Open(root);
  auto r = Create(store.get(), "m", "abc");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->revision, 0u);
  EXPECT_EQ(r->variants.at("fp32").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(store->Get("m")->revision, r->revision);

  auto reopened = *ModelStore::Open(root);
  auto all = reopened->Scan();
  ASSERT_EQ(all.size(), 1u);
  ASSERT_TRUE(all[0].record.ok()) << all[0].record.status();
  EXPECT_EQ(all[0].record->revision, r->revision);
  EXPECT_EQ(all[0].record->registration_id, "reg-m");
  EXPECT_EQ(*ReadFile(reopened->VariantPath("m", r->variants.at("fp32"))),
            "abc");
  // Revisions keep growing across a restart: none is ever reused.
  auto again = reopened->Update("m", [](ModelRecord* r, const auto&) {
    r->description = "new";
    return absl::OkStatus();
  });
  ASSERT_TRUE(again.ok());
  EXPECT_GT(again->revision, r->revision);
}

TEST(ModelStoreTest, CompareAndSwapRefusesAStaleRevision) {
  auto store = *ModelStore::Open(NewTempDir("store"));
  auto r = Create(store.get(), "m", "abc");
  ASSERT_TRUE(r.ok());
  ModelRecord stale = *r;
  ModelRecord fresh = *r;
  fresh.description = "first";
  ASSERT_TRUE(store->CompareAndSwap(r->revision, &fresh).ok());
  stale.description = "second";
  absl::Status st = store->CompareAndSwap(r->revision, &stale);
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(st.message(), HasSubstr("changed meanwhile"));
  EXPECT_EQ(store->Get("m")->description, "first");
}

TEST(ModelStoreTest, ConcurrentWritersLoseNothing) {
  // Before the store's compare-and-set, writers copied the record and wrote
  // it back whole: one of two concurrent calibration uploads vanished, and
  // the commit deleted its file.
  const std::string root = NewTempDir("store");
  auto store = *ModelStore::Open(root);
  ASSERT_TRUE(Create(store.get(), "m", "weights").ok());
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 10; ++i) {
        const std::string set = absl::StrCat("s", w, "-", i);
        UpdateOptions o;
        o.files = {{"calib-" + set, ".bin", Stage(store.get(), set)}};
        auto r = store->Update(
            "m",
            [&](ModelRecord* r, const std::vector<std::string>& files) {
              CalibrationRecord c;
              c.file = files[0];
              c.sha256 = *Sha256File(root + "/models/m/" + files[0]);
              c.bytes = set.size();
              r->calibration_sets[set] = c;
              return absl::OkStatus();
            },
            o);
        EXPECT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(store->Get("m")->calibration_sets.size(), 40u);
  auto reopened = *ModelStore::Open(root);
  auto all = reopened->Scan();
  ASSERT_TRUE(all[0].record.ok()) << all[0].record.status();
  EXPECT_EQ(all[0].record->calibration_sets.size(), 40u);
  // manifest + weights + 40 sets: nothing deleted, nothing left over.
  EXPECT_EQ(ListDir(root + "/models/m")->size(), 42u);
}

TEST(ModelStoreTest, CommitHooksRunInCommitOrder) {
  auto store = *ModelStore::Open(NewTempDir("store"));
  ASSERT_TRUE(Create(store.get(), "m", "w").ok());
  absl::Mutex mu;
  std::vector<uint64_t> seen;
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        UpdateOptions o;
        o.on_commit = [&](const ModelRecord& r) {
          absl::MutexLock lock(&mu);
          seen.push_back(r.revision);
        };
        ASSERT_TRUE(store
                        ->Update(
                            "m",
                            [](ModelRecord* r, const auto&) {
                              r->description += "x";
                              return absl::OkStatus();
                            },
                            o)
                        .ok());
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(seen.size(), 80u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(store->Get("m")->description.size(), 1u + 80u);
}

TEST(ModelStoreTest, RegistrationIdsGuardWritersOfAnEarlierRegistration) {
  auto store = *ModelStore::Open(NewTempDir("store"));
  ASSERT_TRUE(Create(store.get(), "m", "one").ok());
  ASSERT_TRUE(store->Remove("m").ok());
  UpdateOptions stale;
  stale.registration_id = "reg-m";
  auto gone = store->Update(
      "m", [](ModelRecord*, const auto&) { return absl::OkStatus(); }, stale);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  // Registered anew under the same name: a new id.
  auto fresh = store->Update("m", [](ModelRecord* r, const auto&) {
    *r = Record("m");
    r->registration_id = "reg-m-2";
    return absl::OkStatus();
  });
  ASSERT_TRUE(fresh.ok());
  auto refused = store->Update(
      "m",
      [](ModelRecord* r, const auto&) {
        r->description = "from the old job";
        return absl::OkStatus();
      },
      stale);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(refused.status().message(), HasSubstr("registered anew"));
  EXPECT_EQ(store->Get("m")->description, "d");
  EXPECT_EQ(store->Remove("m", "reg-m").code(), absl::StatusCode::kAborted);
}

TEST(ModelStoreTest, ReplacingDropsOnlyTheFilesNoLongerReferenced) {
  const std::string root = NewTempDir("store");
  auto store = *ModelStore::Open(root);
  auto r = Create(store.get(), "m", "one");
  ASSERT_TRUE(r.ok());
  UpdateOptions o;
  o.files = {{"fp32-g2", ".pt", Stage(store.get(), "two")}};
  auto next = store->Update(
      "m",
      [](ModelRecord* r, const std::vector<std::string>& files) {
        r->generation = 2;
        r->variants["fp32"].file = files[0];
        return absl::OkStatus();
      },
      o);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(ListDir(root + "/models/m")->size(), 2u);  // manifest + fp32
  EXPECT_TRUE(ListDir(root + "/staging")->empty());
}

TEST(ModelStoreTest, AFailedWriteLeavesNothingBehind) {
  const std::string root = NewTempDir("store");
  auto store = *ModelStore::Open(root);
  UpdateOptions o;
  o.files = {{"fp32-g1", ".pt", Stage(store.get(), "x")}};
  auto refused = store->Update(
      "new",
      [](ModelRecord*, const auto&) {
        return absl::InvalidArgumentError("the model does not load");
      },
      o);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(root + "/models/new"));
  EXPECT_TRUE(ListDir(root + "/staging")->empty());
  EXPECT_EQ(store->Get("new").status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelStoreTest, CorruptionAndGarbageAreReportedNotFatal) {
  const std::string root = NewTempDir("store");
  {
    auto store = *ModelStore::Open(root);
    for (const char* name : {"a", "b", "c"}) {
      ASSERT_TRUE(Create(store.get(), name, name).ok());
    }
  }
  // b: artifact changed; c: manifest garbage; a: stray file from a crash;
  // d: a folder a crashed registration left without a manifest.
  const auto b_files = ListDir(root + "/models/b");
  ASSERT_TRUE(b_files.ok());
  for (const auto& f : *b_files) {
    if (f != "manifest.json") {
      ASSERT_TRUE(WriteFileAtomically(root + "/models/b/" + f, "B").ok());
    }
  }
  ASSERT_TRUE(
      WriteFileAtomically(root + "/models/c/manifest.json", "{oops").ok());
  ASSERT_TRUE(WriteFileAtomically(root + "/models/a/stray.pt", "x").ok());
  ASSERT_TRUE(MakeDirs(root + "/models/d").ok());
  ASSERT_TRUE(WriteFileAtomically(root + "/models/d/fp32-x.pt", "x").ok());
  ASSERT_TRUE(WriteFileAtomically(root + "/staging/left.upload", "x").ok());

  auto store = *ModelStore::Open(root);
  EXPECT_TRUE(ListDir(root + "/staging")->empty());
  auto all = store->Scan();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(all[0].record.ok());
  EXPECT_FALSE(PathExists(root + "/models/a/stray.pt"));
  EXPECT_FALSE(PathExists(root + "/models/d"));
  EXPECT_EQ(ListDir(root + "/orphans")->size(), 1u);  // moved, not deleted
  // A damaged artifact fails that variant only: the record stands.
  ASSERT_TRUE(all[1].record.ok());
  EXPECT_THAT(all[1].record->variants.at("fp32").damage,
              HasSubstr("checksum mismatch"));
  EXPECT_EQ(all[2].record.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all[2].record.status().message(), HasSubstr("corrupt"));
  // A broken entry is not overwritten by accident, only when asked.
  auto plain = store->Update(
      "c", [](ModelRecord*, const auto&) { return absl::OkStatus(); });
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kDataLoss);
  UpdateOptions overwrite;
  overwrite.overwrite_broken = true;
  auto replaced = store->Update(
      "c",
      [](ModelRecord* r, const auto&) {
        EXPECT_EQ(r->revision, 0u);
        *r = Record("c");
        return absl::OkStatus();
      },
      overwrite);
  EXPECT_TRUE(replaced.ok()) << replaced.status();
}

TEST(ModelStoreTest, AbandonedUploadLeavesNothing) {
  const std::string root = NewTempDir("store");
  auto store = *ModelStore::Open(root);
  {
    auto up = store->BeginUpload();
    ASSERT_TRUE((*up)->Append("partial").ok());
  }
  EXPECT_TRUE(ListDir(root + "/staging")->empty());
}

TEST(ModelStoreTest, RemoveModel) {
  const std::string root = NewTempDir("store");
  auto store = *ModelStore::Open(root);
  ASSERT_TRUE(Create(store.get(), "gone", "x").ok());
  bool heard = false;
  ASSERT_TRUE(store->Remove("gone", "", [&] { heard = true; }).ok());
  EXPECT_TRUE(heard);
  EXPECT_EQ(store->Get("gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store->Scan().empty());
  EXPECT_EQ(store->Remove("gone").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ListDir(root + "/trash")->empty());
}

}  // namespace
}  // namespace twinserve
