// Durable file operations for the model store. Every write that the server
// acknowledges goes through WriteFileAtomically or an fsync'd rename, so a
// kill -9 at any point leaves either the old or the new content, never a mix.
#ifndef TWINSERVE_SERVER_COMMON_FILE_UTIL_H_
#define TWINSERVE_SERVER_COMMON_FILE_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace twinserve {

// Writes to a temp file beside `path`, fsyncs it, renames it over `path`
// and fsyncs the folder. `*renamed` (if given) says whether the rename
// happened: an error after it (the folder's fsync) means the new content is
// in place but may not survive a crash, so the caller must not undo it.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents,
                                 bool* renamed = nullptr);
absl::StatusOr<std::string> ReadFile(const std::string& path);
// Writes all of `data` to `fd` (retrying short writes and EINTR); errors
// name `path`.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path);
// fsync of a folder, so renames and creations inside it are durable.
absl::Status SyncDir(const std::string& dir);
// rename(2) followed by fsync of both folders; `*renamed` as above.
absl::Status DurableRename(const std::string& from, const std::string& to,
                           bool* renamed = nullptr);

// Test-only fault injection. With $TWINSERVE_TEST_FAULT_FILE set, a file at
// that path holding "POINT ACTION [PATH_PART]" arms a fault at the durable
// writes above: POINT is write, fsync, rename, renamed (after the rename,
// before the folder's fsync) or syncdir; ACTION kill (SIGKILL, as a crash)
// or fail (that step fails, once: the file is removed). PATH_PART limits it
// to paths containing it. Unset (always, outside tests): no effect.
absl::Status InjectedFault(const char* point, const std::string& path);
// mkdir -p; fsyncs each parent it created an entry in.
absl::Status MakeDirs(const std::string& dir);
// rm -rf; OK if `path` does not exist.
absl::Status RemoveAll(const std::string& path);
bool PathExists(const std::string& path);
// Names of the entries in `dir` (no "." or "..").
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir);
std::string JoinPath(absl::string_view a, absl::string_view b);
// A random 16-hex-digit token for temp names.
std::string RandomToken();

// Incremental SHA-256, hex output.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  void Update(absl::string_view data);
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

absl::StatusOr<std::string> Sha256File(const std::string& path);

// A file being written in chunks (an upload), fsync'd on Close().
class AppendFile {
 public:
  static absl::StatusOr<std::unique_ptr<AppendFile>> Create(
      const std::string& path);
  ~AppendFile();
  absl::Status Append(absl::string_view data);
  // Flushes and fsyncs. REQUIRES: called once.
  absl::Status Close();
  uint64_t size() const { return size_; }

 private:
  explicit AppendFile(int fd) : fd_(fd) {}
  int fd_;
  uint64_t size_ = 0;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_FILE_UTIL_H_
