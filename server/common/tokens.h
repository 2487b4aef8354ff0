// Bearer tokens and roles: who may call what. A token file lists, one per
// line, a principal, its role and the SHA-256 of its token (never the token
// itself):
//
//   # name    role    sha256 of the token
//   alice     admin   sha256:5e884898da28047151d0e56f8dc6292773603d0d...
//   frontend  infer   sha256:...
//
// Role `infer` may call inference, metadata and statistics; `admin` may
// also call management, repository and shared-memory RPCs. A presented
// token is hashed and compared with every digest in constant time, so how
// long a check takes says nothing about which digest came close.
// gRPC-free: the gRPC layer (server/grpc) reads the metadata.
#ifndef TWINSERVE_SERVER_COMMON_TOKENS_H_
#define TWINSERVE_SERVER_COMMON_TOKENS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {

enum class Role { kInfer = 0, kAdmin = 1 };
const char* RoleName(Role role);

struct Principal {
  std::string name;
  Role role = Role::kAdmin;
};

struct TokenEntry {
  std::string name;
  Role role = Role::kInfer;
  std::string sha256;  // 64 lowercase hex digits
};

// INVALID_ARGUMENT naming the line that does not parse.
absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view text);

// The lowercase hex SHA-256 of `token` (what a token file stores).
std::string TokenDigest(absl::string_view token);

class TokenAuthenticator {
 public:
  // Reads `path`; errors as ParseTokenFile, or the read error.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> Load(
      const std::string& path);

  // Re-reads the file (on SIGHUP). On error the tokens in force stay.
  absl::Status Reload();

  // The principal `authorization` ("Bearer <token>") belongs to.
  // UNAUTHENTICATED without a known token, PERMISSION_DENIED when its role
  // is below `needed`; the messages never echo the token.
  absl::StatusOr<Principal> Authorize(absl::string_view authorization,
                                      Role needed) const;

  size_t size() const;

 private:
  explicit TokenAuthenticator(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  mutable absl::Mutex mu_;
  std::vector<TokenEntry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_TOKENS_H_
