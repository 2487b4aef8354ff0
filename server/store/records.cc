#include "server/store/records.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/common/signature_json.h"
#include "server/common/status_macros.h"

namespace twinserve {
namespace {

using json = nlohmann::json;

constexpr int kFormat = 1;

// Names in a manifest become paths under the model's folder: a damaged or
// hand-edited manifest must not point the store at files outside it.
absl::Status CheckName(const std::string& name, const char* what) {
  absl::Status s = ValidateName(name, what);
  if (s.ok()) return s;
  return absl::DataLossError(absl::StrCat("manifest: ", s.message()));
}

}  // namespace

std::set<std::string> ReferencedFiles(const ModelRecord& r) {
  std::set<std::string> out;
  for (const auto& [v, vr] : r.variants) out.insert(vr.file);
  for (const auto& [c, cr] : r.calibration_sets) out.insert(cr.file);
  return out;
}

std::string ToManifest(const ModelRecord& r) {
  json j;
  j["format"] = kFormat;
  j["name"] = r.name;
  j["registration_id"] = r.registration_id;
  j["revision"] = r.revision;
  j["description"] = r.description;
  j["created_unix_ms"] = r.created_unix_ms;
  j["updated_unix_ms"] = r.updated_unix_ms;
  j["generation"] = r.generation;
  j["inputs"] = SpecsToJson(r.signature.inputs);
  j["outputs"] = SpecsToJson(r.signature.outputs);
  j["variants"] = json::object();
  for (const auto& [name, v] : r.variants) {
    j["variants"][name] = json{{"file", v.file},
                               {"sha256", v.sha256},
                               {"bytes", v.bytes},
                               {"created_unix_ms", v.created_unix_ms},
                               {"parameter_bytes", v.parameter_bytes},
                               {"report", v.report_json}};
  }
  j["policy"] = r.policy_json;
  j["policy_history"] = r.policy_history_json;
  j["batching"] = r.batching_json;
  if (!r.pending_plan_json.empty()) j["pending_plan"] = r.pending_plan_json;
  j["calibration_sets"] = json::object();
  for (const auto& [name, c] : r.calibration_sets) {
    j["calibration_sets"][name] =
        json{{"file", c.file},     {"sha256", c.sha256},
             {"bytes", c.bytes},   {"samples", c.samples},
             {"labels", c.labels}, {"created_unix_ms", c.created_unix_ms}};
  }
  return j.dump(2);
}

absl::StatusOr<ModelRecord> FromManifest(const std::string& text) {
  try {
    json j = json::parse(text);
    if (j.at("format").get<int>() != kFormat) {
      return absl::DataLossError(
          absl::StrCat("manifest format ", j.at("format").dump(),
                       " is not supported by this server"));
    }
    ModelRecord r;
    r.name = j.at("name").get<std::string>();
    TS_RETURN_IF_ERROR(CheckName(r.name, "model name"));
    r.description = j.value("description", "");
    r.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    r.updated_unix_ms = j.at("updated_unix_ms").get<int64_t>();
    r.generation = j.at("generation").get<uint64_t>();
    r.registration_id =
        j.value("registration_id",
                absl::StrCat("legacy-", r.created_unix_ms, "-g", r.generation));
    r.revision = j.value("revision", uint64_t{1});
    for (auto [key, specs] : {std::pair{"inputs", &r.signature.inputs},
                              std::pair{"outputs", &r.signature.outputs}}) {
      auto parsed = SpecsFromJson(j.at(key));
      if (!parsed.ok()) return absl::DataLossError(parsed.status().message());
      *specs = std::move(*parsed);
    }
    for (const auto& [name, v] : j.at("variants").items()) {
      VariantRecord vr;
      TS_RETURN_IF_ERROR(CheckName(name, "variant name"));
      vr.file = v.at("file").get<std::string>();
      TS_RETURN_IF_ERROR(CheckName(vr.file, "file name"));
      vr.sha256 = v.at("sha256").get<std::string>();
      vr.bytes = v.at("bytes").get<uint64_t>();
      vr.created_unix_ms = v.at("created_unix_ms").get<int64_t>();
      vr.parameter_bytes = v.value("parameter_bytes", uint64_t{0});
      vr.report_json = v.value("report", std::string());
      r.variants[name] = vr;
    }
    r.policy_json = j.value("policy", std::string());
    r.policy_history_json = j.value("policy_history", std::string());
    r.batching_json = j.value("batching", std::string());
    r.pending_plan_json = j.value("pending_plan", std::string());
    if (j.contains("calibration_sets")) {
      for (const auto& [name, c] : j.at("calibration_sets").items()) {
        CalibrationRecord cr;
        TS_RETURN_IF_ERROR(CheckName(name, "calibration set name"));
        cr.file = c.at("file").get<std::string>();
        TS_RETURN_IF_ERROR(CheckName(cr.file, "file name"));
        cr.sha256 = c.at("sha256").get<std::string>();
        cr.bytes = c.at("bytes").get<uint64_t>();
        cr.samples = c.at("samples").get<int64_t>();
        cr.labels = c.at("labels").get<bool>();
        cr.created_unix_ms = c.at("created_unix_ms").get<int64_t>();
        r.calibration_sets[name] = cr;
      }
    }
    return r;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("manifest is corrupt: ", e.what()));
  }
}

}  // namespace twinserve
