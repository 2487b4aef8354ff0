#include "server/store/manifest_metadata_store.h"

#include <algorithm>
#include <deque>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/common/thread_name.h"

namespace twinserve {

constexpr char ManifestMetadataStore::kManifest[];

// Delivers the store's changes on its own thread, so that a listener may
// call back into the store. Changes the store made before the watch began
// are not kept: a watch from an older revision starts with a resync.
class ManifestMetadataStore::WatchImpl : public MetadataWatch {
 public:
  WatchImpl(ManifestMetadataStore* store, uint64_t after, bool resync_first,
            std::function<void(const std::vector<MetadataChange>&)> on_changes,
            std::function<uint64_t()> on_resync)
      : store_(store),
        after_(after),
        resync_first_(resync_first),
        on_changes_(std::move(on_changes)),
        on_resync_(std::move(on_resync)) {
    thread_ = std::thread([this] { Run(); });
  }

  ~WatchImpl() override {
    {
      absl::MutexLock lock(&store_->mu_);
      store_->watches_.erase(this);
    }
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  bool connected() const override { return true; }

  void Push(MetadataChange change) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(change));
  }

 private:
  void Run() {
    SetThreadName("ts-manifest-watch");
    uint64_t after = after_;
    if (resync_first_) after = on_resync_();
    for (;;) {
      std::vector<MetadataChange> batch;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || !queue_.empty();
        };
        mu_.Await(absl::Condition(&ready));
        if (stopping_) return;
        for (MetadataChange& c : queue_) {
          // What a resync listed already.
          if (c.revision > after) batch.push_back(std::move(c));
        }
        queue_.clear();
      }
      if (batch.empty()) continue;
      after = batch.back().revision;
      on_changes_(batch);
    }
  }

  ManifestMetadataStore* const store_;
  const uint64_t after_;
  const bool resync_first_;
  const std::function<void(const std::vector<MetadataChange>&)> on_changes_;
  const std::function<uint64_t()> on_resync_;
  absl::Mutex mu_;
  std::deque<MetadataChange> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

ManifestMetadataStore::ManifestMetadataStore(std::string models,
                                             std::string trash)
    : models_(std::move(models)), trash_(std::move(trash)) {}

ManifestMetadataStore::~ManifestMetadataStore() = default;

std::string ManifestMetadataStore::Describe() const {
  return absl::StrCat("manifest files in ", models_);
}

std::string ManifestMetadataStore::ModelDir(const std::string& name) const {
  return JoinPath(models_, name);
}

absl::StatusOr<ModelRecord> ManifestMetadataStore::ReadFolder(
    const std::string& name) const {
  const std::string dir = ModelDir(name);
  if (!PathExists(dir)) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not in the store"));
  }
  auto text = ReadFile(JoinPath(dir, kManifest));
  if (!text.ok()) {
    return absl::DataLossError(absl::StrCat(
        "partial store entry: ", kManifest, " is missing or unreadable (",
        text.status().message(), "); unregister the model to remove it"));
  }
  auto record = FromManifest(*text);
  if (!record.ok()) return record.status();
  if (record->name != name) {
    return absl::DataLossError(
        absl::StrCat("manifest names model '", record->name,
                     "' but lives in folder '", name, "'"));
  }
  return record;
}

void ManifestMetadataStore::NoteLocked(
    const std::string& name, const absl::StatusOr<ModelRecord>& record) {
  if (absl::IsNotFound(record.status())) {
    revisions_.erase(name);
    return;
  }
  const uint64_t revision = record.ok() ? record->revision : 0;
  revisions_[name] = revision;
  revision_ = std::max(revision_, revision);
}

absl::StatusOr<MetadataSnapshot> ManifestMetadataStore::ListLocked() {
  auto names = ListDir(models_);
  if (!names.ok()) return names.status();
  std::sort(names->begin(), names->end());
  MetadataSnapshot out;
  revisions_.clear();
  for (const std::string& name : *names) {
    auto d = deferred_.find(name);
    StoredModel m{name, d != deferred_.end() ? d->second : ReadFolder(name)};
    NoteLocked(name, m.record);
    out.models.push_back(std::move(m));
  }
  loaded_ = true;
  out.revision = revision_;
  return out;
}

absl::Status ManifestMetadataStore::LoadRevisionsLocked() {
  if (loaded_) return absl::OkStatus();
  return ListLocked().status();
}

absl::StatusOr<MetadataSnapshot> ManifestMetadataStore::List() {
  absl::MutexLock lock(&mu_);
  return ListLocked();
}

