#include "server/core/registry.h"

#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/logging.h"
#include "server/core/status_macros.h"

namespace twinserve {
namespace {

absl::Status ValidateSpecs(const std::vector<TensorSpec>& specs,
                           const char* kind) {
  if (specs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the registration declares no ", kind, "s"));
  }
  std::set<std::string> names;
  for (const TensorSpec& s : specs) {
    TS_RETURN_IF_ERROR(ValidateSpec(s));
    if (!names.insert(s.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " name '", s.name, "' is declared twice"));
    }
  }
  return absl::OkStatus();
}

bool SameInputs(const Signature& a, const Signature& b) {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    if (a.inputs[i].name != b.inputs[i].name ||
        a.inputs[i].dtype != b.inputs[i].dtype ||
        a.inputs[i].shape != b.inputs[i].shape) {
      return false;
    }
  }
  return true;
}

// Deletes a staged upload unless the store took it (keep = true).
struct StagedFileCleanup {
  const std::string path;
  bool keep = false;
  ~StagedFileCleanup() {
    if (!keep) RemoveAll(path).IgnoreError();
  }
};

}  // namespace

// Ends a BeginChange when it goes out of scope.
class ModelRegistry::ChangeGuard {
 public:
  ChangeGuard(ModelRegistry* registry, std::string name)
      : registry_(registry), name_(std::move(name)) {}
  ~ChangeGuard() { registry_->EndChange(name_); }

 private:
  ModelRegistry* const registry_;
  const std::string name_;
};

const char* VariantStateName(VariantState state) {
  switch (state) {
    case VariantState::kLoading:
      return "LOADING";
    case VariantState::kCalibrating:
      return "CALIBRATING";
    case VariantState::kQuantizing:
      return "QUANTIZING";
    case VariantState::kReady:
      return "READY";
    case VariantState::kFailed:
      return "FAILED";
    case VariantState::kUnloading:
      return "UNLOADING";
    case VariantState::kUnloaded:
      return "UNLOADED";
  }
  return "UNKNOWN";
}

ModelRegistry::ModelRegistry(ModelStore* store, RunnerOptions runner_options,
                             Metrics* metrics)
    : store_(store), runner_options_(runner_options), metrics_(metrics) {}

RunnerOptions ModelRegistry::OptionsFor(const std::string& variant) const {
  RunnerOptions o = runner_options_;
  // Derived variants are saved frozen (quantized modules are finalized);
  // the FP32 optimization passes do not apply to them.
  if (variant != kFp32Variant && variant.rfind("fp32-g", 0) != 0) {
    o.optimize = false;
  }
  return o;
}

absl::Status ModelRegistry::BeginChange(const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (!changing_.insert(name).second) {
    return absl::AbortedError(absl::StrCat(
        "another change to model '", name,
        "' (register, unregister, load or unload) is in progress; retry"));
  }
  return absl::OkStatus();
}

void ModelRegistry::EndChange(const std::string& name) {
  absl::MutexLock lock(&mu_);
  changing_.erase(name);
}

void ModelRegistry::LoadStoredModels() {
  for (StoredModel& m : store_->Scan()) {
    LoadEntry(m.name, std::move(m.record));
  }
}

absl::StatusOr<ServableHandle> ModelRegistry::LoadVariant(
    const ModelRecord& record, const std::string& variant,
    std::shared_ptr<VariantStats> stats) const {
  const VariantRecord& vr = record.variants.at(variant);
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Runner> runner,
                      Runner::Load(store_->VariantPath(record.name, vr),
                                   record.signature, OptionsFor(variant)));
  auto servable = std::make_shared<Servable>();
  servable->model = record.name;
  servable->variant = variant;
  servable->generation = record.generation;
  servable->runner = std::move(runner);
  servable->stats = std::move(stats);
  return ServableHandle(std::move(servable));
}

