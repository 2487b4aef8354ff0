// The registry's read side: statuses, views and statistics, all taken
// under the registry's reader lock.
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/core/registry.h"

namespace twinserve {

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
  s.registration_id = r.registration_id;
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

ModelView ModelRegistry::ViewLocked(const std::string& name,
                                    const Entry& e) const {
  ModelView view;
  view.status = StatusLocked(name, e);
  view.policy = e.policy;
  for (const auto& [v, slot] : e.variants) view.stats[v] = slot.stats;
  if (e.record.ok()) view.calibration_sets = e.record->calibration_sets;
  view.events = e.events;
  if (e.job_seconds != nullptr) {
    view.events.job_seconds = e.job_seconds->Snapshot();
  }
  return view;
}

absl::StatusOr<const ModelRegistry::Entry*> ModelRegistry::FindLocked(
    const std::string& name) const {
  auto it = models_.find(name);
  if (it == models_.end()) {
    if (!loaded_) return CheckWritable();
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not registered"));
  }
  return &it->second;
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
  return StatusLocked(name, *e);
}

absl::StatusOr<ModelView> ModelRegistry::View(const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
  return ViewLocked(name, *e);
}

std::vector<ModelView> ModelRegistry::Views() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ModelView> out;
  for (const auto& [name, e] : models_) out.push_back(ViewLocked(name, e));
  return out;
}

absl::StatusOr<TrafficPolicy> ModelRegistry::GetPolicy(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
  return e->policy;
}

absl::StatusOr<std::vector<PolicyChange>> ModelRegistry::PolicyHistory(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  TS_ASSIGN_OR_RETURN(const Entry* e, FindLocked(name));
  return e->history;
}

std::set<std::string> ModelRegistry::ReadyVariants(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  std::set<std::string> ready;
  auto it = models_.find(name);
  if (it == models_.end()) return ready;
  for (const auto& [v, slot] : it->second.variants) {
    if (slot.state == VariantState::kReady) ready.insert(v);
  }
  return ready;
}

std::vector<ModelRegistry::StatsEntry> ModelRegistry::Stats(
    const std::string& model, const std::string& variant) const {
  std::vector<std::pair<std::pair<std::string, std::string>,
                        std::shared_ptr<VariantStats>>>
      found;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [name, e] : models_) {
      if (!model.empty() && name != model) continue;
      for (const auto& [v, slot] : e.variants) {
        if (!variant.empty() && v != variant) continue;
        found.push_back({{name, v}, slot.stats});
      }
    }
  }
  std::vector<StatsEntry> out;
  for (const auto& [key, stats] : found) {
    out.push_back({key.first, key.second, stats->Snapshot()});
  }
  return out;
}

}  // namespace twinserve
