#include "server/store/model_store.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"

namespace twinserve {
namespace {

constexpr char kManifest[] = "manifest.json";

// Writers that keep losing the race give up after this many attempts; with
// commits taking milliseconds this takes a sustained storm of writes.
constexpr int kMaxAttempts = 1000;

}  // namespace

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(
    const std::string& root) {
  for (const char* sub : {"models", "staging", "trash", "jobs"}) {
    absl::Status st = MakeDirs(JoinPath(root, sub));
    if (!st.ok()) return st;
  }
  for (const char* sub : {"staging", "trash"}) {
    const std::string dir = JoinPath(root, sub);
    auto entries = ListDir(dir);
    if (!entries.ok()) return entries.status();
    for (const auto& e : *entries) {
      absl::Status st = RemoveAll(JoinPath(dir, e));
      if (!st.ok()) return st;
    }
  }
  return std::unique_ptr<ModelStore>(new ModelStore(root));
}

std::string ModelStore::ModelDir(const std::string& name) const {
  return JoinPath(JoinPath(root_, "models"), name);
}

std::string ModelStore::ArtifactDir(const std::string& model) const {
  return shared() ? blobs_ : ModelDir(model);
}

std::string ModelStore::VariantPath(const std::string& model,
                                    const VariantRecord& v) const {
  return JoinPath(ArtifactDir(model), v.file);
}

std::string ModelStore::CalibrationPath(const std::string& model,
                                        const CalibrationRecord& c) const {
  return JoinPath(ArtifactDir(model), c.file);
}

std::string ModelStore::JobsDir() const { return JoinPath(root_, "jobs"); }

absl::StatusOr<std::unique_ptr<Upload>> ModelStore::BeginUpload() {
  return Upload::Create(
      JoinPath(JoinPath(root_, "staging"), RandomToken() + ".upload"));
}

absl::StatusOr<StagedFile> ModelStore::StageBytes(absl::string_view bytes) {
  auto upload = BeginUpload();
  if (!upload.ok()) return upload.status();
  absl::Status st = (*upload)->Append(bytes);
  if (!st.ok()) return st;
  return (*upload)->Finish();
}

std::string ModelStore::NewStagingPath(const std::string& suffix) const {
  return JoinPath(JoinPath(root_, "staging"), RandomToken() + suffix);
}

absl::StatusOr<StagedFile> ModelStore::AdoptStagingFile(
    const std::string& path) {
  // fsync before the file is referenced anywhere.
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  absl::Status st = WriteFileAtomically(path, *bytes);
  if (!st.ok()) return st;
  Sha256 sha;
  sha.Update(*bytes);
  return StagedFile{path, sha.HexDigest(), bytes->size()};
}

std::vector<StoredModel> ModelStore::Scan() {
  if (shared()) return ScanShared();
  absl::MutexLock write(&write_mu_);
  std::vector<StoredModel> out;
  auto names = ListDir(JoinPath(root_, "models"));
  if (!names.ok()) {
    TS_LOG(ERROR) << "cannot list the store: " << names.status();
    return out;
  }
  std::sort(names->begin(), names->end());
  for (const std::string& name : *names) {
    // A folder without a manifest holds a registration that never
    // committed (the manifest is written last, and only ever replaced
    // atomically): nothing in it was acknowledged. Moved aside to orphans/,
    // not deleted, in case someone removed a manifest by hand.
    if (!PathExists(JoinPath(ModelDir(name), kManifest))) {
      auto files = ListDir(ModelDir(name));
      if (files.ok() && files->empty()) {
        RemoveAll(ModelDir(name)).IgnoreError();
        continue;
      }
      const std::string orphans = JoinPath(root_, "orphans");
      const std::string to = JoinPath(orphans, name + "." + RandomToken());
      if (MakeDirs(orphans).ok() && DurableRename(ModelDir(name), to).ok()) {
        TS_LOG(WARNING) << "store: " << name
                        << "/ has no manifest (a registration that never "
                           "committed): moved to "
                        << to << ", not served";
        continue;
      }
    }
    StoredModel m = ReadFolder(name, /*collect_garbage=*/true);
    if (m.record.ok()) {
      next_revision_ = std::max(next_revision_, m.record->revision + 1);
    }
    absl::MutexLock lock(&mu_);
    records_.insert_or_assign(name, m.record);
    out.push_back(std::move(m));
  }
  return out;
}

StoredModel ModelStore::Read(const std::string& name) {
  if (shared()) return ReadShared(name);
  absl::MutexLock write(&write_mu_);
  StoredModel m = ReadFolder(name, /*collect_garbage=*/false);
  absl::MutexLock lock(&mu_);
  if (absl::IsNotFound(m.record.status())) {
    records_.erase(name);
  } else {
    if (m.record.ok()) {
      next_revision_ = std::max(next_revision_, m.record->revision + 1);
    }
    records_.insert_or_assign(name, m.record);
  }
  return m;
}

absl::StatusOr<ModelRecord> ModelStore::Get(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(name);
  if (it == records_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not registered"));
  }
  return it->second;
}

StoredModel ModelStore::ReadFolder(const std::string& name,
                                   bool collect_garbage) {
  StoredModel out{name, absl::UnknownError("unset")};
  const std::string dir = ModelDir(name);
  if (!PathExists(dir)) {
    out.record = absl::NotFoundError(
        absl::StrCat("model '", name, "' is not in the store"));
    return out;
  }
  auto text = ReadFile(JoinPath(dir, kManifest));
  if (!text.ok()) {
    out.record = absl::DataLossError(absl::StrCat(
        "partial store entry: ", kManifest, " is missing or unreadable (",
        text.status().message(), "); unregister the model to remove it"));
    return out;
  }
  auto record = FromManifest(*text);
  if (!record.ok()) {
    out.record = record.status();
    return out;
  }
  if (record->name != name) {
    out.record =
        absl::DataLossError(absl::StrCat("manifest names model '", record->name,
                                         "' but lives in folder '", name, "'"));
    return out;
  }
  if (collect_garbage) {
    std::set<std::string> referenced = ReferencedFiles(*record);
    referenced.insert(kManifest);
    if (auto files = ListDir(dir); files.ok()) {
      for (const auto& f : *files) {
        if (!referenced.count(f)) {
          TS_LOG(INFO) << "store: removing unreferenced file " << name << "/"
                       << f;
          RemoveAll(JoinPath(dir, f)).IgnoreError();
        }
      }
    }
  }
  // A damaged file fails its own part only: the rest of the model serves.
  for (auto& [set, cr] : record->calibration_sets) {
    auto sha = Sha256File(JoinPath(dir, cr.file));
    if (!sha.ok() || *sha != cr.sha256) {
      cr.damage = sha.ok() ? absl::StrCat("checksum mismatch for ", cr.file)
                           : std::string(sha.status().message());
      TS_LOG(ERROR) << "store: " << name << " calibration set '" << set
                    << "' is damaged: " << cr.damage;
    }
  }
  for (auto& [v, vr] : record->variants) {
    auto sha = Sha256File(JoinPath(dir, vr.file));
    if (!sha.ok()) {
      vr.damage = std::string(sha.status().message());
    } else if (*sha != vr.sha256) {
      vr.damage = absl::StrCat("checksum mismatch for ", vr.file,
                               " (stored file is corrupt: sha256 ", *sha,
                               ", manifest says ", vr.sha256, ")");
    }
    if (!vr.damage.empty()) {
      TS_LOG(ERROR) << "store: " << name << " variant '" << v
                    << "' is damaged: " << vr.damage;
    }
  }
  out.record = std::move(record);
  return out;
}

absl::StatusOr<std::string> ModelStore::Adopt(const std::string& model,
                                              const NewFile& file) {
  if (shared()) return AdoptBlob(file);
  // Under the write order: a failed registration's cleanup may remove the
  // folder it created, never while another writer adopts into it.
  absl::MutexLock write(&write_mu_);
  const std::string dir = ModelDir(model);
  absl::Status st = MakeDirs(dir);
  if (!st.ok()) return st;
  const std::string name = absl::StrCat(
      file.prefix, "-", RandomToken().substr(0, 8), file.extension);
  bool renamed = false;
  st = DurableRename(file.staged.path, JoinPath(dir, name), &renamed);
  // Renamed but not yet synced: the manifest's write syncs this folder.
  if (!renamed) return st;
  return name;
}

absl::Status ModelStore::CompareAndSwap(uint64_t expected_revision,
                                        ModelRecord* next,
                                        const CommitHook& on_commit,
                                        bool keep_in_memory_if_disk_fails) {
  if (shared()) return CompareAndSwapShared(expected_revision, next, on_commit);
  absl::MutexLock write(&write_mu_);
  std::set<std::string> previous_files;
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(next->name);
    const bool stored = it != records_.end() && it->second.ok();
    const uint64_t current = RevisionLocked(next->name);
    if (current != expected_revision) {
      return absl::AbortedError(
          absl::StrCat("model '", next->name, "' changed meanwhile (revision ",
                       current, ", expected ", expected_revision, ")"));
    }
    if (stored) previous_files = ReferencedFiles(*it->second);
  }
  const int64_t now = NowUnixMs();
  ModelRecord committed = *next;
  committed.revision = next_revision_;
  committed.updated_unix_ms = now;
  if (committed.created_unix_ms == 0) committed.created_unix_ms = now;
  const std::string dir = ModelDir(committed.name);
  absl::Status st = MakeDirs(dir);
  bool renamed = false;
  if (st.ok()) {
    st = WriteFileAtomically(JoinPath(dir, kManifest), ToManifest(committed),
                             &renamed);
  }
  bool in_memory_only = false;
  if (!st.ok() && !renamed) {
    if (!keep_in_memory_if_disk_fails) return st;
    TS_LOG(ERROR) << "store: the disk refused " << committed.name
                  << "'s record (" << st
                  << "); it takes effect in memory and is written when the "
                     "disk accepts it";
    in_memory_only = true;
  }
  if (in_memory_only) {
    pending_.insert(committed.name);
  } else {
    pending_.erase(committed.name);  // this write carries the pending state
  }
  pending_count_ = pending_.size();
  // Renamed but the folder's fsync failed: the new manifest is what every
  // reader sees now, so it is committed (undoing it would delete files it
  // references); whether it or the previous one survives a crash is open,
  // so the previous record's files stay until the next start's scan.
  const bool durable = st.ok();
  if (!durable && !in_memory_only) {
    TS_LOG(WARNING) << "store: " << committed.name
                    << " written, but not yet durable: " << st;
  }
  ++next_revision_;
  {
    absl::MutexLock lock(&mu_);
    records_.insert_or_assign(committed.name, committed);
  }
  *next = committed;
  if (on_commit) on_commit(committed);
  // Files only the previous record used are garbage now; a crash before
  // they are gone leaves them for the next Scan.
  const std::set<std::string> kept = ReferencedFiles(committed);
  for (const std::string& f : previous_files) {
    if (durable && !kept.count(f)) RemoveAll(JoinPath(dir, f)).IgnoreError();
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelRecord> ModelStore::Update(const std::string& name,
                                               const Mutation& mutate,
                                               UpdateOptions options) {
  std::vector<std::string> adopted;
  bool existed = shared() || PathExists(ModelDir(name));
  // Deletes what this write adopted (and a folder it alone created) unless
  // it committed. Shared blobs stay: another record may hold the same bytes,
  // and a write that answered UNAVAILABLE may have committed; unreferenced
  // ones are collected after a grace period.
  auto cleanup = [&](absl::Status st) {
    if (shared()) return st;
    for (const std::string& f : adopted) {
      RemoveAll(JoinPath(ModelDir(name), f)).IgnoreError();
    }
    if (!existed) {
      absl::MutexLock write(&write_mu_);
      auto files = ListDir(ModelDir(name));
      if (files.ok() && files->empty()) RemoveAll(ModelDir(name)).IgnoreError();
    }
    return st;
  };
  for (const NewFile& f : options.files) {
    auto base = Adopt(name, f);
    if (!base.ok()) return cleanup(base.status());
    adopted.push_back(*base);
  }
  for (int attempt = 1;; ++attempt) {
    ModelRecord next;
    uint64_t revision = 0;
    {
      absl::MutexLock lock(&mu_);
      auto it = records_.find(name);
      if (it != records_.end() && it->second.ok()) {
        next = *it->second;
        revision = next.revision;
      } else if (it != records_.end() && !options.overwrite_broken) {
        return cleanup(it->second.status());
      }
    }
    if (!options.registration_id.empty()) {
      if (revision == 0) {
        return cleanup(absl::NotFoundError(
            absl::StrCat("model '", name,
                         "' was unregistered meanwhile; nothing was "
                         "written")));
      }
      if (next.registration_id != options.registration_id) {
        return cleanup(absl::AbortedError(absl::StrCat(
            "model '", name, "' was registered anew meanwhile (registration ",
            next.registration_id, ", this write belongs to ",
            options.registration_id, "); nothing was written")));
      }
    }
    next.name = name;
    next.revision = revision;
    absl::Status st = mutate(&next, adopted);
    if (!st.ok()) return cleanup(st);
    st = CompareAndSwap(revision, &next, options.on_commit,
                        options.keep_in_memory_if_disk_fails);
    if (st.ok()) return next;
    if (!absl::IsAborted(st) || attempt >= kMaxAttempts) return cleanup(st);
  }
}

size_t ModelStore::FlushPending() {
  if (shared() || pending_count_.load() == 0) return 0;
  absl::MutexLock write(&write_mu_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    std::optional<ModelRecord> record;
    {
      absl::MutexLock lock(&mu_);
      auto r = records_.find(*it);
      if (r != records_.end() && r->second.ok()) record = *r->second;
    }
    if (!record.has_value()) {  // removed meanwhile
      it = pending_.erase(it);
      continue;
    }
    bool renamed = false;
    absl::Status st = WriteFileAtomically(JoinPath(ModelDir(*it), kManifest),
                                          ToManifest(*record), &renamed);
    if (renamed) {
      TS_LOG(INFO) << "store: " << *it << "'s record, committed in memory, is "
                   << "written now" << (st.ok() ? "" : " (not yet synced)");
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  pending_count_ = pending_.size();
  return pending_.size();
}

size_t ModelStore::pending() const { return pending_count_.load(); }

absl::Status ModelStore::Remove(const std::string& name,
                                const std::string& registration_id,
                                const std::function<void()>& on_removed) {
  if (shared()) return RemoveShared(name, registration_id, on_removed);
  absl::MutexLock write(&write_mu_);
  const std::string dir = ModelDir(name);
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(name);
    if (it == records_.end() && !PathExists(dir)) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not registered"));
    }
    if (!registration_id.empty() &&
        (it == records_.end() || !it->second.ok() ||
         it->second->registration_id != registration_id)) {
      return absl::AbortedError(absl::StrCat(
          "model '", name, "' was registered anew meanwhile; not removed"));
    }
  }
  if (PathExists(dir)) {
    const std::string trash =
        JoinPath(JoinPath(root_, "trash"), name + "." + RandomToken());
    bool renamed = false;
    absl::Status st = DurableRename(dir, trash, &renamed);
    if (!renamed) return st;         // else gone now, durably or not
    RemoveAll(trash).IgnoreError();  // gone either way; trash is cleared
  }
  {
    absl::MutexLock lock(&mu_);
    records_.erase(name);
  }
  if (on_removed) on_removed();
  return absl::OkStatus();
}

}  // namespace twinserve
