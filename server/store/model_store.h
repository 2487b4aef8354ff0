// ModelStore: the durable home of everything the server acknowledged.
//
// Records live in a MetadataStore (metadata_store.h): by default manifest
// files in the root folder (ManifestMetadataStore), or, for several
// servers, a shared one (etcd). Layout under the root folder:
//   models/<name>/manifest.json      the commit point of a model: its record
//                                    (server/store/records.h), local only
//   models/<name>/<variant>-g<generation>-<token>.pt   variant artifacts
//   models/<name>/calib-<set>-<token>.bin  calibration sets
//   staging/                         uploads in progress (cleared on open)
//   trash/                           removed models (cleared on open)
//   jobs/<id>.json                   quantization job records
//
// Writes. A record changes only through CompareAndSwap: the writer names the
// revision it read, and if another write committed since, it is refused
// (ABORTED). Update is the read-modify-write loop over it that every writer
// uses: it re-reads and re-applies its mutation until it commits, so
// concurrent writers never lose each other's changes. This server's commits
// happen one at a time, each with a revision higher than any before (so a
// model removed and registered again never reuses one); `on_commit` runs
// inside that order, so whoever mirrors the store in memory (the registry)
// sees the commits in the order they happened.
//
// Files. New files are adopted into the model folder (fsync'd, renamed)
// before the record that references them commits; once a commit is durable,
// the files the previous record referenced and the new one does not are
// deleted. Files no record references (adopted by a writer that crashed or
// failed) are deleted by Scan at startup, and by a failed Update for its own
// files, never by another writer's commit.
//
// Reading. Scan (at startup) reads every record, verifies its artifacts'
// checksums, and reports a broken entry with its reason without stopping
// the others.
//
// Shared (OpenShared): artifacts live in a folder every server sees,
// content-addressed (blobs/<sha256><extension>, never modified); the root
// folder keeps what is this server's own: staging/ and jobs/. Other
// servers' commits reach this store through Follow, which also collects
// blobs no record references after a grace period. A commit never deletes a
// blob (another record or server may use it), and the disk-refusal fallback
// (keep_in_memory_if_disk_fails) does not apply: an unreachable metadata
// store answers UNAVAILABLE.
//
// Thread-safe.
#ifndef TWINSERVE_SERVER_STORE_MODEL_STORE_H_
#define TWINSERVE_SERVER_STORE_MODEL_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/manifest_metadata_store.h"
#include "server/store/metadata_store.h"
#include "server/store/records.h"
#include "server/store/upload.h"

namespace twinserve {

// A staged file to adopt into the model folder as
// <prefix>-<token><extension>.
struct NewFile {
  std::string prefix;     // "int8-g3", "calib-a1"
  std::string extension;  // ".pt", ".bin"
  StagedFile staged;
};

// Changes a copy of the current record (revision 0: the model is not
// stored). `files` are the base names given to the write's NewFiles, in
// order. An error aborts the write; the store is unchanged.
using Mutation = std::function<absl::Status(
    ModelRecord* record, const std::vector<std::string>& files)>;
// Hears a committed record (or, for Remove, the removal) in commit order.
// Must be quick and must not write to the store.
using CommitHook = std::function<void(const ModelRecord& committed)>;

struct UpdateOptions {
  // Non-empty: the record must still belong to this registration; NOT_FOUND
  // if the model is gone, ABORTED if it was registered anew.
  std::string registration_id;
  // Let the mutation replace an entry Scan found broken (registration);
  // otherwise the entry's error is returned.
  bool overwrite_broken = false;
  std::vector<NewFile> files;
  CommitHook on_commit;
  // When the disk refuses the manifest (full, read-only, I/O error), commit
  // in memory anyway and write it later (FlushPending): for a rollback,
  // which must take effect when it is needed most. The write returns OK.
  bool keep_in_memory_if_disk_fails = false;
};

class ModelStore {
 public:
  // Creates the folders if needed and clears staging/ and trash/.
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(
      const std::string& root);
  // Records in `metadata` (must outlive the store), artifacts under
  // `blobs` (created if needed).
  static absl::StatusOr<std::unique_ptr<ModelStore>> OpenShared(
      const std::string& root, MetadataStore* metadata,
      const std::string& blobs);
  ~ModelStore();

  const std::string& root() const { return root_; }
  bool shared() const { return manifests_ == nullptr; }

  // --- Shared stores ---------------------------------------------------
  // Applies other servers' commits from now on (after what Scan read):
  // `on_change(name)` runs on the watch's thread, outside the store's
  // locks, each time this store's copy of `name` changed (Get tells how).
  // Every `blob_grace / 4` (at most 10 minutes) collects blobs unreferenced
  // and older than `blob_grace`. REQUIRES: shared(), after Scan, once.
  void Follow(std::function<void(const std::string& name)> on_change,
              absl::Duration blob_grace);
  // Whether changes flow from the metadata store now.
  bool following() const;
  // Stops Follow's watch and collector: no `on_change` runs after it
  // returns. Idempotent; the destructor calls it.
  void StopFollowing();
  // Deletes blobs no record references whose last use is older than
  // `grace` (a writer adopts before it commits). Skipped while any record
  // is unreadable. Returns how many were deleted.
  size_t CollectBlobs(absl::Duration grace);

