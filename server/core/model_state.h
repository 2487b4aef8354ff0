// The lifecycle of a variant (after TF Serving's LoaderHarness), and the
// names every model has.
//
//   kLoading ──ok──> kReady ──Unload──> kUnloaded ──Load──> kLoading
//      │                │
//      └──error──> kFailed <──── a later load fails
//
//   (a job making a variant that does not serve yet)
//   kQuantizing ──published──> kReady      ──failed──> (slot removed)
//
// A variant is published only once it has loaded; replacing it swaps a
// ref-counted ServableHandle, so requests in flight finish on the old one,
// which goes away with its last handle (its scheduler drained). A failed
// variant never disturbs the others; a job re-making a variant that serves
// leaves it serving (pending) until the new one is published.
#ifndef TWINSERVE_SERVER_CORE_MODEL_STATE_H_
#define TWINSERVE_SERVER_CORE_MODEL_STATE_H_

#include <string>

namespace twinserve {

enum class VariantState {
  kLoading,
  kCalibrating,
  kQuantizing,
  kReady,
  kFailed,
  kUnloading,
  kUnloaded,
};
const char* VariantStateName(VariantState state);

// The variant every model has from registration on.
inline constexpr char kFp32Variant[] = "fp32";

// An earlier generation's fp32 kept serving beside the new one
// (RegisterModel with keep_previous): "fp32-g<generation>".
std::string KeptGenerationName(uint64_t generation);

// Whether a variant is served as registered FP32 (and so through the FP32
// optimization passes) rather than as a derived, already frozen module.
bool IsFp32Variant(const std::string& variant);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_MODEL_STATE_H_
