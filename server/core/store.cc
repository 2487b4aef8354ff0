#include "server/core/store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/logging.h"

namespace twinserve {
namespace {

using json = nlohmann::json;

constexpr char kManifest[] = "manifest.json";
constexpr int kFormat = 1;

json SpecToJson(const TensorSpec& spec) {
  return json{{"name", spec.name},
              {"datatype", DataTypeName(spec.dtype)},
              {"shape", spec.shape}};
}

absl::StatusOr<TensorSpec> SpecFromJson(const json& j) {
  TensorSpec spec;
  spec.name = j.at("name").get<std::string>();
  auto dtype = ParseDataType(j.at("datatype").get<std::string>());
  if (!dtype.ok()) return dtype.status();
  spec.dtype = *dtype;
  spec.shape = j.at("shape").get<std::vector<int64_t>>();
  return spec;
}

std::string ToManifest(const ModelRecord& r) {
  json j;
  j["format"] = kFormat;
  j["name"] = r.name;
  j["description"] = r.description;
  j["created_unix_ms"] = r.created_unix_ms;
  j["updated_unix_ms"] = r.updated_unix_ms;
  j["generation"] = r.generation;
  j["inputs"] = json::array();
  for (const auto& s : r.signature.inputs) j["inputs"].push_back(SpecToJson(s));
  j["outputs"] = json::array();
  for (const auto& s : r.signature.outputs) {
    j["outputs"].push_back(SpecToJson(s));
  }
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
    r.description = j.value("description", "");
    r.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    r.updated_unix_ms = j.at("updated_unix_ms").get<int64_t>();
    r.generation = j.at("generation").get<uint64_t>();
    for (const auto& s : j.at("inputs")) {
      auto spec = SpecFromJson(s);
      if (!spec.ok()) return spec.status();
      r.signature.inputs.push_back(*spec);
    }
    for (const auto& s : j.at("outputs")) {
      auto spec = SpecFromJson(s);
      if (!spec.ok()) return spec.status();
      r.signature.outputs.push_back(*spec);
    }
    for (const auto& [name, v] : j.at("variants").items()) {
      VariantRecord vr;
      vr.file = v.at("file").get<std::string>();
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
    if (j.contains("calibration_sets")) {
      for (const auto& [name, c] : j.at("calibration_sets").items()) {
        CalibrationRecord cr;
        cr.file = c.at("file").get<std::string>();
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

std::set<std::string> Referenced(const ModelRecord& r) {
  std::set<std::string> out = {kManifest};
  for (const auto& [v, vr] : r.variants) out.insert(vr.file);
  for (const auto& [c, cr] : r.calibration_sets) out.insert(cr.file);
  return out;
}

}  // namespace

int64_t NowUnixMs() { return absl::ToUnixMillis(absl::Now()); }

absl::Status ValidateModelName(const std::string& name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("model name is empty");
  }
  if (name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model name is ", name.size(), " characters long; the limit is 128"));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          "model name contains a control character");
    }
    if (c == '/' || c == '\\') {
      return absl::InvalidArgumentError(
          absl::StrCat("model name '", name, "' contains a path separator"));
    }
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat("model name '", name, "' contains '", std::string(1, c),
                       "'; allowed are letters, digits, '_', '-' and '.'"));
    }
  }
  if (absl::StrContains(name, "..")) {
    return absl::InvalidArgumentError(
        absl::StrCat("model name '", name, "' contains '..'"));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat("model name '", name, "' starts with '.'"));
  }
  return absl::OkStatus();
}

Upload::~Upload() {
  if (!finished_) {
    file_.reset();
    RemoveAll(path_).IgnoreError();
  }
}

absl::Status Upload::Append(absl::string_view chunk) {
  sha_.Update(chunk);
  return file_->Append(chunk);
}

absl::StatusOr<StagedFile> Upload::Finish() {
  absl::Status st = file_->Close();
  if (!st.ok()) return st;
  finished_ = true;
  return StagedFile{path_, sha_.HexDigest(), file_->size()};
}

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(
    const std::string& root) {
  for (const char* sub : {"models", "staging", "trash", "jobs"}) {
    absl::Status st = MakeDirs(JoinPath(root, sub));
    if (!st.ok()) return st;
  }
  for (const char* sub : {"staging", "trash"}) {
    const std::string dir = JoinPath(root, sub);
    auto entries = ListDir(dir);
    if (!entries.ok()) return entries.status();
    for (const auto& e : *entries) {
      absl::Status st = RemoveAll(JoinPath(dir, e));
      if (!st.ok()) return st;
    }
  }
  return std::unique_ptr<ModelStore>(new ModelStore(root));
}

std::string ModelStore::ModelDir(const std::string& name) const {
  return JoinPath(JoinPath(root_, "models"), name);
}