absl::StatusOr<ModelRecord> ManifestMetadataStore::Read(
    const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (auto d = deferred_.find(name); d != deferred_.end()) return d->second;
  absl::StatusOr<ModelRecord> record = ReadFolder(name);
  NoteLocked(name, record);
  return record;
}

absl::StatusOr<CommitResult> ManifestMetadataStore::Commit(
    const ModelRecord& record, uint64_t expected,
    const CommitOptions& options) {
  absl::MutexLock lock(&mu_);
  absl::Status st = LoadRevisionsLocked();
  if (!st.ok()) return st;
  auto it = revisions_.find(record.name);
  const uint64_t current = it == revisions_.end() ? 0 : it->second;
  if (current != expected) {
    return absl::AbortedError(
        absl::StrCat("model '", record.name, "' changed meanwhile (revision ",
                     current, ", expected ", expected, ")"));
  }
  ModelRecord committed = record;
  committed.revision = revision_ + 1;
  const std::string dir = ModelDir(record.name);
  st = MakeDirs(dir);
  bool renamed = false;
  if (st.ok()) {
    st = WriteFileAtomically(JoinPath(dir, kManifest), ToManifest(committed),
                             &renamed);
  }
  if (!st.ok() && !renamed) {
    if (!options.defer_if_refused) return st;
    TS_LOG(ERROR) << "store: the disk refused " << record.name << "'s record ("
                  << st
                  << "); it takes effect in memory and is written when the "
                     "disk accepts it";
    deferred_.insert_or_assign(record.name, committed);
  } else {
    deferred_.erase(record.name);  // this write carries the deferred state
    if (!st.ok()) {
      TS_LOG(WARNING) << "store: " << record.name
                      << " written, but not yet durable: " << st;
    }
  }
  deferred_count_ = deferred_.size();
  revision_ = committed.revision;
  revisions_[record.name] = revision_;
  MetadataChange change;
  change.name = record.name;
  change.revision = revision_;
  change.record = committed;
  Publish(std::move(change));
  return CommitResult{revision_, /*durable=*/st.ok()};
}

absl::Status ManifestMetadataStore::Delete(const std::string& name,
                                           uint64_t expected) {
  absl::MutexLock lock(&mu_);
  absl::Status st = LoadRevisionsLocked();
  if (!st.ok()) return st;
  auto it = revisions_.find(name);
  if (it == revisions_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not registered"));
  }
  if (it->second != expected) {
    return absl::AbortedError(
        absl::StrCat("model '", name, "' changed meanwhile; not removed"));
  }
  const std::string dir = ModelDir(name);
  if (PathExists(dir)) {
    const std::string trash = JoinPath(trash_, name + "." + RandomToken());
    bool renamed = false;
    st = DurableRename(dir, trash, &renamed);
    if (!renamed) return st;         // else gone now, durably or not
    RemoveAll(trash).IgnoreError();  // gone either way; trash is cleared
  }
  revisions_.erase(it);
  deferred_.erase(name);
  deferred_count_ = deferred_.size();
  MetadataChange change;
  change.name = name;
  change.revision = ++revision_;
  change.removed = true;
  Publish(std::move(change));
  return absl::OkStatus();
}

size_t ManifestMetadataStore::FlushPending() {
  if (deferred_count_.load() == 0) return 0;
  absl::MutexLock lock(&mu_);
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    const std::string dir = ModelDir(it->first);
    bool renamed = false;
    absl::Status st = MakeDirs(dir);
    if (st.ok()) {
      st = WriteFileAtomically(JoinPath(dir, kManifest), ToManifest(it->second),
                               &renamed);
    }
    if (renamed) {
      TS_LOG(INFO) << "store: " << it->first
                   << "'s record, committed in memory, is written now"
                   << (st.ok() ? "" : " (not yet synced)");
      it = deferred_.erase(it);
    } else {
      ++it;
    }
  }
  deferred_count_ = deferred_.size();
  return deferred_.size();
}

size_t ManifestMetadataStore::pending() const { return deferred_count_.load(); }

void ManifestMetadataStore::Publish(MetadataChange change) {
  for (WatchImpl* w : watches_) w->Push(change);
}

std::unique_ptr<MetadataWatch> ManifestMetadataStore::Watch(
    uint64_t after,
    std::function<void(const std::vector<MetadataChange>&)> on_changes,
    std::function<uint64_t()> on_resync) {
  absl::MutexLock lock(&mu_);
  // Past changes are not kept: a watch from before them, or from before a
  // listing that failed, begins by listing again.
  const bool loaded = LoadRevisionsLocked().ok();
  auto w =
      std::make_unique<WatchImpl>(this, after, !loaded || after < revision_,
                                  std::move(on_changes), std::move(on_resync));
  watches_.insert(w.get());
  return w;
}

}  // namespace twinserve
