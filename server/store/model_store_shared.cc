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

// How long a writer that lost a compare-and-set waits for the change that
// beat it to arrive through the watch before giving up.
constexpr absl::Duration kCatchUp = absl::Seconds(5);

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
  auto store = Open(root);
  if (!store.ok()) return store.status();
  absl::Status st = MakeDirs(blobs);
  if (!st.ok()) return st;
  (*store)->metadata_ = metadata;
  (*store)->blobs_ = blobs;
  return store;
}

ModelStore::~ModelStore() { StopFollowing(); }

uint64_t ModelStore::RevisionLocked(const std::string& name) const {
  auto it = records_.find(name);
  return it != records_.end() && it->second.ok() ? it->second->revision : 0;
}

void ModelStore::StopFollowing() {
  {
    absl::MutexLock lock(&gc_mu_);
    stopping_ = true;
  }
  if (gc_thread_) gc_thread_->join();
  gc_thread_.reset();
  watch_.reset();  // joins the watch thread: no callback after this
}

void ModelStore::VerifyBlobs(ModelRecord* record) {
  auto verify = [&](const std::string& file, const std::string& sha256) {
    {
      absl::MutexLock lock(&mu_);
      if (verified_blobs_.count(file)) return std::string();
    }
    auto sha = Sha256File(JoinPath(blobs_, file));
    if (!sha.ok()) return std::string(sha.status().message());
    if (*sha != sha256) {
      return absl::StrCat("checksum mismatch for blob ", file, " (sha256 ",
                          *sha, ", record says ", sha256, ")");
    }
    absl::MutexLock lock(&mu_);
    verified_blobs_.insert(file);
    return std::string();
  };
  for (auto& [v, vr] : record->variants) {
    vr.damage = verify(vr.file, vr.sha256);
    if (!vr.damage.empty()) {
      TS_LOG(ERROR) << "store: " << record->name << " variant '" << v
                    << "' is damaged: " << vr.damage;
    }
  }
  for (auto& [set, cr] : record->calibration_sets) {
    cr.damage = verify(cr.file, cr.sha256);
  }
}

std::vector<StoredModel> ModelStore::ScanShared() {
  // Without the records there is nothing to serve: wait for the store.
  absl::StatusOr<MetadataSnapshot> snap = metadata_->List();
  for (int attempt = 1; !snap.ok(); ++attempt) {
    if (attempt % 10 == 1) {
      TS_LOG(WARNING) << "store: " << metadata_->Describe()
                      << " cannot be listed yet (" << snap.status()
                      << "); retrying";
    }
    absl::SleepFor(absl::Milliseconds(500));
    snap = metadata_->List();
  }
  for (StoredModel& m : snap->models) {
    if (m.record.ok()) VerifyBlobs(&*m.record);
  }
  absl::MutexLock write(&write_mu_);
  scanned_revision_ = snap->revision;
  absl::MutexLock lock(&mu_);
  records_.clear();
  for (const StoredModel& m : snap->models) records_[m.name] = m.record;
  return std::move(snap->models);
}

StoredModel ModelStore::ReadShared(const std::string& name) {
  StoredModel m{name, metadata_->Read(name)};
  if (m.record.ok()) VerifyBlobs(&*m.record);
  if (absl::IsUnavailable(m.record.status())) return m;
  absl::MutexLock write(&write_mu_);
  absl::MutexLock lock(&mu_);
  auto it = records_.find(name);
  const uint64_t have = RevisionLocked(name);
  if (absl::IsNotFound(m.record.status())) {
    if (it != records_.end()) records_.erase(it);
  } else if (!m.record.ok() || m.record->revision >= have) {
    records_.insert_or_assign(name, m.record);
  }
  return m;
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

absl::Status ModelStore::CompareAndSwapShared(uint64_t expected_revision,
                                              ModelRecord* next,
                                              const CommitHook& on_commit) {
  absl::Status st;
  {
    absl::MutexLock write(&write_mu_);
    {
      absl::MutexLock lock(&mu_);
      const uint64_t current = RevisionLocked(next->name);
      if (current != expected_revision) {
        return absl::AbortedError(absl::StrCat(
            "model '", next->name, "' changed meanwhile (revision ", current,
            ", expected ", expected_revision, ")"));
      }
    }
    const int64_t now = NowUnixMs();
    ModelRecord committed = *next;
    committed.updated_unix_ms = now;
    if (committed.created_unix_ms == 0) committed.created_unix_ms = now;
    auto revision = metadata_->Commit(committed, expected_revision);
    if (revision.ok()) {
      committed.revision = *revision;
      VerifyBlobs(&committed);  // this write adopted them: known
      {
        absl::MutexLock lock(&mu_);
        records_.insert_or_assign(committed.name, committed);
      }
      *next = committed;
      if (on_commit) on_commit(committed);
      return absl::OkStatus();
    }
    st = revision.status();
  }
  if (!absl::IsAborted(st)) return st;
  // Another server committed first and its change is on its way here: wait
  // for it (the watch applies it under write_mu_, released above), so that
  // the caller's retry starts from it.
  absl::MutexLock lock(&mu_);
  auto moved = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return RevisionLocked(next->name) != expected_revision;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&moved), kCatchUp)) {
    return absl::UnavailableError(absl::StrCat(
        "model '", next->name,
        "' changed in the shared store but the change has not reached this "
        "server yet; retry"));
  }
  return st;
}

absl::Status ModelStore::RemoveShared(const std::string& name,
                                      const std::string& registration_id,
                                      const std::function<void()>& on_removed) {
  absl::MutexLock write(&write_mu_);
  uint64_t revision = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(name);
    if (it == records_.end()) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not registered"));
    }
    if (it->second.ok()) {
      revision = it->second->revision;
    } else {
      // Unreadable: remove whatever is there.
      auto kv = metadata_->Read(name);
      if (absl::IsUnavailable(kv.status())) return kv.status();
    }
    if (!registration_id.empty() &&
        (!it->second.ok() || it->second->registration_id != registration_id)) {
      return absl::AbortedError(absl::StrCat(
          "model '", name, "' was registered anew meanwhile; not removed"));
    }
  }
  absl::Status st = metadata_->Delete(name, revision);
  if (!st.ok()) return st;
  {
    absl::MutexLock lock(&mu_);
    records_.erase(name);
    removed_at_[name] = revision;
  }
  if (on_removed) on_removed();
  return absl::OkStatus();
}

void ModelStore::ApplyChanges(const std::vector<MetadataChange>& changes) {
  std::vector<std::string> changed;
  for (const MetadataChange& c : changes) {
    absl::StatusOr<ModelRecord> record = c.record;
    if (!c.removed && record.ok()) VerifyBlobs(&*record);
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
    if (m.record.ok()) VerifyBlobs(&*m.record);
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