std::string ModelStore::VariantPath(const std::string& model,
                                    const VariantRecord& v) const {
  return JoinPath(ModelDir(model), v.file);
}

absl::StatusOr<std::unique_ptr<Upload>> ModelStore::BeginUpload() {
  const std::string path =
      JoinPath(JoinPath(root_, "staging"), RandomToken() + ".upload");
  auto file = AppendFile::Create(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<Upload>(new Upload(path, std::move(*file)));
}

std::vector<StoredModel> ModelStore::Scan() {
  absl::MutexLock lock(&mu_);
  std::vector<StoredModel> out;
  auto names = ListDir(JoinPath(root_, "models"));
  if (!names.ok()) {
    TS_LOG(ERROR) << "cannot list the store: " << names.status();
    return out;
  }
  std::sort(names->begin(), names->end());
  for (const std::string& name : *names) {
    out.push_back(ReadLocked(name));
  }
  return out;
}

StoredModel ModelStore::Read(const std::string& name) {
  absl::MutexLock lock(&mu_);
  return ReadLocked(name);
}

StoredModel ModelStore::ReadLocked(const std::string& name) {
  StoredModel out{name, absl::UnknownError("unset")};
  const std::string dir = ModelDir(name);
  if (!PathExists(dir)) {
    out.record = absl::NotFoundError(
        absl::StrCat("model '", name, "' is not in the store"));
    return out;
  }
  auto text = ReadFile(JoinPath(dir, kManifest));
  if (!text.ok()) {
    out.record = absl::DataLossError(absl::StrCat(
        "partial store entry: ", kManifest, " is missing or unreadable (",
        text.status().message(), "); unregister the model to remove it"));
    return out;
  }
  auto record = FromManifest(*text);
  if (!record.ok()) {
    out.record = record.status();
    return out;
  }
  if (record->name != name) {
    out.record =
        absl::DataLossError(absl::StrCat("manifest names model '", record->name,
                                         "' but lives in folder '", name, "'"));
    return out;
  }
  // Garbage from interrupted writes: files no manifest references.
  std::set<std::string> referenced = Referenced(*record);
  if (auto files = ListDir(dir); files.ok()) {
    for (const auto& f : *files) {
      if (!referenced.count(f)) {
        TS_LOG(INFO) << "store: removing unreferenced file " << name << "/"
                     << f;
        RemoveAll(JoinPath(dir, f)).IgnoreError();
      }
    }
  }
  for (const auto& [set, cr] : record->calibration_sets) {
    auto sha = Sha256File(JoinPath(dir, cr.file));
    if (!sha.ok() || *sha != cr.sha256) {
      out.record = absl::DataLossError(
          absl::StrCat("calibration set '", set, "': ",
                       sha.ok() ? "checksum mismatch for " + cr.file
                                : std::string(sha.status().message())));
      return out;
    }
  }
  for (const auto& [v, vr] : record->variants) {
    auto sha = Sha256File(JoinPath(dir, vr.file));
    if (!sha.ok()) {
      out.record = absl::DataLossError(
          absl::StrCat("variant '", v, "': ", sha.status().message()));
      return out;
    }
    if (*sha != vr.sha256) {
      out.record = absl::DataLossError(
          absl::StrCat("variant '", v, "': checksum mismatch for ", vr.file,
                       " (stored file is corrupt: sha256 ", *sha,
                       ", manifest says ", vr.sha256, ")"));
      return out;
    }
  }
  out.record = std::move(record);
  return out;
}

absl::StatusOr<std::string> ModelStore::AdoptLocked(const std::string& model,
                                                    const std::string& prefix,
                                                    const std::string& ext,
                                                    const StagedFile& file) {
  const std::string dir = ModelDir(model);
  absl::Status st = MakeDirs(dir);
  if (!st.ok()) return st;
  const std::string name =
      absl::StrCat(prefix, "-", RandomToken().substr(0, 8), ext);
  st = DurableRename(file.path, JoinPath(dir, name));
  if (!st.ok()) return st;
  return name;
}

absl::Status ModelStore::CommitLocked(const ModelRecord& next,
                                      const std::string& adopted) {
  const std::string dir = ModelDir(next.name);
  absl::Status st =
      WriteFileAtomically(JoinPath(dir, kManifest), ToManifest(next));
  if (!st.ok()) {
    if (!adopted.empty()) RemoveAll(JoinPath(dir, adopted)).IgnoreError();
    return st;
  }
  // Files the new manifest no longer references are garbage now; a crash
  // before they are gone leaves them for the next Scan.
  const std::set<std::string> referenced = Referenced(next);
  if (auto files = ListDir(dir); files.ok()) {
    for (const auto& f : *files) {
      if (!referenced.count(f)) RemoveAll(JoinPath(dir, f)).IgnoreError();
    }
  }
  return absl::OkStatus();
}

absl::Status ModelStore::PutVariant(ModelRecord* record,
                                    const std::string& variant,
                                    const StagedFile& file,
                                    const VariantRecord& extra) {
  absl::MutexLock lock(&mu_);
  auto name =
      AdoptLocked(record->name, absl::StrCat(variant, "-g", record->generation),
                  ".pt", file);
  if (!name.ok()) return name.status();
  ModelRecord next = *record;
  VariantRecord vr = extra;
  vr.file = *name;
  vr.sha256 = file.sha256;
  vr.bytes = file.bytes;
  vr.created_unix_ms = NowUnixMs();
  next.variants[variant] = vr;
  next.updated_unix_ms = vr.created_unix_ms;
  absl::Status st = CommitLocked(next, *name);
  if (st.ok()) *record = std::move(next);
  return st;
}

absl::Status ModelStore::PutCalibrationSet(ModelRecord* record,
                                           const std::string& set,
                                           const StagedFile& file,
                                           const CalibrationRecord& meta) {
  absl::MutexLock lock(&mu_);
  auto name = AdoptLocked(record->name, "calib-" + set, ".bin", file);
  if (!name.ok()) return name.status();
  ModelRecord next = *record;
  CalibrationRecord cr = meta;
  cr.file = *name;
  cr.sha256 = file.sha256;
  cr.bytes = file.bytes;
  cr.created_unix_ms = NowUnixMs();
  next.calibration_sets[set] = cr;
  absl::Status st = CommitLocked(next, *name);
  if (st.ok()) *record = std::move(next);
  return st;
}

absl::Status ModelStore::PutPolicy(ModelRecord* record,
                                   const std::string& policy_json,
                                   const std::string& history_json) {
  absl::MutexLock lock(&mu_);
  ModelRecord next = *record;
  next.policy_json = policy_json;
  next.policy_history_json = history_json;
  absl::Status st = CommitLocked(next, "");
  if (st.ok()) *record = std::move(next);
  return st;
}

absl::Status ModelStore::PutBatching(ModelRecord* record,
                                     const std::string& batching_json) {
  absl::MutexLock lock(&mu_);
  ModelRecord next = *record;
  next.batching_json = batching_json;
  absl::Status st = CommitLocked(next, "");
  if (st.ok()) *record = std::move(next);
  return st;
}

absl::Status ModelStore::RemoveCalibrationSet(ModelRecord* record,
                                              const std::string& set) {
  absl::MutexLock lock(&mu_);
  if (!record->calibration_sets.count(set)) {
    return absl::NotFoundError(absl::StrCat(
        "model '", record->name, "' has no calibration set '", set, "'"));
  }
  ModelRecord next = *record;
  next.calibration_sets.erase(set);
  absl::Status st = CommitLocked(next, "");
  if (st.ok()) *record = std::move(next);
  return st;
}

absl::StatusOr<StagedFile> ModelStore::StageBytes(absl::string_view bytes) {
  auto upload = BeginUpload();
  if (!upload.ok()) return upload.status();
  absl::Status st = (*upload)->Append(bytes);
  if (!st.ok()) return st;
  return (*upload)->Finish();
}

std::string ModelStore::NewStagingPath(const std::string& suffix) const {
  return JoinPath(JoinPath(root_, "staging"), RandomToken() + suffix);
}

absl::StatusOr<StagedFile> ModelStore::AdoptStagingFile(
    const std::string& path) {
  // fsync before the file is referenced anywhere.
  auto bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  absl::Status st = WriteFileAtomically(path, *bytes);
  if (!st.ok()) return st;
  Sha256 sha;
  sha.Update(*bytes);
  return StagedFile{path, sha.HexDigest(), bytes->size()};
}

std::string ModelStore::CalibrationPath(const std::string& model,
                                        const CalibrationRecord& c) const {
  return JoinPath(ModelDir(model), c.file);
}

std::string ModelStore::JobsDir() const { return JoinPath(root_, "jobs"); }

absl::Status ModelStore::PutModel(
    ModelRecord* record, const std::string& variant, const StagedFile& file,
    const std::map<std::string, VariantRecord>& keep) {
  ModelRecord next = *record;
  next.variants = keep;
  if (next.created_unix_ms == 0) next.created_unix_ms = NowUnixMs();
  absl::Status st = PutVariant(&next, variant, file);
  if (st.ok()) *record = std::move(next);
  return st;
}

absl::Status ModelStore::RemoveModel(const std::string& name) {
  absl::MutexLock lock(&mu_);
  const std::string dir = ModelDir(name);
  if (!PathExists(dir)) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' is not in the store"));
  }
  const std::string trash =
      JoinPath(JoinPath(root_, "trash"), name + "." + RandomToken());
  absl::Status st = DurableRename(dir, trash);
  if (!st.ok()) return st;
  return RemoveAll(trash);
}

}  // namespace twinserve