void ModelRegistry::LoadEntry(const std::string& name,
                              absl::StatusOr<ModelRecord> record) {
  std::map<std::string, std::shared_ptr<VariantStats>> stats;
  {
    absl::MutexLock lock(&mu_);
    Entry& e = models_[name];
    e.record = record;
    e.unloaded = false;
    if (record.ok()) LoadPolicy(*record, &e);
    if (record.ok()) {
      std::map<std::string, VariantSlot> slots;
      for (const auto& [v, vr] : record->variants) {
        VariantSlot slot;
        if (auto it = e.variants.find(v); it != e.variants.end()) {
          slot.stats = it->second.stats;  // statistics survive reloads
        }
        slot.state = VariantState::kLoading;
        stats[v] = slot.stats;
        slots[v] = std::move(slot);
      }
      e.variants = std::move(slots);
    } else {
      e.variants.clear();
    }
  }
  if (!record.ok()) {
    TS_LOG(ERROR) << "model '" << name
                  << "' cannot be served: " << record.status().message();
    return;
  }
  for (const auto& [v, vr] : record->variants) {
    auto servable = LoadVariant(*record, v, stats[v]);
    absl::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return;  // unregistered meanwhile
    VariantSlot& slot = it->second.variants[v];
    if (servable.ok()) {
      slot.state = VariantState::kReady;
      slot.servable = std::move(*servable);
      slot.last_error.clear();
      ApplyBatchingLocked(&it->second);
      TS_LOG(INFO) << "loaded " << name << ":" << v << " (generation "
                   << record->generation << ", "
                   << slot.servable->runner->execution_path() << ")";
    } else {
      slot.state = VariantState::kFailed;
      slot.servable.reset();
      slot.last_error = std::string(servable.status().message());
      TS_LOG(ERROR) << "model '" << name << "' variant " << v
                    << " failed to load: " << slot.last_error;
    }
  }
}

absl::StatusOr<ModelStatus> ModelRegistry::Register(const RegisterArgs& args,
                                                    const StagedFile& file) {
  StagedFileCleanup cleanup{file.path};

  TS_RETURN_IF_ERROR(ValidateModelName(args.name));
  TS_RETURN_IF_ERROR(ValidateSpecs(args.signature.inputs, "input"));
  TS_RETURN_IF_ERROR(ValidateSpecs(args.signature.outputs, "output"));
  if (file.bytes == 0) {
    return absl::InvalidArgumentError("the uploaded model file is empty");
  }
  TS_RETURN_IF_ERROR(BeginChange(args.name));
  ChangeGuard change_guard(this, args.name);

  ModelRecord record;
  std::shared_ptr<VariantStats> stats = std::make_shared<VariantStats>();
  // The previous generation's fp32, when it stays beside the new one.
  std::string kept_name;
  VariantRecord kept_record;
  ServableHandle kept_servable;
  std::shared_ptr<VariantStats> kept_stats;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(args.name);
    if (it != models_.end()) {
      if (!args.replace) {
        return absl::AlreadyExistsError(
            absl::StrCat("model '", args.name,
                         "' is already registered; set replace to register "
                         "a new generation"));
      }
      if (it->second.record.ok()) {
        record.created_unix_ms = it->second.record->created_unix_ms;
        record.generation = it->second.record->generation;
        record.policy_json = it->second.record->policy_json;
        record.policy_history_json = it->second.record->policy_history_json;
        record.batching_json = it->second.record->batching_json;
        // Samples stay valid while the inputs do.
        const Signature& old = it->second.record->signature;
        if (SameInputs(old, args.signature)) {
          record.calibration_sets = it->second.record->calibration_sets;
        }
      }
      if (auto v = it->second.variants.find(kFp32Variant);
          v != it->second.variants.end()) {
        stats = v->second.stats;
        if (args.keep_previous && it->second.record.ok() &&
            v->second.servable != nullptr &&
            it->second.record->variants.count(kFp32Variant)) {
          kept_name = absl::StrCat("fp32-g", it->second.record->generation);
          kept_record = it->second.record->variants.at(kFp32Variant);
          kept_servable = v->second.servable;
          kept_stats = v->second.stats;
          stats = std::make_shared<VariantStats>();
        }
      }
    }
  }
  record.name = args.name;
  record.description = args.description;
  record.signature = args.signature;
  record.generation += 1;
  {
    BatchingPolicy batching;
    if (args.batching.has_value()) {
      batching.defaults = *args.batching;
      TS_RETURN_IF_ERROR(ValidateBatching(args.signature, &batching.defaults));
    } else if (!record.batching_json.empty()) {
      // Kept from the previous generation while its signature allows it.
      auto previous = BatchingPolicyFromJson(record.batching_json);
      if (previous.ok() && (!previous->defaults.enabled() ||
                            CheckBatchable(args.signature).ok())) {
        batching = *previous;
      }
    }
    record.batching_json = BatchingPolicyToJson(batching);
  }

  // Load and check before anything is stored: a model that cannot serve is
  // refused with nothing written.
  auto runner = Runner::Load(file.path, args.signature, runner_options_);
  if (!runner.ok()) return runner.status();

  // A new generation starts pinned to its fp32 variant; the history goes on.
  {
    Entry previous;
    LoadPolicy(record, &previous);
    TrafficPolicy reset;
    reset.version = previous.policy.version + 1;
    reset.updated_unix_ms = NowUnixMs();
    reset.author = "registry";
    reset.reason =
        absl::StrCat("generation ", record.generation, " registered");
    if (!kept_name.empty()) {
      // Traffic stays on the generation that served until now.
      reset.baseline = kept_name;
      absl::StrAppend(&reset.reason, " beside ", kept_name,
                      ", which keeps the traffic");
    }
    if (previous.policy.version > 0 || !previous.history.empty() ||
        !kept_name.empty()) {
      previous.history.push_back({reset.version, reset.updated_unix_ms, "reset",
                                  "registry", reset.reason, reset});
      record.policy_json = PolicyToJson(reset);
      record.policy_history_json = HistoryToJson(previous.history);
    }
  }
  std::map<std::string, VariantRecord> keep;
  if (!kept_name.empty()) keep[kept_name] = kept_record;
  TS_RETURN_IF_ERROR(store_->PutModel(&record, kFp32Variant, file, keep));
  cleanup.keep = true;

  auto servable = std::make_shared<Servable>();
  servable->model = record.name;
  servable->variant = kFp32Variant;
  servable->generation = record.generation;
  servable->runner = std::move(*runner);
  servable->stats = stats;

  absl::MutexLock lock(&mu_);
  Entry& e = models_[args.name];
  e.record = record;
  e.unloaded = false;
  LoadPolicy(record, &e);
  e.variants.clear();
  VariantSlot& slot = e.variants[kFp32Variant];
  slot.state = VariantState::kReady;
  slot.servable = std::move(servable);
  slot.stats = stats;
  if (!kept_name.empty()) {
    // Same runner, named as the generation it is.
    auto old = std::make_shared<Servable>();
    old->model = args.name;
    old->variant = kept_name;
    old->generation = record.generation;
    old->runner = kept_servable->runner;
    old->stats = kept_stats;
    VariantSlot& k = e.variants[kept_name];
    k.state = VariantState::kReady;
    k.servable = std::move(old);
    k.stats = kept_stats;
  }
  ApplyBatchingLocked(&e);
  TS_LOG(INFO) << "registered " << args.name << " generation "
               << record.generation << " ("
               << slot.servable->runner->execution_path() << ")";
  return StatusLocked(args.name, e);
}

