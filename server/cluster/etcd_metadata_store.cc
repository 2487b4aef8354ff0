#include "server/cluster/etcd_metadata_store.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace twinserve {

namespace {

class Watch : public MetadataWatch {
 public:
  explicit Watch(std::unique_ptr<EtcdWatch> w) : w_(std::move(w)) {}
  bool connected() const override { return w_->connected(); }

 private:
  std::unique_ptr<EtcdWatch> w_;
};

}  // namespace

EtcdMetadataStore::EtcdMetadataStore(EtcdClient* client, std::string prefix)
    : client_(client), models_prefix_(std::move(prefix) + "models/") {}

std::string EtcdMetadataStore::Describe() const {
  return absl::StrCat("etcd ", client_->options().endpoints, " keys ",
                      models_prefix_);
}

std::string EtcdMetadataStore::Key(const std::string& name) const {
  return models_prefix_ + name;
}

absl::StatusOr<ModelRecord> EtcdMetadataStore::Parse(
    const std::string& name, const EtcdKeyValue& kv) const {
  auto record = FromManifest(kv.value);
  if (!record.ok()) return record.status();
  if (record->name != name) {
    return absl::DataLossError(absl::StrCat("etcd key ", kv.key,
                                            " holds the record of model '",
                                            record->name, "'"));
  }
  record->revision = kv.mod_revision;
  return record;
}

absl::StatusOr<MetadataSnapshot> EtcdMetadataStore::List() {
  auto snap = client_->List(models_prefix_);
  if (!snap.ok()) return snap.status();
  MetadataSnapshot out;
  out.revision = snap->revision;
  for (const EtcdKeyValue& kv : snap->kvs) {
    std::string name = kv.key.substr(models_prefix_.size());
    out.models.push_back(StoredModel{name, Parse(name, kv)});
  }
  return out;
}

absl::StatusOr<ModelRecord> EtcdMetadataStore::Read(const std::string& name) {
  auto kv = client_->Get(Key(name));
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not in the store"));
  }
  return Parse(name, **kv);
}

absl::StatusOr<CommitResult> EtcdMetadataStore::Commit(
    const ModelRecord& record, uint64_t expected, const CommitOptions&) {
  auto rev = client_->PutIf(Key(record.name), ToManifest(record),
                            static_cast<int64_t>(expected));
  if (!rev.ok()) {
    if (absl::IsAborted(rev.status())) {
      return absl::AbortedError(absl::StrCat(
          "model '", record.name,
          "' changed meanwhile (another writer committed after revision ",
          expected, ")"));
    }
    return rev.status();
  }
  // etcd answers once a quorum has the write on disk.
  return CommitResult{static_cast<uint64_t>(*rev), /*durable=*/true};
}

absl::Status EtcdMetadataStore::Delete(const std::string& name,
                                       uint64_t expected) {
  if (expected == 0) {
    // An unreadable record: compare against the revision it has now, and
    // leave one that turned readable meanwhile to the caller's re-read.
    auto kv = client_->Get(Key(name));
    if (!kv.ok()) return kv.status();
    if (!kv->has_value()) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not registered"));
    }
    if (Parse(name, **kv).ok()) {
      return absl::AbortedError(
          absl::StrCat("model '", name, "' changed meanwhile; not removed"));
    }
    expected = static_cast<uint64_t>((*kv)->mod_revision);
  }
  absl::Status st =
      client_->DeleteIf(Key(name), static_cast<int64_t>(expected));
  if (absl::IsAborted(st)) {
    return absl::AbortedError(
        absl::StrCat("model '", name, "' changed meanwhile; not removed"));
  }
  if (absl::IsNotFound(st)) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not registered"));
  }
  return st;
}

std::unique_ptr<MetadataWatch> EtcdMetadataStore::Watch(
    uint64_t after,
    std::function<void(const std::vector<MetadataChange>&)> on_changes,
    std::function<uint64_t()> on_resync) {
  auto w = client_->Watch(
      models_prefix_, static_cast<int64_t>(after),
      [this, on_changes](const std::vector<EtcdEvent>& events) {
        std::vector<MetadataChange> changes;
        changes.reserve(events.size());
        for (const EtcdEvent& e : events) {
          MetadataChange c;
          c.name = e.kv.key.substr(models_prefix_.size());
          c.revision = static_cast<uint64_t>(e.kv.mod_revision);
          c.removed = e.deleted;
          if (!e.deleted) c.record = Parse(c.name, e.kv);
          changes.push_back(std::move(c));
        }
        on_changes(changes);
      },
      [on_resync] { return static_cast<int64_t>(on_resync()); });
  return std::make_unique<class Watch>(std::move(w));
}

}  // namespace twinserve
