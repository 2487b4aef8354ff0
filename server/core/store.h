// ModelStore: the durable home of everything the server acknowledged.
//
// Layout under the root folder:
//   models/<name>/manifest.json      the commit point of a model: metadata,
//                                    signature, and per variant its file,
//                                    size and SHA-256
//   models/<name>/<variant>-g<generation>-<token>.pt   variant artifacts
//   models/<name>/calib-<set>-<token>.bin  calibration sets
//   staging/                         uploads in progress (cleared on open)
//   trash/                           removed models (cleared on open)
//   jobs/<id>.json                   quantization job records
//
// Writes are crash-safe: artifacts are fsync'd and renamed into the model
// folder first, then the manifest is replaced atomically. Files a manifest
// does not reference are garbage from an interrupted write and are deleted
// on open. A model folder whose manifest is missing, unreadable, or whose
// artifact fails its checksum is reported by Scan() with the reason; it never
// stops the other models from loading.
//
// Thread-safe.
#ifndef TWINSERVE_SERVER_CORE_STORE_H_
#define TWINSERVE_SERVER_CORE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/core/file_util.h"
#include "server/core/runner.h"

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
};

// A calibration (or evaluation) set: samples uploaded for the model.
struct CalibrationRecord {
  std::string file;
  std::string sha256;
  uint64_t bytes = 0;
  int64_t samples = 0;
  bool labels = false;
  int64_t created_unix_ms = 0;
};

struct ModelRecord {
  std::string name;
  std::string description;
  Signature signature;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  uint64_t generation = 0;
  std::map<std::string, VariantRecord> variants;              // by variant name
  std::map<std::string, CalibrationRecord> calibration_sets;  // by set name
  // Traffic policy and its history, JSON (server/core/router.h); empty
  // until an operator sets one.
  std::string policy_json;
  std::string policy_history_json;
  // Dynamic batching settings, JSON (server/core/batching.h); empty: off.
  std::string batching_json;
};

// A file uploaded into staging/, not yet part of any model.
struct StagedFile {
  std::string path;
  std::string sha256;
  uint64_t bytes = 0;
};

// An upload in progress. Destroying it before Finish() deletes the file, so
// a stream that breaks off leaves nothing behind.
class Upload {
 public:
  ~Upload();
  absl::Status Append(absl::string_view chunk);
  uint64_t size() const { return file_->size(); }
  // fsyncs the file and returns it. REQUIRES: called at most once.
  absl::StatusOr<StagedFile> Finish();

 private:
  friend class ModelStore;
  Upload(std::string path, std::unique_ptr<AppendFile> file)
      : path_(std::move(path)), file_(std::move(file)) {}
  std::string path_;
  std::unique_ptr<AppendFile> file_;
  Sha256 sha_;
  bool finished_ = false;
};

// One model folder as found on disk.
struct StoredModel {
  std::string name;
  // The manifest, or why the entry is unusable (INTERNAL / DATA_LOSS).
  absl::StatusOr<ModelRecord> record;
};

class ModelStore {
 public:
  // Creates the folders if needed and clears staging/ and trash/.
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(
      const std::string& root);

  const std::string& root() const { return root_; }

  absl::StatusOr<std::unique_ptr<Upload>> BeginUpload();

  // Every model folder, sorted by name. Verifies each artifact's checksum and
  // deletes unreferenced files.
  std::vector<StoredModel> Scan();
  // One model folder, verified like Scan(). NOT_FOUND if absent.
  StoredModel Read(const std::string& name);

  // Writes `record` as a new generation of its model holding exactly one
  // variant, `variant`, made from `file` (which is consumed). Variants of
  // earlier generations are dropped: they were derived from other weights.
  // On success `record` is updated with what was stored.
  // `keep` lists stored variants (of the previous generation) to carry over
  // under new names; their files are not copied, only referenced again.
  absl::Status PutModel(ModelRecord* record, const std::string& variant,
                        const StagedFile& file,
                        const std::map<std::string, VariantRecord>& keep = {});
  // Adds or replaces one variant of an existing model; `extra` carries the
  // report and parameter bytes (file fields are filled in here).
  absl::Status PutVariant(ModelRecord* record, const std::string& variant,
                          const StagedFile& file,
                          const VariantRecord& extra = {});
  // Adds or replaces a calibration set (`meta`'s file fields are filled in).
  absl::Status PutCalibrationSet(ModelRecord* record, const std::string& set,
                                 const StagedFile& file,
                                 const CalibrationRecord& meta);
  // Replaces the model's traffic policy and history (one atomic write).
  absl::Status PutPolicy(ModelRecord* record, const std::string& policy_json,
                         const std::string& history_json);
  // Replaces the model's batching settings.
  absl::Status PutBatching(ModelRecord* record,
                           const std::string& batching_json);
  // Removes a set; NOT_FOUND if the model has none of that name.
  absl::Status RemoveCalibrationSet(ModelRecord* record,
                                    const std::string& set);
  // A stage for bytes produced in the server (a serialized set, a model).
  absl::StatusOr<StagedFile> StageBytes(absl::string_view bytes);
  // Path of a staging file for a writer that saves by path (LibTorch).
  std::string NewStagingPath(const std::string& suffix) const;
  // Checksums a file written at a staging path.
  absl::StatusOr<StagedFile> AdoptStagingFile(const std::string& path);
  // Removes the model folder (moved to trash/ atomically, then deleted).
  absl::Status RemoveModel(const std::string& name);

  // Absolute path of a variant's artifact.
  std::string VariantPath(const std::string& model,
                          const VariantRecord& v) const;
  std::string CalibrationPath(const std::string& model,
                              const CalibrationRecord& c) const;
  // The folder for job records (jobs/).
  std::string JobsDir() const;

 private:
  explicit ModelStore(std::string root) : root_(std::move(root)) {}
  std::string ModelDir(const std::string& name) const;
  StoredModel ReadLocked(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves `file` into the model folder as <prefix>-<token><ext>; returns
  // the base name.
  absl::StatusOr<std::string> AdoptLocked(const std::string& model,
                                          const std::string& prefix,
                                          const std::string& ext,
                                          const StagedFile& file)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replaces the manifest with `next` (the commit point), then deletes the
  // files it no longer references. On failure deletes `adopted`.
  absl::Status CommitLocked(const ModelRecord& next, const std::string& adopted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string root_;
  absl::Mutex mu_;  // serializes writes to the models/ tree
};

// Model names become folder names: 1-128 of [A-Za-z0-9_.-], not starting
// with '.', no "..". INVALID_ARGUMENT otherwise, saying what is wrong.
absl::Status ValidateModelName(const std::string& name);

// Milliseconds since the epoch.
int64_t NowUnixMs();

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_STORE_H_
