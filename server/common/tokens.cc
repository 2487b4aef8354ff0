#include "server/common/tokens.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/file_util.h"

namespace twinserve {
namespace {

bool IsHex64(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Equal lengths by construction (64 hex digits); every byte is compared.
bool ConstantTimeEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

const char* RoleName(Role role) {
  return role == Role::kAdmin ? "admin" : "infer";
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokenFile(absl::string_view text) {
  std::vector<TokenEntry> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file line ", line_no, ": ", why,
                       " (want: NAME infer|admin sha256:<64 hex digits>)"));
    };
    if (f.size() != 3) return bad("three fields expected");
    TokenEntry e;
    e.name = std::string(f[0]);
    if (f[1] == "admin") {
      e.role = Role::kAdmin;
    } else if (f[1] == "infer") {
      e.role = Role::kInfer;
    } else {
      return bad(absl::StrCat("unknown role '", f[1], "'"));
    }
    absl::string_view digest = f[2];
    if (!absl::ConsumePrefix(&digest, "sha256:") || !IsHex64(digest)) {
      return bad("the digest must be sha256: and 64 hex digits");
    }
    e.sha256 = absl::AsciiStrToLower(digest);
    out.push_back(std::move(e));
  }
  return out;
}

std::string TokenDigest(absl::string_view token) {
  Sha256 sha;
  sha.Update(token);
  return sha.HexDigest();
}

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::Load(
    const std::string& path) {
  std::unique_ptr<TokenAuthenticator> a(new TokenAuthenticator(path));
  absl::Status st = a->Reload();
  if (!st.ok()) return st;
  return a;
}

absl::Status TokenAuthenticator::Reload() {
  auto text = ReadFile(path_);
  if (!text.ok()) {
    return absl::Status(
        text.status().code(),
        absl::StrCat("token file ", path_, ": ", text.status().message()));
  }
  auto entries = ParseTokenFile(*text);
  if (!entries.ok()) return entries.status();
  absl::MutexLock lock(&mu_);
  entries_ = std::move(*entries);
  return absl::OkStatus();
}

size_t TokenAuthenticator::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

absl::StatusOr<Principal> TokenAuthenticator::Authorize(
    absl::string_view authorization, Role needed) const {
  absl::string_view token = absl::StripAsciiWhitespace(authorization);
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "this server requires a bearer token: send metadata 'authorization: "
        "Bearer <token>' (twinctl --token or $TWINSERVE_TOKEN)");
  }
  if (!absl::ConsumePrefix(&token, "Bearer ") &&
      !absl::ConsumePrefix(&token, "bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be 'Bearer <token>'");
  }
  const std::string digest = TokenDigest(absl::StripAsciiWhitespace(token));
  const TokenEntry* match = nullptr;
  absl::MutexLock lock(&mu_);
  for (const TokenEntry& e : entries_) {
    // No early exit: every digest is compared.
    if (ConstantTimeEqual(digest, e.sha256) && match == nullptr) match = &e;
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError("the bearer token is not known");
  }
  if (static_cast<int>(match->role) < static_cast<int>(needed)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "principal '", match->name, "' has role ", RoleName(match->role),
        "; this call needs ", RoleName(needed)));
  }
  return Principal{match->name, match->role};
}

}  // namespace twinserve
