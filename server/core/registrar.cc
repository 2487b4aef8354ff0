#include "server/core/registrar.h"

#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/common/names.h"
#include "server/common/status_macros.h"
#include "server/traffic/history.h"
#include "server/traffic/plan.h"

namespace twinserve {
namespace {

// Deletes a staged upload that is still in staging/ when the write ends:
// one the store adopted has moved into the model folder already.
struct StagedFileCleanup {
  const std::string path;
  ~StagedFileCleanup() { RemoveAll(path).IgnoreError(); }
};

std::string NewRegistrationId() {
  return absl::StrCat("r", NowUnixMs(), "-", RandomToken().substr(0, 8));
}

// NOT_FOUND for a mutation that needs the model to exist.
absl::Status MustExist(const ModelRecord& r) {
  if (r.revision == 0) {
    return absl::NotFoundError(
        absl::StrCat("model '", r.name, "' is not registered"));
  }
  return absl::OkStatus();
}

// The record of a new registration of `args` over `previous` (revision 0:
// none), referencing `fp32_file`; `kept` receives the name under which the
// previous fp32 keeps serving, if it does.
absl::Status NewRegistration(const RegisterArgs& args, const StagedFile& staged,
                             const std::string& fp32_file, ModelRecord* record,
                             std::string* kept) {
  const ModelRecord previous = *record;
  const bool replacing = previous.revision != 0;
  if (replacing && !args.replace) {
    return absl::AlreadyExistsError(
        absl::StrCat("model '", args.name,
                     "' is already registered; set replace to register a "
                     "new generation"));
  }
  ModelRecord next;
  next.name = args.name;
  next.registration_id = NewRegistrationId();
  next.revision = previous.revision;
  next.description = args.description;
  next.signature = args.signature;
  next.generation = replacing ? previous.generation + 1 : 1;
  if (replacing) {
    next.created_unix_ms = previous.created_unix_ms;
    // Samples stay valid while the inputs do.
    if (SameInputs(previous.signature, args.signature)) {
      next.calibration_sets = previous.calibration_sets;
    }
  }
  kept->clear();
  if (replacing && args.keep_previous &&
      previous.variants.count(kFp32Variant)) {
    *kept = KeptGenerationName(previous.generation);
    next.variants[*kept] = previous.variants.at(kFp32Variant);
  }
  VariantRecord fp32;
  fp32.file = fp32_file;
  fp32.sha256 = staged.sha256;
  fp32.bytes = staged.bytes;
  fp32.created_unix_ms = NowUnixMs();
  next.variants[kFp32Variant] = fp32;

  // Batching: as asked, else kept from the previous generation while its
  // signature allows it.
  BatchingPolicy batching;
  if (args.batching.has_value()) {
    batching.defaults = *args.batching;
    TS_RETURN_IF_ERROR(ValidateBatching(args.signature, &batching.defaults));
  } else if (replacing && !previous.batching_json.empty()) {
    auto b = BatchingPolicyFromJson(previous.batching_json);
    if (b.ok() &&
        (!b->defaults.enabled() || CheckBatchable(args.signature).ok())) {
      batching = *b;
    }
  }
  next.batching_json = BatchingPolicyToJson(batching);
  // A new registration's plan, or none: an older one's job can no longer
  // publish into this registration.

  // A new generation starts pinned to its fp32 (or to the kept one, which
  // keeps the traffic); the history goes on.
  TrafficPolicy current;
  std::vector<PolicyChange> history;
  if (replacing) {
    if (auto p = PolicyFromJson(previous.policy_json); p.ok()) current = *p;
    if (auto h = HistoryFromJson(previous.policy_history_json); h.ok()) {
      history = *h;
    }
  }
  if (current.version > 0 || !history.empty() || !kept->empty()) {
    TrafficPolicy reset;
    std::string reason =
        absl::StrCat("generation ", next.generation, " registered");
    if (!kept->empty()) {
      reset.baseline = *kept;
      absl::StrAppend(&reason, " beside ", *kept, ", which keeps the traffic");
    }
    reset = ApplyChange(current, reset, "reset", "registry", reason,
                        NowUnixMs(), &history);
    next.policy_json = PolicyToJson(reset);
    next.policy_history_json = HistoryToJson(history);
  }
  if (args.plan.has_value()) {
    TrafficPlan plan = *args.plan;
    plan.base_version = 0;
    if (auto p = PolicyFromJson(next.policy_json);
        p.ok() && !next.policy_json.empty()) {
      plan.base_version = p->version;
    }
    next.pending_plan_json = PlanToJson(plan);
  }
  *record = std::move(next);
  return absl::OkStatus();
}

}  // namespace

Registrar::Registrar(ModelStore* store, ModelRegistry* registry,
                     ResourceLimits limits)
    : store_(store), registry_(registry), limits_(limits) {}

absl::Status Registrar::CheckRoomForModel(const std::string& name) const {
  if (registry_->Get(name).ok()) return absl::OkStatus();
  const size_t models = registry_->List().size();
  if (limits_.max_models > 0 &&
      models >= static_cast<size_t>(limits_.max_models)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(models, " models are registered, the limit (--max_models=",
                     limits_.max_models, "); unregister one first"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status RoomForVariant(const ModelRecord& r, const std::string& variant,
                            int limit) {
  if (limit > 0 && !r.variants.count(variant) &&
      r.variants.size() >= static_cast<size_t>(limit)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("model '", r.name, "' has ", r.variants.size(),
                     " variants, the limit (--max_variants=", limit,
                     "); remove one or replace an existing name"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Registrar::CheckRoomForVariant(const ModelRecord& record,
                                            const std::string& variant) const {
  return RoomForVariant(record, variant, limits_.max_variants);
}

absl::StatusOr<ModelStatus> Registrar::Register(const RegisterArgs& args,
                                                const StagedFile& file) {
  StagedFileCleanup cleanup{file.path};
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  TS_RETURN_IF_ERROR(ValidateName(args.name));
  TS_RETURN_IF_ERROR(ValidateSignature(args.signature));
  if (file.bytes == 0) {
    return absl::InvalidArgumentError("the uploaded model file is empty");
  }
  TS_RETURN_IF_ERROR(CheckRoomForModel(args.name));
  if (args.batching.has_value()) {
    BatchingConfig check = *args.batching;
    TS_RETURN_IF_ERROR(ValidateBatching(args.signature, &check));
  }
  // Load and check before anything is stored: a model that cannot serve is
  // refused with nothing written.
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Runner> loaded,
                      Runner::Load(file.path, args.signature,
                                   registry_->OptionsFor(kFp32Variant)));
  std::shared_ptr<const Runner> runner = std::move(loaded);

  std::string kept;
  UpdateOptions options;
  options.overwrite_broken = true;  // a broken entry is replaced, not refused
  options.files = {{kFp32Variant, ".pt", file}};
  options.on_commit = [&](const ModelRecord& committed) {
    registry_->ApplyRegistration(committed, runner, kept);
  };
  auto committed = store_->Update(
      args.name,
      [&](ModelRecord* r, const std::vector<std::string>& files) {
        // A broken entry (revision 0) counts as absent only when replacing.
        if (r->revision == 0 && !args.replace &&
            registry_->Get(args.name).ok()) {
          return absl::AlreadyExistsError(
              absl::StrCat("model '", args.name,
                           "' is already registered; set replace to "
                           "register a new generation"));
        }
        return NewRegistration(args, file, files[0], r, &kept);
      },
      options);
  if (!committed.ok()) {
    TS_LOG(WARNING) << "registration of '" << args.name
                    << "' refused: " << committed.status();
    return committed.status();
  }
  return registry_->Get(args.name);
}

absl::StatusOr<ModelStatus> Registrar::RegisterVariant(
    const std::string& name, const std::string& variant,
    const StagedFile& file) {
  StagedFileCleanup cleanup{file.path};
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  if (variant == kFp32Variant) {
    return absl::InvalidArgumentError(
        "variant 'fp32' is the model itself; register it without a variant");
  }
  TS_RETURN_IF_ERROR(ValidateName(variant, "variant name"));
  TS_ASSIGN_OR_RETURN(ModelRecord record, store_->GetLatest(name));
  TS_RETURN_IF_ERROR(RoomForVariant(record, variant, limits_.max_variants));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Runner> runner,
                      Runner::Load(file.path, record.signature,
                                   registry_->OptionsFor(variant)));
  VariantRecord extra;
  extra.parameter_bytes = runner->parameter_bytes();
  TS_RETURN_IF_ERROR(PublishVariant(name, record.registration_id, variant, file,
                                    extra, std::move(runner)));
  return registry_->Get(name);
}

absl::Status Registrar::PublishVariant(
    const std::string& name, const std::string& registration_id,
    const std::string& variant, const StagedFile& file, VariantRecord extra,
    std::unique_ptr<Runner> runner, const std::string& plan_id) {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  std::shared_ptr<const Runner> shared = std::move(runner);
  std::optional<TrafficPlan> applied;
  std::string plan_note;
  UpdateOptions options;
  options.registration_id = registration_id;
  options.files = {{variant, ".pt", file}};
  options.on_commit = [&](const ModelRecord& committed) {
    registry_->ApplyVariant(committed, variant, shared);
    if (applied.has_value()) {
      registry_->RecordPolicyChange(name, "plan", applied->author);
    }
  };
  auto committed = store_->Update(
      name,
      [&](ModelRecord* r, const std::vector<std::string>& files) {
        TS_RETURN_IF_ERROR(RoomForVariant(*r, variant, limits_.max_variants));
        VariantRecord v = extra;
        v.file = files[0];
        v.sha256 = file.sha256;
        v.bytes = file.bytes;
        v.created_unix_ms = NowUnixMs();
        r->variants[variant] = v;
        applied.reset();
        plan_note.clear();
        if (plan_id.empty() || r->pending_plan_json.empty()) {
          return absl::OkStatus();
        }
        auto plan = PlanFromJson(r->pending_plan_json);
        if (plan.ok() && (plan->id != plan_id || plan->variant != variant)) {
          return absl::OkStatus();  // another job's plan
        }
        r->pending_plan_json.clear();
        if (!plan.ok()) {
          plan_note = std::string(plan.status().message());
          return absl::OkStatus();
        }
        std::set<std::string> names;
        for (const auto& [n, unused] : r->variants) names.insert(n);
        if (absl::Status st = ValidatePolicy(plan->policy, names); !st.ok()) {
          plan_note = std::string(st.message());
          return absl::OkStatus();
        }
        TrafficPolicy current;
        std::vector<PolicyChange> history;
        if (auto p = PolicyFromJson(r->policy_json);
            p.ok() && !r->policy_json.empty()) {
          current = *p;
        }
        if (current.version != plan->base_version) {
          plan_note = absl::StrCat(
              "the traffic policy moved since the registration (version ",
              plan->base_version, " -> ", current.version,
              "): the operator's change stands");
          return absl::OkStatus();
        }
        if (auto h = HistoryFromJson(r->policy_history_json);
            h.ok() && !r->policy_history_json.empty()) {
          history = *h;
        }
        const TrafficPolicy written = ApplyChange(
            current, plan->policy, "plan", plan->author,
            absl::StrCat("registration plan: ", variant, " is ready"),
            NowUnixMs(), &history);
        r->policy_json = PolicyToJson(written);
        r->policy_history_json = HistoryToJson(history);
        applied = *plan;
        return absl::OkStatus();
      },
      options);
  if (!committed.ok()) return committed.status();
  if (applied.has_value()) {
    TS_LOG(INFO) << "traffic plan of " << name << " applied: " << variant
                 << " is ready";
  } else if (!plan_note.empty()) {
    TS_LOG(WARNING) << "traffic plan of " << name
                    << " dropped, not applied: " << plan_note;
  }
  return absl::OkStatus();
}

void Registrar::DropPlan(const std::string& name, const std::string& plan_id,
                         const std::string& why) {
  UpdateOptions options;
  options.on_commit = [&](const ModelRecord& committed) {
    registry_->ApplyRecord(committed);
  };
  bool dropped = false;
  auto committed = store_->Update(
      name,
      [&](ModelRecord* r, const std::vector<std::string>&) -> absl::Status {
        dropped = false;
        if (r->revision == 0 || r->pending_plan_json.empty()) {
          return absl::CancelledError("no plan");  // nothing to write
        }
        if (!plan_id.empty()) {
          auto plan = PlanFromJson(r->pending_plan_json);
          if (plan.ok() && plan->id != plan_id) {
            return absl::CancelledError("another plan");
          }
        }
        r->pending_plan_json.clear();
        dropped = true;
        return absl::OkStatus();
      },
      options);
  if (committed.ok() && dropped) {
    TS_LOG(WARNING) << "traffic plan of " << name << " dropped: " << why;
  } else if (!committed.ok() && !absl::IsCancelled(committed.status())) {
    TS_LOG(WARNING) << "traffic plan of " << name
                    << " could not be dropped: " << committed.status();
  }
}

void Registrar::DropAllPlans(const std::string& why) {
  for (const ModelStatus& m : registry_->List()) {
    auto record = store_->Get(m.name);
    if (record.ok() && !record->pending_plan_json.empty()) {
      DropPlan(m.name, "", why);
    }
  }
}

absl::Status Registrar::Unregister(const std::string& name) {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  return store_->Remove(name, "", [&] { registry_->ApplyRemoval(name); });
}

absl::StatusOr<CalibrationRecord> Registrar::PutCalibrationSet(
    const std::string& name, const std::string& set, const StagedFile& file,
    CalibrationRecord meta, bool replace) {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  UpdateOptions options;
  options.files = {{"calib-" + set, ".bin", file}};
  options.on_commit = [&](const ModelRecord& committed) {
    registry_->ApplyRecord(committed);
  };
  TS_ASSIGN_OR_RETURN(
      ModelRecord committed,
      store_->Update(
          name,
          [&](ModelRecord* r, const std::vector<std::string>& files) {
            TS_RETURN_IF_ERROR(MustExist(*r));
            if (r->calibration_sets.count(set) && !replace) {
              return absl::AlreadyExistsError(absl::StrCat(
                  "model '", name, "' already has a calibration set '", set,
                  "'; set replace to overwrite it"));
            }
            if (limits_.max_calibration_sets > 0 &&
                !r->calibration_sets.count(set) &&
                r->calibration_sets.size() >=
                    static_cast<size_t>(limits_.max_calibration_sets)) {
              return absl::ResourceExhaustedError(absl::StrCat(
                  "model '", name, "' has ", r->calibration_sets.size(),
                  " calibration sets, the limit "
                  "(--max_calibration_sets=",
                  limits_.max_calibration_sets, "); delete one first"));
            }
            CalibrationRecord c = meta;
            c.file = files[0];
            c.sha256 = file.sha256;
            c.bytes = file.bytes;
            c.created_unix_ms = NowUnixMs();
            r->calibration_sets[set] = c;
            return absl::OkStatus();
          },
          options));
  return committed.calibration_sets.at(set);
}

absl::Status Registrar::DeleteCalibrationSet(const std::string& name,
                                             const std::string& set) {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  UpdateOptions options;
  options.on_commit = [&](const ModelRecord& committed) {
    registry_->ApplyRecord(committed);
  };
  return store_
      ->Update(
          name,
          [&](ModelRecord* r, const std::vector<std::string>&) {
            TS_RETURN_IF_ERROR(MustExist(*r));
            if (r->calibration_sets.erase(set) == 0) {
              return absl::NotFoundError(absl::StrCat(
                  "model '", name, "' has no calibration set '", set, "'"));
            }
            return absl::OkStatus();
          },
          options)
      .status();
}

}  // namespace twinserve
