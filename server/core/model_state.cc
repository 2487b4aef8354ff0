#include "server/core/model_state.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace twinserve {

const char* VariantStateName(VariantState state) {
  switch (state) {
    case VariantState::kLoading:
      return "LOADING";
    case VariantState::kCalibrating:
      return "CALIBRATING";
    case VariantState::kQuantizing:
      return "QUANTIZING";
    case VariantState::kReady:
      return "READY";
    case VariantState::kFailed:
      return "FAILED";
    case VariantState::kUnloading:
      return "UNLOADING";
    case VariantState::kUnloaded:
      return "UNLOADED";
  }
  return "UNKNOWN";
}

std::string KeptGenerationName(uint64_t generation) {
  return absl::StrCat("fp32-g", generation);
}

bool IsFp32Variant(const std::string& variant) {
  return variant == kFp32Variant || absl::StartsWith(variant, "fp32-g");
}

}  // namespace twinserve
