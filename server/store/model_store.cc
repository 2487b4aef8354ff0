#include "server/store/model_store.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"

namespace twinserve {
namespace {

// Writers that keep losing the race give up after this many attempts; with
// commits taking milliseconds this takes a sustained storm of writes.
constexpr int kMaxAttempts = 1000;

// How long a writer that lost a compare-and-set in a shared store waits for
// the change that beat it to arrive through the watch before giving up.
constexpr absl::Duration kCatchUp = absl::Seconds(5);

}  // namespace

absl::Status ModelStore::PrepareRoot(const std::string& root) {
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
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(
    const std::string& root) {
  absl::Status st = PrepareRoot(root);
  if (!st.ok()) return st;
  auto manifests = std::make_unique<ManifestMetadataStore>(
      JoinPath(root, "models"), JoinPath(root, "trash"));
  auto store = std::unique_ptr<ModelStore>(new ModelStore(root));
  store->manifests_ = manifests.get();
  store->metadata_ = manifests.get();
  store->own_metadata_ = std::move(manifests);
  return store;
}

uint64_t ModelStore::RevisionLocked(const std::string& name) const {
  auto it = records_.find(name);
  return it != records_.end() && it->second.ok() ? it->second->revision : 0;
}

std::string ModelStore::ModelDir(const std::string& name) const {
  return manifests_->ModelDir(name);
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

void ModelStore::SetAsideUncommittedFolders() {
  auto names = ListDir(JoinPath(root_, "models"));
  if (!names.ok()) return;  // the listing that follows reports it
  for (const std::string& name : *names) {
    // A folder without a manifest holds a registration that never
    // committed (the manifest is written last, and only ever replaced
    // atomically): nothing in it was acknowledged. Moved aside to orphans/,
    // not deleted, in case someone removed a manifest by hand.
    const std::string dir = ModelDir(name);
    if (PathExists(JoinPath(dir, ManifestMetadataStore::kManifest))) continue;
    auto files = ListDir(dir);
    if (files.ok() && files->empty()) {
      RemoveAll(dir).IgnoreError();
      continue;
    }
    const std::string orphans = JoinPath(root_, "orphans");
    const std::string to = JoinPath(orphans, name + "." + RandomToken());
    if (MakeDirs(orphans).ok() && DurableRename(dir, to).ok()) {
      TS_LOG(WARNING) << "store: " << name
                      << "/ has no manifest (a registration that never "
                         "committed): moved to "
                      << to << ", not served";
    }
  }
}

void ModelStore::DeleteUnreferencedFiles(const ModelRecord& record) {
  const std::string dir = ModelDir(record.name);
  std::set<std::string> referenced = ReferencedFiles(record);
  referenced.insert(ManifestMetadataStore::kManifest);
  auto files = ListDir(dir);
  if (!files.ok()) return;
  for (const auto& f : *files) {
    if (referenced.count(f)) continue;
    TS_LOG(INFO) << "store: removing unreferenced file " << record.name << "/"
                 << f;
    RemoveAll(JoinPath(dir, f)).IgnoreError();
  }
}

std::vector<StoredModel> ModelStore::Scan() {
  if (!shared()) SetAsideUncommittedFolders();
  absl::StatusOr<MetadataSnapshot> snap = metadata_->List();
  for (int attempt = 1; !snap.ok(); ++attempt) {
    if (!shared()) {
      TS_LOG(ERROR) << "cannot list the store: " << snap.status();
      return {};
    }
    // Without the records there is nothing to serve: wait for the store.
    if (attempt % 10 == 1) {
      TS_LOG(WARNING) << "store: " << metadata_->Describe()
                      << " cannot be listed yet (" << snap.status()
                      << "); retrying";
    }
    absl::SleepFor(absl::Milliseconds(500));
    snap = metadata_->List();
  }
  for (StoredModel& m : snap->models) {
    if (!m.record.ok()) continue;
    // No write has started yet, so no file is on its way in.
    if (!shared()) DeleteUnreferencedFiles(*m.record);
    Verify(&*m.record);
  }
  absl::MutexLock write(&write_mu_);
  scanned_revision_ = snap->revision;
  absl::MutexLock lock(&mu_);
  records_.clear();
  for (const StoredModel& m : snap->models) records_[m.name] = m.record;
  return std::move(snap->models);
}

StoredModel ModelStore::Read(const std::string& name) {
  uint64_t before;
  {
    absl::MutexLock lock(&mu_);
    before = RevisionLocked(name);
  }
  StoredModel m{name, metadata_->Read(name)};
  if (m.record.ok()) Verify(&*m.record);
  if (absl::IsUnavailable(m.record.status())) return m;
  absl::MutexLock write(&write_mu_);
  absl::MutexLock lock(&mu_);
  const uint64_t have = RevisionLocked(name);
  if (absl::IsNotFound(m.record.status())) {
    // Unless it was registered (again) while we read.
    if (have == before) records_.erase(name);
  } else if (!m.record.ok() || m.record->revision >= have) {
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

void ModelStore::Verify(ModelRecord* record) {
  const std::string dir = ArtifactDir(record->name);
  // Blobs never change, so each is verified once; a model folder is read
  // again each time (RepositoryModelLoad asks for exactly that).
  auto verify = [&](const std::string& file, const std::string& sha256) {
    if (shared()) {
      absl::MutexLock lock(&mu_);
      if (verified_blobs_.count(file)) return std::string();
    }
    auto sha = Sha256File(JoinPath(dir, file));
    if (!sha.ok()) return std::string(sha.status().message());
    if (*sha != sha256) {
      return absl::StrCat("checksum mismatch for ", file,
                          " (stored file is corrupt: sha256 ", *sha,
                          ", record says ", sha256, ")");
    }
    if (shared()) {
      absl::MutexLock lock(&mu_);
      verified_blobs_.insert(file);
    }
    return std::string();
  };
  // A damaged file fails its own part only: the rest of the model serves.
  for (auto& [set, cr] : record->calibration_sets) {
    cr.damage = verify(cr.file, cr.sha256);
    if (!cr.damage.empty()) {
      TS_LOG(ERROR) << "store: " << record->name << " calibration set '" << set
                    << "' is damaged: " << cr.damage;
    }
  }
  for (auto& [v, vr] : record->variants) {
    vr.damage = verify(vr.file, vr.sha256);
    if (!vr.damage.empty()) {
      TS_LOG(ERROR) << "store: " << record->name << " variant '" << v
                    << "' is damaged: " << vr.damage;
    }
  }
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
  absl::Status st;
  {
    absl::MutexLock write(&write_mu_);
    std::set<std::string> previous_files;
    {
      absl::MutexLock lock(&mu_);
      const uint64_t current = RevisionLocked(next->name);
      if (current != expected_revision) {
        return absl::AbortedError(absl::StrCat(
            "model '", next->name, "' changed meanwhile (revision ", current,
            ", expected ", expected_revision, ")"));
      }
      auto it = records_.find(next->name);
      if (current != 0) previous_files = ReferencedFiles(*it->second);
    }
    const int64_t now = NowUnixMs();
    ModelRecord committed = *next;
    committed.updated_unix_ms = now;
    if (committed.created_unix_ms == 0) committed.created_unix_ms = now;
    CommitOptions options;
    options.defer_if_refused = keep_in_memory_if_disk_fails;
    auto result = metadata_->Commit(committed, expected_revision, options);
    if (result.ok()) {
      committed.revision = result->revision;
      if (shared()) Verify(&committed);  // this write adopted them: known
      {
        absl::MutexLock lock(&mu_);
        records_.insert_or_assign(committed.name, committed);
      }
      *next = committed;
      if (on_commit) on_commit(committed);
      // Files only the previous record used are garbage now, once the new
      // record is sure to survive (else the next start's scan removes
      // them). Shared blobs are collected after a grace period instead.
      if (!shared() && result->durable) {
        const std::set<std::string> kept = ReferencedFiles(committed);
        for (const std::string& f : previous_files) {
          if (!kept.count(f)) {
            RemoveAll(JoinPath(ModelDir(committed.name), f)).IgnoreError();
          }
        }
      }
      return absl::OkStatus();
    }
    st = result.status();
  }
  if (!shared() || !absl::IsAborted(st)) return st;
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

size_t ModelStore::FlushPending() { return metadata_->FlushPending(); }

size_t ModelStore::pending() const { return metadata_->pending(); }

absl::Status ModelStore::Remove(const std::string& name,
                                const std::string& registration_id,
                                const std::function<void()>& on_removed) {
  absl::MutexLock write(&write_mu_);
  uint64_t revision = 0;  // an unreadable record is removed without one
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(name);
    if (it == records_.end()) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not registered"));
    }
    if (it->second.ok()) revision = it->second->revision;
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

}  // namespace twinserve