  // --- Staging: files on their way in ---------------------------------
  absl::StatusOr<std::unique_ptr<Upload>> BeginUpload();
  // A staged copy of bytes made in the server (a serialized set).
  absl::StatusOr<StagedFile> StageBytes(absl::string_view bytes);
  // Path of a staging file for a writer that saves by path (LibTorch).
  std::string NewStagingPath(const std::string& suffix) const;
  // fsyncs and checksums a file written at a staging path.
  absl::StatusOr<StagedFile> AdoptStagingFile(const std::string& path);

  // --- Reading -----------------------------------------------------------
  // Every record, sorted by name, its artifacts' checksums verified; deletes
  // files no record references (local) and sets aside folders whose
  // registration never committed. Shared: waits until the metadata store
  // answers. REQUIRES: called once, before any write.
  std::vector<StoredModel> Scan();
  // One record read again from the metadata store and its artifacts
  // verified (RepositoryModelLoad). NOT_FOUND if absent.
  StoredModel Read(const std::string& name);
  // The record as last committed, NOT_FOUND, or the entry's error. Shared:
  // as this server last heard of it (the watch lags other servers' writes
  // by milliseconds).
  absl::StatusOr<ModelRecord> Get(const std::string& name) const;
  // Get, after catching up with the shared store on `name` (one read of
  // it): what an operator acts on, so that a write through one server is
  // seen by the next request through another. Local stores: Get.
  absl::StatusOr<ModelRecord> GetLatest(const std::string& name);

  // --- Writing -------------------------------------------------------------
  // Commits `next` (for model next->name) if the model's current revision is
  // `expected_revision` (0: not stored, or broken). Sets next->revision and
  // the update time. ABORTED if the revision moved; storage errors.
  absl::Status CompareAndSwap(uint64_t expected_revision, ModelRecord* next,
                              const CommitHook& on_commit = nullptr,
                              bool keep_in_memory_if_disk_fails = false);
  // Writes the records committed in memory only (see UpdateOptions); those
  // the disk still refuses stay pending. Returns how many remain.
  size_t FlushPending();
  size_t pending() const;
  // Read-modify-write of one model's record through CompareAndSwap, retried
  // while other writers commit first. Adopts `options.files` first; on
  // failure they are deleted again. Returns the committed record.
  absl::StatusOr<ModelRecord> Update(const std::string& name,
                                     const Mutation& mutate,
                                     UpdateOptions options = {});
  // Removes the model folder (moved to trash/ atomically, then deleted).
  // NOT_FOUND if absent; with a registration id, ABORTED if the model was
  // registered anew. `on_removed` runs in commit order.
  absl::Status Remove(const std::string& name,
                      const std::string& registration_id = "",
                      const std::function<void()>& on_removed = nullptr);

  // --- Paths
  // ------------------------------------------------------------------
  std::string VariantPath(const std::string& model,
                          const VariantRecord& v) const;
  std::string CalibrationPath(const std::string& model,
                              const CalibrationRecord& c) const;
  // The folder for job records (jobs/).
  std::string JobsDir() const;

 private:
  explicit ModelStore(std::string root) : root_(std::move(root)) {}
  // Creates the root's folders and clears staging/ and trash/.
  static absl::Status PrepareRoot(const std::string& root);
  std::string ModelDir(const std::string& name) const;
  // The revision of `name`'s record as this store holds it (0: absent or
  // unreadable).
  uint64_t RevisionLocked(const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Where `model`'s artifacts live: its folder, or the shared blobs.
  std::string ArtifactDir(const std::string& model) const;
  // Marks damaged artifacts of `record` (checksums; each blob is verified
  // once: blobs never change).
  void Verify(ModelRecord* record);
  // Local: moves model folders without a manifest to orphans/.
  void SetAsideUncommittedFolders();
  // Local: deletes files in the model's folder `record` does not reference
  // (only safe before any write starts).
  void DeleteUnreferencedFiles(const ModelRecord& record);
  // Moves `file` into the model folder (or the blobs); returns the base
  // name.
  absl::StatusOr<std::string> Adopt(const std::string& model,
                                    const NewFile& file);

  // Shared mode (model_store_shared.cc).
  absl::StatusOr<std::string> AdoptBlob(const NewFile& file);
  void ApplyChanges(const std::vector<MetadataChange>& changes);
  uint64_t Resync();

  const std::string root_;
  // The records: `own_metadata_` (manifest files, then also `manifests_`)
  // or a shared store the caller owns.
  std::unique_ptr<MetadataStore> own_metadata_;
  ManifestMetadataStore* manifests_ = nullptr;
  MetadataStore* metadata_ = nullptr;
  // Serializes this server's commits (the one order of its writes); held
  // across the metadata store's write. Taken before mu_.
  absl::Mutex write_mu_;
  mutable absl::Mutex mu_;
  std::map<std::string, absl::StatusOr<ModelRecord>> records_
      ABSL_GUARDED_BY(mu_);

  // Shared mode only.
  std::string blobs_;
  uint64_t scanned_revision_ ABSL_GUARDED_BY(write_mu_) = 0;
  std::set<std::string> verified_blobs_ ABSL_GUARDED_BY(mu_);
  // Removed models: changes at or below this revision are stale.
  std::map<std::string, uint64_t> removed_at_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> on_change_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<MetadataWatch> watch_;
  absl::Mutex gc_mu_;
  bool stopping_ ABSL_GUARDED_BY(gc_mu_) = false;
  std::unique_ptr<std::thread> gc_thread_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_STORE_MODEL_STORE_H_