absl::Status ModelRegistry::Unregister(const std::string& name) {
  TS_RETURN_IF_ERROR(BeginChange(name));
  ChangeGuard change_guard(this, name);
  {
    absl::MutexLock lock(&mu_);
    if (!models_.count(name)) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not registered"));
    }
  }
  TS_RETURN_IF_ERROR(store_->RemoveModel(name));
  absl::MutexLock lock(&mu_);
  models_.erase(name);  // in-flight requests keep their handles
  TS_LOG(INFO) << "unregistered " << name;
  return absl::OkStatus();
}

absl::Status ModelRegistry::Unload(const std::string& name) {
  TS_RETURN_IF_ERROR(BeginChange(name));
  ChangeGuard change_guard(this, name);
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not registered"));
  }
  it->second.unloaded = true;
  for (auto& [v, slot] : it->second.variants) {
    slot.state = VariantState::kUnloaded;
    slot.servable.reset();
  }
  TS_LOG(INFO) << "unloaded " << name;
  return absl::OkStatus();
}

absl::Status ModelRegistry::Load(const std::string& name) {
  TS_RETURN_IF_ERROR(ValidateModelName(name));
  TS_RETURN_IF_ERROR(BeginChange(name));
  ChangeGuard change_guard(this, name);
  StoredModel stored = store_->Read(name);
  if (absl::IsNotFound(stored.record.status())) return stored.record.status();
  LoadEntry(name, stored.record);
  TS_ASSIGN_OR_RETURN(ModelStatus status, Get(name));
  if (status.state != VariantState::kReady) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", name, "' did not load: ", status.last_error));
  }
  return absl::OkStatus();
}

