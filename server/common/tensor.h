// Tensors as the core sees them: an OIP datatype, a shape and bytes. Free of
// LibTorch and of protobuf so that the registry, the validator and the gRPC
// layer can use them without pulling in either; kernels/tensor_codec.h turns
// them into at::Tensor without copying.
#ifndef TWINSERVE_SERVER_COMMON_TENSOR_H_
#define TWINSERVE_SERVER_COMMON_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace twinserve {

// The OIP datatypes that LibTorch can hold. UINT16/32/64 and BYTES exist in
// the protocol but have no at::ScalarType in LibTorch 1.13, so a model spec
// naming them is refused at registration.
enum class DataType {
  kInvalid,
  kBool,
  kUint8,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kBf16,
  kFp32,
  kFp64,
};

// "FP32" -> kFp32. INVALID_ARGUMENT names the string when it is unknown or
// has no LibTorch equivalent.
absl::StatusOr<DataType> ParseDataType(absl::string_view name);
// kFp32 -> "FP32".
const char* DataTypeName(DataType type);
// Bytes per element; 0 for kInvalid.
size_t DataTypeSize(DataType type);

using Shape = std::vector<int64_t>;

// "[1, 28, 28]".
std::string ShapeToString(const Shape& shape);
// Product of dims; -1 if a dim is negative, or on overflow.
int64_t ElementCount(const Shape& shape);
// ElementCount(shape) * DataTypeSize(type); -1 as above, or when the
// product overflows (a dim of 2^62 FP32 elements would wrap to 0 bytes).
int64_t ByteCount(const Shape& shape, DataType type);

// A declared model input or output. shape may hold -1 for a free dimension.
struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kInvalid;
  Shape shape;

  // True if a concrete shape fits this spec (same rank, equal fixed dims).
  bool Matches(const Shape& concrete) const;
  // The spec with each -1 replaced by `free_dim`: what registration feeds
  // the model to check it.
  Shape Example(int64_t free_dim) const;
};

// INVALID_ARGUMENT unless the name is non-empty and every dim is > 0 or -1.
absl::Status ValidateSpec(const TensorSpec& spec);

// A dense, row-major tensor. `data` either points into memory someone else
// keeps alive for the duration of the call (a request's bytes: no copy), or
// into memory owned through `owner` (an output tensor's storage).
struct HostTensor {
  std::string name;
  DataType dtype = DataType::kInvalid;
  Shape shape;
  const char* data = nullptr;
  size_t byte_size = 0;
  // Keeps `data` alive when this tensor owns it; null for borrowed views.
  std::shared_ptr<const void> owner;

  // A tensor that owns a copy of `bytes`.
  static HostTensor Owned(std::string name, DataType dtype, Shape shape,
                          std::string bytes);
  // A view of `byte_size` bytes at `data`, which the caller keeps alive.
  static HostTensor Borrowed(std::string name, DataType dtype, Shape shape,
                             const char* data, size_t byte_size);
};

// Checks a request tensor against its spec: datatype, shape and byte size.
// INVALID_ARGUMENT names the input and gives expected vs actual.
absl::Status ValidateTensor(const TensorSpec& spec, const HostTensor& tensor);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_TENSOR_H_
