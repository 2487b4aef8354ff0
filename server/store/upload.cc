#include "server/store/upload.h"

namespace twinserve {

absl::StatusOr<std::unique_ptr<Upload>> Upload::Create(std::string path) {
  auto file = AppendFile::Create(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<Upload>(new Upload(std::move(path), std::move(*file)));
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

}  // namespace twinserve
