// ManifestMetadataStore: model records as manifest files in one server's
// own folder, the default store of a single machine:
//   <models>/<name>/manifest.json   the record (records.h ToManifest)
// The model's folder also holds its artifacts (ModelStore puts them there),
// so Delete removes the whole folder at once: one rename into <trash>.
//
// One writer: the folder belongs to one server process, so compare-and-set
// compares with what this object last read or wrote. Revisions count up from
// the highest found on disk; the first List (or the first write) reads them.
//
// Commit writes a temp file, fsyncs it, renames it over the manifest and
// fsyncs the folder. The rename is the commit point: if only the folder's
// fsync failed, the record is committed but not durable. If the disk
// refuses the write itself and CommitOptions::defer_if_refused is set, the
// record is committed in memory (reads return it) and written by
// FlushPending.
//
// Watch hears this store's own commits and removals (there is no other
// writer), on a thread of the watch's. Thread-safe; must outlive its
// watches.
#ifndef TWINSERVE_SERVER_STORE_MANIFEST_METADATA_STORE_H_
#define TWINSERVE_SERVER_STORE_MANIFEST_METADATA_STORE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/store/metadata_store.h"

namespace twinserve {

class ManifestMetadataStore : public MetadataStore {
 public:
  // The manifest's file name inside a model's folder.
  static constexpr char kManifest[] = "manifest.json";

  // Both folders must exist; `trash` must be on the same file system.
  ManifestMetadataStore(std::string models, std::string trash);
  ~ManifestMetadataStore() override;

  std::string Describe() const override;
  // Every model folder, a folder without a readable manifest as DATA_LOSS.
  absl::StatusOr<MetadataSnapshot> List() override;
  // The record in effect: a deferred one, else the manifest on disk.
  absl::StatusOr<ModelRecord> Read(const std::string& name) override;
  absl::StatusOr<CommitResult> Commit(const ModelRecord& record,
                                      uint64_t expected,
                                      const CommitOptions& options) override;
  absl::Status Delete(const std::string& name, uint64_t expected) override;
  std::unique_ptr<MetadataWatch> Watch(
      uint64_t after,
      std::function<void(const std::vector<MetadataChange>&)> on_changes,
      std::function<uint64_t()> on_resync) override;
  size_t FlushPending() override;
  size_t pending() const override;

  // The model's folder.
  std::string ModelDir(const std::string& name) const;

 private:
  class WatchImpl;

  // The record of one folder, or why it is unusable.
  absl::StatusOr<ModelRecord> ReadFolder(const std::string& name) const;
  // List, which also (re)learns every model's revision.
  absl::StatusOr<MetadataSnapshot> ListLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Learns the revisions once, before the first write.
  absl::Status LoadRevisionsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Remembers what a read found on disk (it may have been edited by hand).
  void NoteLocked(const std::string& name,
                  const absl::StatusOr<ModelRecord>& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(MetadataChange change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string models_;
  const std::string trash_;
  // Held across every disk write, so commits happen in revision order.
  mutable absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  // The highest revision committed or found on disk.
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // Each stored model's revision; 0 for an unreadable one.
  std::map<std::string, uint64_t> revisions_ ABSL_GUARDED_BY(mu_);
  // Records committed in memory only, with the revision they carry.
  std::map<std::string, ModelRecord> deferred_ ABSL_GUARDED_BY(mu_);
  // deferred_.size(), read without waiting for a write's fsync.
  std::atomic<size_t> deferred_count_{0};
  std::set<WatchImpl*> watches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_STORE_MANIFEST_METADATA_STORE_H_
