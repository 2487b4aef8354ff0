#include "server/runtime/tensor_codec.h"

#include <ATen/ATen.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace twinserve {

absl::StatusOr<at::ScalarType> ToScalarType(DataType type) {
  switch (type) {
    case DataType::kBool:
      return at::kBool;
    case DataType::kUint8:
      return at::kByte;
    case DataType::kInt8:
      return at::kChar;
    case DataType::kInt16:
      return at::kShort;
    case DataType::kInt32:
      return at::kInt;
    case DataType::kInt64:
      return at::kLong;
    case DataType::kFp16:
      return at::kHalf;
    case DataType::kBf16:
      return at::kBFloat16;
    case DataType::kFp32:
      return at::kFloat;
    case DataType::kFp64:
      return at::kDouble;
    case DataType::kInvalid:
      break;
  }
  return absl::InvalidArgumentError("invalid datatype");
}

absl::StatusOr<DataType> FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kBool:
      return DataType::kBool;
    case at::kByte:
      return DataType::kUint8;
    case at::kChar:
      return DataType::kInt8;
    case at::kShort:
      return DataType::kInt16;
    case at::kInt:
      return DataType::kInt32;
    case at::kLong:
      return DataType::kInt64;
    case at::kHalf:
      return DataType::kFp16;
    case at::kBFloat16:
      return DataType::kBf16;
    case at::kFloat:
      return DataType::kFp32;
    case at::kDouble:
      return DataType::kFp64;
    default:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "tensor type ", c10::toString(type), " has no OIP datatype"));
}

bool CanWrapWithoutCopy(const HostTensor& tensor) {
  const size_t align = DataTypeSize(tensor.dtype);
  return align != 0 && reinterpret_cast<uintptr_t>(tensor.data) % align == 0;
}

absl::StatusOr<at::Tensor> ToTorch(const HostTensor& tensor) {
  auto scalar = ToScalarType(tensor.dtype);
  if (!scalar.ok()) return scalar.status();
  const auto options = at::TensorOptions().dtype(*scalar);
  if (tensor.byte_size == 0) return at::empty(tensor.shape, options);
  if (CanWrapWithoutCopy(tensor)) {
    // from_blob never writes through the pointer unless the model mutates
    // its input in place, which TorchScript inference models do not.
    void* data = const_cast<char*>(tensor.data);
    if (tensor.owner) {
      auto owner = tensor.owner;
      return at::from_blob(
          data, tensor.shape, [owner](void*) mutable { owner.reset(); },
          options);
    }
    return at::from_blob(data, tensor.shape, options);
  }
  at::Tensor out = at::empty(tensor.shape, options);
  std::memcpy(out.data_ptr(), tensor.data, tensor.byte_size);
  return out;
}

absl::StatusOr<HostTensor> FromTorch(std::string name, const at::Tensor& t) {
  if (t.is_quantized()) {
    return absl::InvalidArgumentError(
        absl::StrCat("output '", name,
                     "' is a quantized tensor; the model must dequantize "
                     "its outputs"));
  }
  auto dtype = FromScalarType(t.scalar_type());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("output '", name, "': ", dtype.status().message()));
  }
  at::Tensor dense = t.is_mkldnn() ? t.to_dense() : t;
  if (!dense.device().is_cpu()) dense = dense.cpu();
  auto holder = std::make_shared<at::Tensor>(dense.contiguous());
  HostTensor out;
  out.name = std::move(name);
  out.dtype = *dtype;
  out.shape.assign(holder->sizes().begin(), holder->sizes().end());
  out.data = static_cast<const char*>(holder->data_ptr());
  out.byte_size = holder->nbytes();
  out.owner = std::move(holder);
  return out;
}

}  // namespace twinserve
