// Names that operators choose (models, variants, calibration sets) become
// folder and file names in the store and label values in /metrics, so they
// are held to one rule.
#ifndef TWINSERVE_SERVER_COMMON_NAMES_H_
#define TWINSERVE_SERVER_COMMON_NAMES_H_

#include <string>

#include "absl/status/status.h"

namespace twinserve {

// OK for 1-128 of [A-Za-z0-9_.-], not starting with '.', without "..";
// otherwise INVALID_ARGUMENT saying what is wrong with the `what` ("model
// name", "variant name", ...).
absl::Status ValidateName(const std::string& name,
                          const char* what = "model name");

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_NAMES_H_