ModelStatus ModelRegistry::StatusLocked(const std::string& name,
                                        const Entry& e) const {
  ModelStatus s;
  s.name = name;
  if (!e.record.ok()) {
    s.state = VariantState::kFailed;
    s.last_error = std::string(e.record.status().message());
    return s;
  }
  const ModelRecord& r = *e.record;
  s.description = r.description;
  s.signature = r.signature;
  s.created_unix_ms = r.created_unix_ms;
  s.updated_unix_ms = r.updated_unix_ms;
  s.generation = r.generation;
  s.state = e.unloaded ? VariantState::kUnloaded : VariantState::kReady;
  s.batching = e.batching;
  for (const auto& [v, slot] : e.variants) {
    VariantStatus vs;
    vs.name = v;
    vs.batching = e.batching.For(v);
    vs.state = slot.state;
    vs.last_error = slot.last_error;
    vs.pending = slot.pending;
    if (slot.servable) {
      vs.parameter_bytes = slot.servable->runner->parameter_bytes();
      vs.execution_path = slot.servable->runner->execution_path();
    }
    if (auto it = r.variants.find(v); it != r.variants.end()) {
      vs.serialized_bytes = it->second.bytes;
      vs.sha256 = it->second.sha256;
      vs.created_unix_ms = it->second.created_unix_ms;
      if (it->second.parameter_bytes > 0) {
        vs.parameter_bytes = it->second.parameter_bytes;
      }
    }
    if (slot.state == VariantState::kFailed && !slot.pending) {
      s.state = VariantState::kFailed;
      s.last_error = absl::StrCat(v, ": ", slot.last_error);
    } else if (slot.state == VariantState::kLoading &&
               s.state == VariantState::kReady) {
      s.state = VariantState::kLoading;
    }
    s.variants.push_back(std::move(vs));
  }
  return s;
}

std::vector<ModelStatus> ModelRegistry::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ModelStatus> out;
  for (const auto& [name, e] : models_) out.push_back(StatusLocked(name, e));
  return out;
}

absl::StatusOr<ModelStatus> ModelRegistry::Get(const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
  return StatusLocked(name, (*e));
}

absl::StatusOr<ServableHandle> ModelRegistry::Acquire(
    const std::string& name, const std::string& version,
    absl::string_view routing_key) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not registered"));
  }
  const Entry& e = it->second;
  if (!e.record.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "model '", name, "' is unavailable: ", e.record.status().message()));
  }
  std::string variant = version;
  if (variant.empty()) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const double u = (rng() >> 11) * (1.0 / 9007199254740992.0);
    variant = ChooseVariant(e.policy, routing_key, u);
    // A chosen variant that cannot serve falls back to the baseline, then
    // to fp32: a policy never turns requests away that fp32 could answer.
    for (const std::string& fallback :
         {e.policy.baseline, std::string(kFp32Variant)}) {
      auto v = e.variants.find(variant);
      if (v != e.variants.end() && v->second.state == VariantState::kReady) {
        break;
      }
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
  if (v->second.state != VariantState::kReady) {
    return absl::UnavailableError(absl::StrCat(
        "model '", name, "' version '", variant, "' is ",
        VariantStateName(v->second.state),
        v->second.last_error.empty() ? "" : ": ", v->second.last_error));
  }
  return v->second.servable;
}

ModelRegistry::Comparison ModelRegistry::CompareFor(
    const std::string& name, const std::string& served) const {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const double u = (rng() >> 11) * (1.0 / 9007199254740992.0);
  absl::ReaderMutexLock lock(&mu_);
  Comparison c;
  auto it = models_.find(name);
  if (it == models_.end()) return c;
  const Entry& e = it->second;
  std::string other;
  if (!ShouldCompare(e.policy, served, u, &other)) return c;
  auto v = e.variants.find(other);
  if (v == e.variants.end() || v->second.state != VariantState::kReady) {
    return c;
  }
  c.run = v->second.servable;
  c.candidate = e.policy.candidate;
  c.served_is_baseline = served == e.policy.baseline;
  return c;
}

