// ModelStore in shared mode: records in a MetadataStore, artifacts as
// content-addressed blobs (see model_store.h).
#include <sys/stat.h>
#include <utime.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/common/thread_name.h"
#include "server/store/model_store.h"

namespace twinserve {
namespace {

// Seconds since the file was last adopted (its mtime), or -1.
int64_t AgeSeconds(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return NowUnixMs() / 1000 - static_cast<int64_t>(st.st_mtime);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::OpenShared(
    const std::string& root, MetadataStore* metadata,
    const std::string& blobs) {
  absl::Status st = PrepareRoot(root);
  if (st.ok()) st = MakeDirs(blobs);
  if (!st.ok()) return st;
  auto store = std::unique_ptr<ModelStore>(new ModelStore(root));
  store->metadata_ = metadata;
  store->blobs_ = blobs;
  return store;
}

ModelStore::~ModelStore() { StopFollowing(); }

void ModelStore::StopFollowing() {
  {
    absl::MutexLock lock(&gc_mu_);
    stopping_ = true;
  }
  if (gc_thread_) gc_thread_->join();
  gc_thread_.reset();
  watch_.reset();  // joins the watch thread: no callback after this
}

absl::StatusOr<ModelRecord> ModelStore::GetLatest(const std::string& name) {
  if (!shared()) return Get(name);
  MetadataChange change;
  change.name = name;
  change.record = metadata_->Read(name);
  if (change.record.ok()) {
    change.revision = change.record->revision;
  } else if (absl::IsNotFound(change.record.status())) {
    // Removed at some revision after the one we hold, if we hold one.
    absl::StatusOr<ModelRecord> have = Get(name);
    if (!have.ok()) return have;
    change.removed = true;
    change.revision = have->revision + 1;
  } else {
    // Unreachable store: what we have.
    return Get(name);
  }
  ApplyChanges({change});
  return Get(name);
}

absl::StatusOr<std::string> ModelStore::AdoptBlob(const NewFile& file) {
  // Same bytes, same name: a blob that exists already is that file.
  const std::string name = file.staged.sha256 + file.extension;
  const std::string path = JoinPath(blobs_, name);
  if (PathExists(path)) {
    // Restart its grace period, so the collector leaves it to this write.
    utime(path.c_str(), nullptr);
    RemoveAll(file.staged.path).IgnoreError();
    return name;
  }
  bool renamed = false;
  absl::Status st = DurableRename(file.staged.path, path, &renamed);
  if (renamed) return name;
  // The blob folder may be another file system (a shared volume): copy.
  auto bytes = ReadFile(file.staged.path);
  if (!bytes.ok()) return bytes.status();
  st = WriteFileAtomically(path, *bytes);
  if (!st.ok()) return st;
  RemoveAll(file.staged.path).IgnoreError();
  return name;
}

void ModelStore::ApplyChanges(const std::vector<MetadataChange>& changes) {
  std::vector<std::string> changed;
  for (const MetadataChange& c : changes) {
    absl::StatusOr<ModelRecord> record = c.record;
    if (!c.removed && record.ok()) Verify(&*record);
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    auto it = records_.find(c.name);
    uint64_t have = RevisionLocked(c.name);
    if (auto r = removed_at_.find(c.name); r != removed_at_.end()) {
      have = std::max(have, r->second);
    }
    // This server's own commits (and reads) got here first.
    if (have >= c.revision) continue;
    if (c.removed) {
      removed_at_[c.name] = c.revision;
      if (it == records_.end()) continue;
      records_.erase(it);
    } else {
      records_.insert_or_assign(c.name, record);
    }
    changed.push_back(c.name);
  }
  std::function<void(const std::string&)> on_change;
  {
    absl::MutexLock lock(&mu_);
    on_change = on_change_;
  }
  if (!on_change) return;  // not following yet (a read before Follow)
  for (const std::string& name : changed) on_change(name);
}

uint64_t ModelStore::Resync() {
  auto snap = metadata_->List();
  while (!snap.ok()) {
    absl::SleepFor(absl::Milliseconds(500));
    snap = metadata_->List();
  }
  std::set<std::string> names;
  for (StoredModel& m : snap->models) {
    if (m.record.ok()) Verify(&*m.record);
  }
  {
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    for (const auto& [name, r] : records_) names.insert(name);
    records_.clear();
    for (const StoredModel& m : snap->models) {
      records_[m.name] = m.record;
      names.insert(m.name);
    }
  }
  std::function<void(const std::string&)> on_change;
  {
    absl::MutexLock lock(&mu_);
    on_change = on_change_;
  }
  for (const std::string& name : names) on_change(name);
  return snap->revision;
}

void ModelStore::Follow(std::function<void(const std::string& name)> on_change,
                        absl::Duration blob_grace) {
  {
    absl::MutexLock lock(&mu_);
    on_change_ = std::move(on_change);
  }
  uint64_t after;
  {
    absl::MutexLock write(&write_mu_);
    after = scanned_revision_;
  }
  watch_ = metadata_->Watch(
      after,
      [this](const std::vector<MetadataChange>& changes) {
        ApplyChanges(changes);
      },
      [this] { return Resync(); });
  const absl::Duration every =
      std::max(absl::Seconds(1), std::min(blob_grace / 4, absl::Minutes(10)));
  gc_thread_ = std::make_unique<std::thread>([this, every, blob_grace] {
    SetThreadName("ts-blob-gc");
    absl::MutexLock lock(&gc_mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(gc_mu_) {
      return stopping_;
    };
    while (!gc_mu_.AwaitWithTimeout(absl::Condition(&stopping), every)) {
      gc_mu_.Unlock();
      CollectBlobs(blob_grace);
      gc_mu_.Lock();
    }
  });
}

bool ModelStore::following() const {
  return watch_ != nullptr && watch_->connected();
}

size_t ModelStore::CollectBlobs(absl::Duration grace) {
  // A server cut off from the store may not know every record.
  if (!following()) return 0;
  std::set<std::string> referenced;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, r] : records_) {
      if (!r.ok()) return 0;  // cannot tell what it references
      for (const std::string& f : ReferencedFiles(*r)) referenced.insert(f);
    }
  }
  auto files = ListDir(blobs_);
  if (!files.ok()) return 0;
  size_t removed = 0;
  for (const std::string& f : *files) {
    if (referenced.count(f)) continue;
    const std::string path = JoinPath(blobs_, f);
    const int64_t age = AgeSeconds(path);
    if (age < 0 || age < absl::ToInt64Seconds(grace)) continue;
    // Temp files of an interrupted copy age out the same way.
    if (RemoveAll(path).ok()) {
      ++removed;
      absl::MutexLock lock(&mu_);
      verified_blobs_.erase(f);
      TS_LOG(INFO) << "store: collected unreferenced blob " << f;
    }
  }
  return removed;
}

}  // namespace twinserve
