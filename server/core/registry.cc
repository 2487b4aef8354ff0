#include "server/core/registry.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/traffic/router.h"

namespace twinserve {
namespace {

absl::Status NotRegistered(const std::string& name) {
  return absl::NotFoundError(
      absl::StrCat("model '", name, "' is not registered"));
}

const std::vector<double>& JobSecondsBounds() {
  static const auto* b =
      new std::vector<double>{1, 5, 10, 30, 60, 120, 300, 600, 1800};
  return *b;
}

}  // namespace

ModelRegistry::ModelRegistry(ModelStore* store, SchedulerFactory* schedulers,
                             RunnerOptions runner_options)
    : store_(store), schedulers_(schedulers), runner_options_(runner_options) {}

ModelRegistry::~ModelRegistry() = default;

RunnerOptions ModelRegistry::OptionsFor(const std::string& variant) const {
  RunnerOptions o = runner_options_;
  // Derived variants are saved frozen (quantized modules are finalized);
  // the FP32 optimization passes do not apply to them.
  if (!IsFp32Variant(variant)) o.optimize = false;
  return o;
}

absl::Status ModelRegistry::CheckWritable() const {
  if (!loaded_) {
    return absl::UnavailableError(
        "the server is still loading its stored models; retry shortly");
  }
  return absl::OkStatus();
}

void ModelRegistry::LoadStoredModels() {
  for (StoredModel& m : store_->Scan()) LoadEntry(m.name, std::move(m.record));
  loaded_ = true;
}

ServableHandle ModelRegistry::MakeServable(
    const ModelRecord& record, const std::string& variant,
    std::shared_ptr<const Runner> runner, std::shared_ptr<VariantStats> stats,
    const BatchingConfig& batching) const {
  auto s = std::make_shared<Servable>();
  s->model = record.name;
  s->variant = variant;
  s->registration_id = record.registration_id;
  s->generation = record.generation;
  s->runner = std::move(runner);
  s->stats = std::move(stats);
  s->batching = batching;
  s->scheduler = schedulers_->Make(
      absl::StrCat("model '", record.name, "' version '", variant, "'"),
      s->runner, s->stats, batching);
  return s;
}

void ModelRegistry::ParseRecordLocked(const ModelRecord& record, Entry* e) {
  e->policy = TrafficPolicy();
  e->history.clear();
  e->batching = BatchingPolicy();
  // A part that does not parse falls back to its default, loudly: the
  // model still serves (pinned to fp32 at worst).
  auto complain = [&](const char* what, const absl::Status& st) {
    TS_LOG(ERROR) << "model " << record.name << ": stored " << what
                  << " is unreadable, using the default: " << st;
  };
  if (!record.batching_json.empty()) {
    auto b = BatchingPolicyFromJson(record.batching_json);
    if (b.ok()) {
      e->batching = *b;
    } else {
      complain("batching", b.status());
    }
  }
  if (!record.policy_json.empty()) {
    auto p = PolicyFromJson(record.policy_json);
    if (p.ok()) {
      e->policy = *p;
    } else {
      complain("traffic policy", p.status());
    }
  }
  if (!record.policy_history_json.empty()) {
    auto h = HistoryFromJson(record.policy_history_json);
    if (h.ok()) {
      e->history = *h;
    } else {
      complain("policy history", h.status());
    }
  }
}

void ModelRegistry::ApplyBatchingLocked(Entry* e) {
  if (!e->record.ok()) return;
  for (auto& [v, slot] : e->variants) {
    if (slot.servable == nullptr) continue;
    const BatchingConfig& c = e->batching.For(v);
    if (slot.servable->batching == c) continue;
    slot.servable =
        MakeServable(*e->record, v, slot.servable->runner, slot.stats, c);
  }
}

void ModelRegistry::LoadEntry(const std::string& name,
                              absl::StatusOr<ModelRecord> record) {
  if (!record.ok()) {
    TS_LOG(ERROR) << "model '" << name
                  << "' cannot be served: " << record.status().message();
    absl::MutexLock lock(&mu_);
    Entry& e = models_[name];
    e.record = record.status();
    e.variants.clear();
    return;
  }
  std::vector<std::string> to_load;
  {
    absl::MutexLock lock(&mu_);
    Entry& e = models_[name];
    const bool same_registration =
        e.record.ok() && e.record->registration_id == record->registration_id;
    std::map<std::string, VariantSlot> slots;
    for (const auto& [v, vr] : record->variants) {
      auto it = e.variants.find(v);
      const bool unchanged =
          same_registration && !e.unloaded && it != e.variants.end() &&
          it->second.servable != nullptr && e.record->variants.count(v) &&
          e.record->variants.at(v).sha256 == vr.sha256 && vr.damage.empty();
      VariantSlot slot;
      if (unchanged) {
        slot = it->second;
      } else {
        if (it != e.variants.end()) {
          slot.stats = it->second.stats;  // statistics survive reloads
          slot.pending = it->second.pending;
        }
        to_load.push_back(v);
      }
      slots[v] = std::move(slot);
    }
    // A variant a job is making here is not in the record yet.
    for (auto& [v, slot] : e.variants) {
      if (slot.pending && !slots.count(v)) slots[v] = std::move(slot);
    }
    e.unloaded = false;
    e.variants = std::move(slots);
    e.record = *record;
    ParseRecordLocked(*record, &e);
    ApplyBatchingLocked(&e);
  }
  for (const std::string& v : to_load) {
    const VariantRecord& vr = record->variants.at(v);
    auto runner =
        vr.damage.empty()
            ? Runner::Load(store_->VariantPath(name, vr), record->signature,
                           OptionsFor(v))
            : absl::StatusOr<std::unique_ptr<Runner>>(absl::DataLossError(
                  absl::StrCat("its stored file is damaged: ", vr.damage)));
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    // Removed, registered anew or given another artifact meanwhile: what was
    // loaded is stale.
    if (it == models_.end() || !it->second.record.ok() ||
        it->second.record->registration_id != record->registration_id) {
      return;
    }
    Entry& e = it->second;
    auto now = e.record->variants.find(v);
    if (now == e.record->variants.end() || now->second.sha256 != vr.sha256) {
      continue;
    }
    VariantSlot& slot = e.variants[v];
    if (runner.ok()) {
      slot.state = e.unloaded ? VariantState::kUnloaded : VariantState::kReady;
      slot.last_error.clear();
      slot.servable = MakeServable(
          *e.record, v, std::shared_ptr<const Runner>(std::move(*runner)),
          slot.stats, e.batching.For(v));
      TS_LOG(INFO) << "loaded " << name << ":" << v << " (generation "
                   << record->generation << ", "
                   << slot.servable->runner->execution_path() << ")";
    } else {
      slot.state = VariantState::kFailed;
      slot.servable.reset();
      slot.last_error = std::string(runner.status().message());
      TS_LOG(ERROR) << "model '" << name << "' variant " << v
                    << " failed to load: " << slot.last_error;
    }
  }
}

void ModelRegistry::Converge(const std::string& name) {
  absl::StatusOr<ModelRecord> record = store_->Get(name);
  if (absl::IsNotFound(record.status())) {
    bool present;
    {
      absl::MutexLock lock(&mu_);
      present = models_.count(name) > 0;
    }
    if (present) ApplyRemoval(name);
    return;
  }
  LoadEntry(name, std::move(record));
}

absl::Status ModelRegistry::Load(const std::string& name) {
  TS_RETURN_IF_ERROR(CheckWritable());
  StoredModel stored = store_->Read(name);
  // A shared store out of reach changes nothing here: what serves, serves.
  if (absl::IsNotFound(stored.record.status()) ||
      absl::IsUnavailable(stored.record.status())) {
    return stored.record.status();
  }
  // The store's view after the read: a newer commit its watch applied
  // meanwhile (and so told Converge of) wins over what this read saw.
  absl::StatusOr<ModelRecord> latest = store_->Get(name);
  if (absl::IsNotFound(latest.status())) return latest.status();
  LoadEntry(name, std::move(latest));
  TS_ASSIGN_OR_RETURN(ModelStatus status, Get(name));
  if (status.state != VariantState::kReady) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", name, "' did not load: ", status.last_error));
  }
  return absl::OkStatus();
}

