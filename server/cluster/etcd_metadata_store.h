// EtcdMetadataStore: model records in etcd, one key per model
// (<prefix>models/<name>, the record's manifest JSON as value), written by
// etcd transactions that compare the key's modification revision. A
// record's revision is that key's etcd modification revision.
#ifndef TWINSERVE_SERVER_CLUSTER_ETCD_METADATA_STORE_H_
#define TWINSERVE_SERVER_CLUSTER_ETCD_METADATA_STORE_H_

#include <memory>
#include <string>

#include "server/cluster/etcd_client.h"
#include "server/store/metadata_store.h"

namespace twinserve {

class EtcdMetadataStore : public MetadataStore {
 public:
  // `client` must outlive the store. `prefix` ends with '/'.
  EtcdMetadataStore(EtcdClient* client, std::string prefix);

  std::string Describe() const override;
  absl::StatusOr<MetadataSnapshot> List() override;
  absl::StatusOr<ModelRecord> Read(const std::string& name) override;
  absl::StatusOr<CommitResult> Commit(const ModelRecord& record,
                                      uint64_t expected,
                                      const CommitOptions& options) override;
  absl::Status Delete(const std::string& name, uint64_t expected) override;
  std::unique_ptr<MetadataWatch> Watch(
      uint64_t after,
      std::function<void(const std::vector<MetadataChange>&)> on_changes,
      std::function<uint64_t()> on_resync) override;

 private:
  std::string Key(const std::string& name) const;
  // The record in `kv`, or DATA_LOSS naming what is wrong.
  absl::StatusOr<ModelRecord> Parse(const std::string& name,
                                    const EtcdKeyValue& kv) const;

  EtcdClient* const client_;
  const std::string models_prefix_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CLUSTER_ETCD_METADATA_STORE_H_
