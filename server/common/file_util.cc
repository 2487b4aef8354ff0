#include "server/common/file_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace twinserve {
namespace {

absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  const int err = errno;
  const std::string msg = absl::StrCat(what, " ", path, ": ", strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  if (err == EROFS) return absl::FailedPreconditionError(msg);
  return absl::InternalError(msg);
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path);
    }
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status InjectedFault(const char* point, const std::string& path) {
  static const char* const spec_file = std::getenv("TWINSERVE_TEST_FAULT_FILE");
  if (spec_file == nullptr) return absl::OkStatus();
  const int fd = ::open(spec_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::OkStatus();  // not armed
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return absl::OkStatus();
  std::vector<std::string> words = absl::StrSplit(
      absl::string_view(buf, n), absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  if (words.size() < 2 || words[0] != point) return absl::OkStatus();
  if (words.size() > 2 && !absl::StrContains(path, words[2])) {
    return absl::OkStatus();
  }
  if (words[1] == "kill") raise(SIGKILL);
  if (words[1] == "fail" && ::unlink(spec_file) == 0) {
    errno = EIO;
    return absl::InternalError(
        absl::StrCat("injected fault: ", point, " failed for ", path));
  }
  return absl::OkStatus();
}

std::string JoinPath(absl::string_view a, absl::string_view b) {
  if (a.empty()) return std::string(b);
  if (a.back() == '/') return absl::StrCat(a, b);
  return absl::StrCat(a, "/", b);
}

std::string RandomToken() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("%016x", rng());
}

absl::Status SyncDir(const std::string& dir) {
  if (absl::Status f = InjectedFault("syncdir", dir); !f.ok()) return f;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open folder", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync folder", dir);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, bool* renamed) {
  if (renamed != nullptr) *renamed = false;
  const std::string tmp = absl::StrCat(path, ".tmp-", RandomToken());
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create", tmp);
  absl::Status st = InjectedFault("write", path);
  if (st.ok()) st = WriteAll(fd, contents, tmp);
  if (st.ok()) st = InjectedFault("fsync", path);
  if (st.ok() && ::fsync(fd) != 0) st = ErrnoStatus("fsync", tmp);
  ::close(fd);
  if (st.ok()) st = InjectedFault("rename", path);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoStatus("rename", tmp);
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (renamed != nullptr) *renamed = true;
  if (absl::Status f = InjectedFault("renamed", path); !f.ok()) return f;
  return SyncDir(Dirname(path));
}

// Calls `sink` with successive chunks of the file.
absl::Status ReadChunks(const std::string& path,
                        const std::function<void(absl::string_view)>& sink) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", path);
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status st = ErrnoStatus("read", path);
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    sink(absl::string_view(buf, n));
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::string out;
  absl::Status st = ReadChunks(path, [&](absl::string_view chunk) {
    out.append(chunk.data(), chunk.size());
  });
  if (!st.ok()) return st;
  return out;
}

absl::Status DurableRename(const std::string& from, const std::string& to,
                           bool* renamed) {
  if (renamed != nullptr) *renamed = false;
  if (absl::Status f = InjectedFault("rename", to); !f.ok()) return f;
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus(absl::StrCat("rename to ", to, " from"), from);
  }
  if (renamed != nullptr) *renamed = true;
  if (absl::Status f = InjectedFault("renamed", to); !f.ok()) return f;
  absl::Status st = SyncDir(Dirname(to));
  if (st.ok() && Dirname(from) != Dirname(to)) st = SyncDir(Dirname(from));
  return st;
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty() || PathExists(dir)) return absl::OkStatus();
  absl::Status st = MakeDirs(Dirname(dir));
  if (!st.ok()) return st;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("mkdir", dir);
  }
  return SyncDir(Dirname(dir));
}

absl::Status RemoveAll(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus("stat", path);
  }
  if (S_ISDIR(st.st_mode)) {
    auto entries = ListDir(path);
    if (!entries.ok()) return entries.status();
    for (const std::string& e : *entries) {
      absl::Status s = RemoveAll(JoinPath(path, e));
      if (!s.ok()) return s;
    }
    if (::rmdir(path.c_str()) != 0) return ErrnoStatus("rmdir", path);
  } else if (::unlink(path.c_str()) != 0) {
    return ErrnoStatus("unlink", path);
  }
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus("opendir", dir);
  std::vector<std::string> out;
  while (struct dirent* e = ::readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

struct Sha256::State {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~State() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
}

Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view data) {
  EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

std::string Sha256::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, md, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i)
    absl::StrAppendFormat(&hex, "%02x", md[i]);
  return hex;
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  Sha256 sha;
  absl::Status st =
      ReadChunks(path, [&](absl::string_view chunk) { sha.Update(chunk); });
  if (!st.ok()) return st;
  return sha.HexDigest();
}

absl::StatusOr<std::unique_ptr<AppendFile>> AppendFile::Create(
    const std::string& path) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create", path);
  return std::unique_ptr<AppendFile>(new AppendFile(fd));
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status AppendFile::Append(absl::string_view data) {
  size_ += data.size();
  return WriteAll(fd_, data, "upload");
}

absl::Status AppendFile::Close() {
  absl::Status st;
  if (::fsync(fd_) != 0) st = ErrnoStatus("fsync", "upload");
  ::close(fd_);
  fd_ = -1;
  return st;
}

}  // namespace twinserve