void ModelRegistry::ApplyBatchingLocked(Entry* e) {
  for (auto& [v, slot] : e->variants) {
    if (slot.servable == nullptr) continue;
    const BatchingConfig& c = e->batching.For(v);
    if (slot.servable->batching != nullptr && *slot.servable->batching == c) {
      continue;
    }
    auto copy = std::make_shared<Servable>(*slot.servable);
    copy->batching = std::make_shared<const BatchingConfig>(c);
    slot.servable = std::move(copy);
  }
}

void ModelRegistry::LoadPolicy(const ModelRecord& record, Entry* e) {
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

absl::StatusOr<TrafficPolicy> ModelRegistry::SetPolicy(
    const std::string& name, TrafficPolicy policy, const std::string& action,
    const std::string& actor, const std::string& reason) {
  TS_RETURN_IF_ERROR(BeginChange(name));
  ChangeGuard change_guard(this, name);
  ModelRecord record;
  std::vector<PolicyChange> history;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not registered"));
    }
    if (!it->second.record.ok()) return it->second.record.status();
    std::set<std::string> ready;
    for (const auto& [v, slot] : it->second.variants) {
      if (slot.state == VariantState::kReady) ready.insert(v);
    }
    TS_RETURN_IF_ERROR(ValidatePolicy(policy, ready));
    record = *it->second.record;
    history = it->second.history;
    policy.version = it->second.policy.version + 1;
  }
  policy.updated_unix_ms = NowUnixMs();
  policy.author = actor;
  policy.reason = reason;
  history.push_back(
      {policy.version, policy.updated_unix_ms, action, actor, reason, policy});
  // Bounded: the last 200 changes are kept.
  if (history.size() > 200) history.erase(history.begin());
  TS_RETURN_IF_ERROR(
      store_->PutPolicy(&record, PolicyToJson(policy), HistoryToJson(history)));
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return absl::AbortedError("model removed meanwhile");
  it->second.record = record;
  it->second.policy = policy;
  it->second.history = std::move(history);
  if (metrics_ != nullptr) {
    // Label by who acted, not the free-text reason: bounded cardinality.
    metrics_->RecordPolicyChange(
        name, action, actor.rfind("guard:", 0) == 0 ? actor : "operator");
  }
  TS_LOG(INFO) << "traffic policy of " << name << " v" << policy.version << " ("
               << action << " by " << actor
               << "): " << PolicyKindName(policy.kind) << " baseline "
               << policy.baseline;
  return policy;
}

absl::StatusOr<BatchingPolicy> ModelRegistry::SetBatching(
    const std::string& name, const std::string& variant, BatchingConfig config,
    bool clear) {
  TS_RETURN_IF_ERROR(BeginChange(name));
  ChangeGuard change_guard(this, name);
  ModelRecord record;
  BatchingPolicy batching;
  {
    absl::ReaderMutexLock lock(&mu_);
    TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
    if (!e->record.ok()) return e->record.status();
    if (!variant.empty() && !e->variants.count(variant)) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' has no version '", variant, "'"));
    }
    record = *e->record;
    batching = e->batching;
  }
  if (clear) {
    if (variant.empty()) {
      batching.defaults = BatchingConfig();
    } else {
      batching.per_variant.erase(variant);
    }
  } else {
    TS_RETURN_IF_ERROR(ValidateBatching(record.signature, &config));
    if (variant.empty()) {
      batching.defaults = config;
    } else {
      batching.per_variant[variant] = config;
    }
  }
  TS_RETURN_IF_ERROR(
      store_->PutBatching(&record, BatchingPolicyToJson(batching)));
  absl::MutexLock lock(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return absl::AbortedError("model removed meanwhile");
  it->second.record = record;
  it->second.batching = batching;
  ApplyBatchingLocked(&it->second);
  TS_LOG(INFO) << "batching of " << name << ":"
               << (variant.empty() ? "*" : variant) << " is now max_batch_size "
               << batching.For(variant).max_batch_size << ", delay "
               << batching.For(variant).max_queue_delay_us << " us";
  return batching;
}

absl::StatusOr<const ModelRegistry::Entry*> ModelRegistry::FindLocked(
    const std::string& name) const {
  auto it = models_.find(name);
  if (it == models_.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not registered"));
  }
  return &it->second;
}

absl::StatusOr<TrafficPolicy> ModelRegistry::GetPolicy(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
  return (*e).policy;
}