absl::Status ModelRegistry::Unload(const std::string& name) {
  TS_RETURN_IF_ERROR(CheckWritable());
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotRegistered(name);
  it->second.unloaded = true;
  for (auto& [v, slot] : it->second.variants) {
    slot.state = VariantState::kUnloaded;
    slot.servable.reset();  // in-flight requests keep their handles
  }
  TS_LOG(INFO) << "unloaded " << name;
  return absl::OkStatus();
}

void ModelRegistry::ApplyRegistration(const ModelRecord& committed,
                                      std::shared_ptr<const Runner> runner,
                                      const std::string& kept) {
  absl::MutexLock lock(&mu_);
  Entry& e = models_[committed.name];
  // Statistics of fp32 go on with the new generation, unless the previous
  // one keeps serving beside it: then they stay with it.
  std::shared_ptr<VariantStats> fp32_stats = std::make_shared<VariantStats>();
  ServableHandle previous;
  std::shared_ptr<VariantStats> previous_stats;
  if (auto it = e.variants.find(kFp32Variant); it != e.variants.end()) {
    previous = it->second.servable;
    previous_stats = it->second.stats;
    if (kept.empty()) fp32_stats = previous_stats;
  }
  e.record = committed;
  e.unloaded = false;
  ParseRecordLocked(committed, &e);
  e.variants.clear();
  VariantSlot& slot = e.variants[kFp32Variant];
  slot.state = VariantState::kReady;
  slot.stats = fp32_stats;
  slot.servable = MakeServable(committed, kFp32Variant, std::move(runner),
                               fp32_stats, e.batching.For(kFp32Variant));
  if (!kept.empty() && previous != nullptr) {
    VariantSlot& k = e.variants[kept];
    k.state = VariantState::kReady;
    k.stats = previous_stats;
    k.servable = MakeServable(committed, kept, previous->runner, previous_stats,
                              e.batching.For(kept));
  }
  TS_LOG(INFO) << "registered " << committed.name << " generation "
               << committed.generation << " ("
               << slot.servable->runner->execution_path() << ")";
}

