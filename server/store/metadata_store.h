// MetadataStore: where a ModelStore keeps its model records. Two
// implementations:
// - ManifestMetadataStore (manifest_metadata_store.h), the default: one
//   manifest file per model in the server's own folder, beside the model's
//   artifacts. One server writes it.
// - EtcdMetadataStore (server/cluster/etcd_metadata_store.h): records in
//   etcd that several servers share; their artifacts are content-addressed
//   files in a folder every server sees (model_store.h).
//
// The contract a ModelStore relies on:
// - Commit and Delete are compare-and-set on the record's revision: they
//   take effect only if the stored revision is still `expected`, else
//   ABORTED. Revisions grow with every write of any writer of the store.
// - A store that cannot be reached answers UNAVAILABLE, and a write that
//   answered UNAVAILABLE may or may not have happened (the watch tells).
// - Watch delivers every change of any writer, own writes included, in
//   revision order, after the revision List returned.
// - A record is in effect once Commit returns it: reads return it. Whether
//   it also survives a crash is `CommitResult::durable`.
#ifndef TWINSERVE_SERVER_STORE_METADATA_STORE_H_
#define TWINSERVE_SERVER_STORE_METADATA_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace twinserve {

// One record as stored, or why it is unusable (DATA_LOSS).
struct StoredModel {
  std::string name;
  absl::StatusOr<ModelRecord> record;
};

struct MetadataSnapshot {
  std::vector<StoredModel> models;  // sorted by name
  uint64_t revision = 0;            // the store's revision they were read at
};

// A change seen by a watch: the record as committed at `revision`, or its
// removal.
struct MetadataChange {
  std::string name;
  uint64_t revision = 0;
  bool removed = false;
  absl::StatusOr<ModelRecord> record = absl::UnknownError("unset");
};

struct CommitOptions {
  // When the store cannot write the record now (a local disk full,
  // read-only or failing), commit it in memory and write it later
  // (FlushPending) instead of failing: for a rollback, which must take
  // effect when it is needed most. Stores that cannot hold a write back
  // (etcd: other servers would not see it) ignore this and fail.
  bool defer_if_refused = false;
};

struct CommitResult {
  uint64_t revision = 0;
  // False: in effect, but it might not survive a crash yet (written but
  // not yet synced, or deferred). The previous record's artifacts must
  // then stay until a restart tells which one survived.
  bool durable = true;
};

class MetadataWatch {
 public:
  virtual ~MetadataWatch() = default;
  // Whether changes flow now (false while the store is unreachable).
  virtual bool connected() const = 0;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // For logs and status: "etcd 127.0.0.1:2379 prefix /twinserve/".
  virtual std::string Describe() const = 0;

  virtual absl::StatusOr<MetadataSnapshot> List() = 0;
  // NOT_FOUND if absent.
  virtual absl::StatusOr<ModelRecord> Read(const std::string& name) = 0;
  // Stores `record` (for record.name) if the stored revision is `expected`
  // (0: absent) and returns the new revision (the record's `revision` field
  // is ignored).
  virtual absl::StatusOr<CommitResult> Commit(const ModelRecord& record,
                                              uint64_t expected,
                                              const CommitOptions& options) = 0;
  // Removes the record if its revision is `expected`; `expected` 0 removes
  // an unreadable one (DATA_LOSS: it has no revision to name). NOT_FOUND if
  // absent.
  virtual absl::Status Delete(const std::string& name, uint64_t expected) = 0;

  // Writes the commits deferred by CommitOptions::defer_if_refused; those
  // still refused stay deferred. Returns how many remain.
  virtual size_t FlushPending() { return 0; }
  virtual size_t pending() const { return 0; }

  // Calls `on_changes` (from a thread of the store's) for every change
  // after revision `after`; `on_resync` when changes were lost (the store
  // forgot them): the caller lists again and returns that list's revision.
  virtual std::unique_ptr<MetadataWatch> Watch(
      uint64_t after,
      std::function<void(const std::vector<MetadataChange>&)> on_changes,
      std::function<uint64_t()> on_resync) = 0;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_STORE_METADATA_STORE_H_
