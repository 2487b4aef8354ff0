// A model's signature: what forward() takes and returns, in positional
// order, as declared at registration.
#ifndef TWINSERVE_SERVER_COMMON_SIGNATURE_H_
#define TWINSERVE_SERVER_COMMON_SIGNATURE_H_

#include <vector>

#include "absl/status/status.h"
#include "server/common/tensor.h"

namespace twinserve {

struct Signature {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// INVALID_ARGUMENT unless there is at least one input and one output, every
// spec is valid (ValidateSpec) and no name is declared twice on a side.
absl::Status ValidateSignature(const Signature& signature);

// True if both take the same inputs (names, datatypes, shapes, order):
// samples recorded for one fit the other.
bool SameInputs(const Signature& a, const Signature& b);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_SIGNATURE_H_
