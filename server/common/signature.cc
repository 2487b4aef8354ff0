#include "server/common/signature.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"

namespace twinserve {
namespace {

absl::Status ValidateSpecs(const std::vector<TensorSpec>& specs,
                           const char* kind) {
  if (specs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the registration declares no ", kind, "s"));
  }
  std::set<std::string> names;
  for (const TensorSpec& s : specs) {
    absl::Status st = ValidateSpec(s);
    if (!st.ok()) return st;
    if (!names.insert(s.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " name '", s.name, "' is declared twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSignature(const Signature& signature) {
  absl::Status st = ValidateSpecs(signature.inputs, "input");
  if (!st.ok()) return st;
  return ValidateSpecs(signature.outputs, "output");
}

bool SameInputs(const Signature& a, const Signature& b) {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    if (a.inputs[i].name != b.inputs[i].name ||
        a.inputs[i].dtype != b.inputs[i].dtype ||
        a.inputs[i].shape != b.inputs[i].shape) {
      return false;
    }
  }
  return true;
}

}  // namespace twinserve