absl::StatusOr<std::vector<PolicyChange>> ModelRegistry::PolicyHistory(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
  return (*e).history;
}

absl::StatusOr<TrafficPolicy> ModelRegistry::Promote(
    const std::string& name, const std::string& variant,
    const std::string& actor, const std::string& reason) {
  TrafficPolicy p;
  p.kind = PolicyKind::kPinned;
  p.baseline = variant;
  return SetPolicy(name, p, "promote", actor, reason);
}

absl::StatusOr<TrafficPolicy> ModelRegistry::Rollback(
    const std::string& name, const std::string& actor,
    const std::string& reason) {
  TrafficPolicy previous;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(
          absl::StrCat("model '", name, "' is not registered"));
    }
    const auto& h = it->second.history;
    if (h.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model '", name, "' has no earlier traffic policy to roll back to"));
    }
    if (h.size() == 1) {
      previous = TrafficPolicy();  // the default: pinned to fp32
    } else {
      previous = h[h.size() - 2].policy;
    }
  }
  return SetPolicy(name, previous, "rollback", actor, reason);
}

absl::StatusOr<ModelStatus> ModelRegistry::RegisterVariant(
    const std::string& name, const std::string& variant,
    const StagedFile& file) {
  StagedFileCleanup cleanup{file.path};
  if (variant == kFp32Variant) {
    return absl::InvalidArgumentError(
        "variant 'fp32' is the model itself; register it without a variant");
  }
  TS_RETURN_IF_ERROR(ValidateModelName(variant));
  TS_RETURN_IF_ERROR(BeginChange(name));
  ChangeGuard change_guard(this, name);
  TS_ASSIGN_OR_RETURN(ModelRecord record, GetRecord(name));
  TS_ASSIGN_OR_RETURN(
      std::unique_ptr<Runner> runner,
      Runner::Load(file.path, record.signature, OptionsFor(variant)));
  VariantRecord extra;
  extra.parameter_bytes = runner->parameter_bytes();
  TS_RETURN_IF_ERROR(store_->PutVariant(&record, variant, file, extra));
  cleanup.keep = true;
  TS_RETURN_IF_ERROR(PublishVariant(record, variant, std::move(runner)));
  return Get(name);
}

absl::StatusOr<ModelRecord> ModelRegistry::GetRecord(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
  return (*e).record;
}

absl::StatusOr<ModelRegistry::Entry*> ModelRegistry::SameGenerationLocked(
    const ModelRecord& record) {
  auto it = models_.find(record.name);
  if (it == models_.end() || !it->second.record.ok() ||
      it->second.record->generation != record.generation) {
    return absl::AbortedError(absl::StrCat(
        "model '", record.name, "' was replaced or removed meanwhile"));
  }
  return &it->second;
}

absl::Status ModelRegistry::UpdateRecord(const ModelRecord& record) {
  absl::MutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(Entry * e, SameGenerationLocked(record));
  e->record = record;
  return absl::OkStatus();
}

absl::Status ModelRegistry::PublishVariant(const ModelRecord& record,
                                           const std::string& variant,
                                           std::unique_ptr<Runner> runner) {
  absl::MutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(Entry * e, SameGenerationLocked(record));
  e->record = record;
  VariantSlot& slot = e->variants[variant];
  auto servable = std::make_shared<Servable>();
  servable->model = record.name;
  servable->variant = variant;
  servable->generation = record.generation;
  servable->runner = std::move(runner);
  servable->stats = slot.stats;
  slot.servable = std::move(servable);  // old one lives on in its handles
  slot.state = e->unloaded ? VariantState::kUnloaded : VariantState::kReady;
  slot.last_error.clear();
  slot.pending = false;
  ApplyBatchingLocked(e);
  TS_LOG(INFO) << "published " << record.name << ":" << variant;
  return absl::OkStatus();
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
  if (!v->second.servable) it->second.variants.erase(v);
}

std::vector<ModelRegistry::StatsEntry> ModelRegistry::Stats(
    const std::string& model, const std::string& variant) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<StatsEntry> out;
  for (const auto& [name, e] : models_) {
    if (!model.empty() && name != model) continue;
    for (const auto& [v, slot] : e.variants) {
      if (!variant.empty() && v != variant) continue;
      out.push_back({name, v, slot.stats->Snapshot()});
    }
  }
  return out;
}

}  // namespace twinserve
