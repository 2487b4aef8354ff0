// What the store keeps about a model, and its on-disk form (manifest.json).
// Policies, batching settings and reports are opaque JSON here: their
// owners (server/traffic, server/serving, quant/) parse them, so the store
// depends on none of them.
#ifndef TWINSERVE_SERVER_STORE_RECORDS_H_
#define TWINSERVE_SERVER_STORE_RECORDS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "server/common/signature.h"

namespace twinserve {

struct VariantRecord {
  std::string file;  // base name inside the model folder
  std::string sha256;
  uint64_t bytes = 0;
  int64_t created_unix_ms = 0;
  // For derived variants: parameter bytes as quantized (a frozen module
  // cannot tell) and the quantization report, JSON.
  uint64_t parameter_bytes = 0;
  std::string report_json;
  // Not stored: set by the store's scan when the file is missing or its
  // checksum differs. Only this variant fails; the rest of the model serves.
  std::string damage;
};

// A calibration (or evaluation) set: samples uploaded for the model.
struct CalibrationRecord {
  std::string file;
  std::string sha256;
  uint64_t bytes = 0;
  int64_t samples = 0;
  bool labels = false;
  int64_t created_unix_ms = 0;
  // Not stored: as VariantRecord::damage (jobs refuse the set).
  std::string damage;
};

struct ModelRecord {
  std::string name;
  // Unique per RegisterModel call (a new generation included). A writer
  // that captured it (a quantization job) checks it at commit, so nothing
  // made for one registration lands in another of the same name.
  std::string registration_id;
  // Bumped by every committed write; writes compare it (compare-and-set).
  // 0: not stored.
  uint64_t revision = 0;
  std::string description;
  Signature signature;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  uint64_t generation = 0;
  std::map<std::string, VariantRecord> variants;              // by variant name
  std::map<std::string, CalibrationRecord> calibration_sets;  // by set name
  // Traffic policy and its history (server/traffic/policy.h); empty until
  // an operator sets one.
  std::string policy_json;
  std::string policy_history_json;
  // Dynamic batching settings (server/serving/batching.h); empty: off.
  std::string batching_json;
  // A traffic plan waiting for a variant a registration's quantization job
  // makes (server/traffic/plan.h); empty: none.
  std::string pending_plan_json;
};

// Files inside the model folder that `record` references.
std::set<std::string> ReferencedFiles(const ModelRecord& record);

std::string ToManifest(const ModelRecord& record);
// DATA_LOSS naming what is wrong with `text`. Manifests of earlier versions
// (no registration id or revision) get a stable id and revision 1.
absl::StatusOr<ModelRecord> FromManifest(const std::string& text);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_STORE_RECORDS_H_
