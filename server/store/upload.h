// Files on their way into the store: uploads streamed in chunks and bytes
// made in the server, written to the store's staging/ folder and fsync'd
// before any record references them.
#ifndef TWINSERVE_SERVER_STORE_UPLOAD_H_
#define TWINSERVE_SERVER_STORE_UPLOAD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/file_util.h"

namespace twinserve {

// A complete, fsync'd file in staging/, not yet part of any model.
struct StagedFile {
  std::string path;
  std::string sha256;
  uint64_t bytes = 0;
};

// An upload in progress. Destroying it before Finish() deletes the file, so
// a stream that breaks off leaves nothing behind.
class Upload {
 public:
  // Creates `path` for writing.
  static absl::StatusOr<std::unique_ptr<Upload>> Create(std::string path);
  ~Upload();

  absl::Status Append(absl::string_view chunk);
  uint64_t size() const { return file_->size(); }
  // fsyncs the file and returns it. REQUIRES: called at most once.
  absl::StatusOr<StagedFile> Finish();

 private:
  Upload(std::string path, std::unique_ptr<AppendFile> file)
      : path_(std::move(path)), file_(std::move(file)) {}
  std::string path_;
  std::unique_ptr<AppendFile> file_;
  Sha256 sha_;
  bool finished_ = false;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_STORE_UPLOAD_H_