void ModelRegistry::ApplyVariant(const ModelRecord& committed,
                                 const std::string& variant,
                                 std::shared_ptr<const Runner> runner) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(committed.name);
  if (it == models_.end()) return;  // the store's order makes this unreachable
  Entry& e = it->second;
  e.record = committed;
  ParseRecordLocked(committed, &e);
  VariantSlot& slot = e.variants[variant];
  slot.servable = MakeServable(committed, variant, std::move(runner),
                               slot.stats, e.batching.For(variant));
  slot.state = e.unloaded ? VariantState::kUnloaded : VariantState::kReady;
  if (e.unloaded) slot.servable.reset();
  slot.last_error.clear();
  slot.pending = false;
  ApplyBatchingLocked(&e);
  TS_LOG(INFO) << "published " << committed.name << ":" << variant;
}

void ModelRegistry::ApplyRecord(const ModelRecord& committed) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(committed.name);
  if (it == models_.end()) return;
  Entry& e = it->second;
  e.record = committed;
  ParseRecordLocked(committed, &e);
  ApplyBatchingLocked(&e);
}

void ModelRegistry::ApplyRemoval(const std::string& name) {
  absl::MutexLock lock(&mu_);
  models_.erase(name);  // in-flight requests keep their handles
  TS_LOG(INFO) << "unregistered " << name;
}

void ModelRegistry::RecordPolicyChange(const std::string& name,
                                       const std::string& action,
                                       const std::string& actor) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  ModelEvents& ev = it->second.events;
  ev.policy_changes[action]++;
  if (action == "rollback") {
    ev.rollbacks[actor.rfind("guard:", 0) == 0 ? actor : "operator"]++;
  }
}

void ModelRegistry::RecordJob(const std::string& name,
                              const std::string& outcome, double seconds) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  it->second.events.jobs[outcome]++;
  if (it->second.job_seconds == nullptr) {
    it->second.job_seconds =
        std::make_shared<LiveHistogram>(JobSecondsBounds());
  }
  it->second.job_seconds->Observe(seconds);
}

void ModelRegistry::MarkVariantPending(const std::string& name,
                                       const std::string& variant,
                                       VariantState state) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  VariantSlot& slot = it->second.variants[variant];
  slot.pending = true;
  if (!slot.servable) slot.state = state;
}

void ModelRegistry::ClearVariantPending(const std::string& name,
                                        const std::string& variant) {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return;
  auto v = it->second.variants.find(variant);
  if (v == it->second.variants.end()) return;
  v->second.pending = false;
  if (!v->second.servable && v->second.state != VariantState::kFailed &&
      v->second.state != VariantState::kUnloaded) {
    it->second.variants.erase(v);
  }
}

absl::StatusOr<Acquired> ModelRegistry::Acquire(
    const std::string& name, const std::string& version,
    absl::string_view routing_key) const {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t draw = rng();
  absl::ReaderMutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    if (!loaded_) {
      return absl::UnavailableError(
          absl::StrCat("model '", name,
                       "' is not loaded yet: the server is still loading "
                       "its stored models"));
    }
    return NotRegistered(name);
  }
  const Entry& e = it->second;
  if (!e.record.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "model '", name, "' is unavailable: ", e.record.status().message()));
  }
  auto ready = [&](const std::string& v) {
    auto s = e.variants.find(v);
    return s != e.variants.end() && s->second.state == VariantState::kReady &&
           s->second.servable != nullptr;
  };
  Acquired out;
  std::string variant = version;
  Route route;
  if (variant.empty()) {
    route = Decide(e.policy, routing_key, draw);
    variant = route.served;
    // A chosen variant that cannot serve falls back to the baseline, then
    // to fp32: a policy never turns requests away that fp32 could answer.
    for (const std::string& fallback :
         {e.policy.baseline, std::string(kFp32Variant)}) {
      if (ready(variant)) break;
      variant = fallback;
    }
  }
  auto v = e.variants.find(variant);
  if (v == e.variants.end()) {
    std::vector<std::string> names;
    for (const auto& [n, slot] : e.variants) names.push_back(n);
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' has no version '", variant,
                     "' (versions: ", absl::StrJoin(names, ", "), ")"));
  }
  if (!ready(variant)) {
    return absl::UnavailableError(absl::StrCat(
        "model '", name, "' version '", variant, "' is ",
        VariantStateName(v->second.state),
        v->second.last_error.empty() ? "" : ": ", v->second.last_error));
  }
  out.served = v->second.servable;
  // The comparison is part of the same decision: only when the policy's
  // choice served (no fallback) and the other side can run.
  if (!route.compare.empty() && variant == route.served &&
      ready(route.compare)) {
    out.comparison = e.variants.at(route.compare).servable;
    out.served_is_baseline = route.served_is_baseline;
  }
  return out;
}

}  // namespace twinserve
