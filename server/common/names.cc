#include "server/common/names.h"

#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace twinserve {

absl::Status ValidateName(const std::string& name, const char* what) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", name.size(), " characters long; the limit is 128"));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " contains a control character"));
    }
    if (c == '/' || c == '\\') {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", name, "' contains a path separator"));
    }
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", name, "' contains '", std::string(1, c),
                       "'; allowed are letters, digits, '_', '-' and '.'"));
    }
  }
  if (absl::StrContains(name, "..")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", name, "' contains '..'"));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", name, "' starts with '.'"));
  }
  return absl::OkStatus();
}

}  // namespace twinserve
