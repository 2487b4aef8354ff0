// Tensor specs <-> JSON ({"name", "datatype", "shape"} per spec), the form
// the store's manifests and the quantization worker's jobs both use.
#ifndef TWINSERVE_SERVER_COMMON_SIGNATURE_JSON_H_
#define TWINSERVE_SERVER_COMMON_SIGNATURE_JSON_H_

#include <nlohmann/json.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/tensor.h"

namespace twinserve {

nlohmann::json SpecsToJson(const std::vector<TensorSpec>& specs);
// INVALID_ARGUMENT for a field that is missing or of the wrong type, or an
// unknown datatype.
absl::StatusOr<std::vector<TensorSpec>> SpecsFromJson(const nlohmann::json& j);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_SIGNATURE_JSON_H_
