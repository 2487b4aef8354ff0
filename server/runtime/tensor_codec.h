// Converts between the core's HostTensor (OIP bytes) and at::Tensor.
//
// ToTorch wraps the request's bytes without copying when they are aligned
// for the element type (protobuf strings usually are); otherwise it copies
// once into an aligned buffer. FromTorch keeps the at::Tensor alive as the
// HostTensor's owner, so outputs are copied exactly once: into the response.
#ifndef TWINSERVE_SERVER_RUNTIME_TENSOR_CODEC_H_
#define TWINSERVE_SERVER_RUNTIME_TENSOR_CODEC_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "server/common/tensor.h"

namespace twinserve {

// REQUIRES: tensor.byte_size matches its dtype and shape (ValidateTensor).
// The result borrows tensor.data when it is suitably aligned: it must not
// outlive the memory `tensor` points to unless `tensor.owner` holds it.
absl::StatusOr<at::Tensor> ToTorch(const HostTensor& tensor);

// True if ToTorch(tensor) would wrap instead of copy.
bool CanWrapWithoutCopy(const HostTensor& tensor);

// Makes `t` contiguous on the CPU and exposes its bytes; the HostTensor owns
// a reference to the storage. INVALID_ARGUMENT if its scalar type has no
// OIP datatype (e.g. complex, quantized).
absl::StatusOr<HostTensor> FromTorch(std::string name, const at::Tensor& t);

// at::ScalarType <-> DataType.
absl::StatusOr<at::ScalarType> ToScalarType(DataType type);
absl::StatusOr<DataType> FromScalarType(at::ScalarType type);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_RUNTIME_TENSOR_CODEC_H_
