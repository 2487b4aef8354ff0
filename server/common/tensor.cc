#include "server/common/tensor.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace twinserve {
namespace {

struct TypeInfo {
  DataType type;
  const char* name;
  size_t size;
};

constexpr TypeInfo kTypes[] = {
    {DataType::kBool, "BOOL", 1},   {DataType::kUint8, "UINT8", 1},
    {DataType::kInt8, "INT8", 1},   {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4}, {DataType::kInt64, "INT64", 8},
    {DataType::kFp16, "FP16", 2},   {DataType::kBf16, "BF16", 2},
    {DataType::kFp32, "FP32", 4},   {DataType::kFp64, "FP64", 8},
};

}  // namespace

absl::StatusOr<DataType> ParseDataType(absl::string_view name) {
  for (const TypeInfo& t : kTypes) {
    if (name == t.name) return t.type;
  }
  if (name == "UINT16" || name == "UINT32" || name == "UINT64" ||
      name == "BYTES") {
    return absl::InvalidArgumentError(
        absl::StrCat("datatype ", name,
                     " is valid OIP but LibTorch has no such tensor type"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown datatype '", name,
                   "' (expected one of BOOL, UINT8, INT8, INT16, INT32, "
                   "INT64, FP16, BF16, FP32, FP64)"));
}

const char* DataTypeName(DataType type) {
  for (const TypeInfo& t : kTypes) {
    if (t.type == type) return t.name;
  }
  return "INVALID";
}

size_t DataTypeSize(DataType type) {
  for (const TypeInfo& t : kTypes) {
    if (t.type == type) return t.size;
  }
  return 0;
}

std::string ShapeToString(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int64_t ElementCount(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

int64_t ByteCount(const Shape& shape, DataType type) {
  const int64_t n = ElementCount(shape);
  const int64_t size = static_cast<int64_t>(DataTypeSize(type));
  if (n < 0 || size <= 0) return -1;
  if (n > std::numeric_limits<int64_t>::max() / size) return -1;
  return n * size;
}

bool TensorSpec::Matches(const Shape& concrete) const {
  if (concrete.size() != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (concrete[i] < 0) return false;
    if (shape[i] != -1 && shape[i] != concrete[i]) return false;
  }
  return true;
}

Shape TensorSpec::Example(int64_t free_dim) const {
  Shape out = shape;
  for (int64_t& d : out) {
    if (d == -1) d = free_dim;
  }
  return out;
}

absl::Status ValidateSpec(const TensorSpec& spec) {
  if (spec.name.empty()) {
    return absl::InvalidArgumentError("a tensor spec has an empty name");
  }
  if (spec.dtype == DataType::kInvalid) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor spec '", spec.name, "' has no datatype"));
  }
  for (int64_t d : spec.shape) {
    if (d == 0 || d < -1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor spec '", spec.name, "' has shape ", ShapeToString(spec.shape),
          "; each dim must be positive or -1 (free)"));
    }
  }
  return absl::OkStatus();
}

HostTensor HostTensor::Owned(std::string name, DataType dtype, Shape shape,
                             std::string bytes) {
  auto storage = std::make_shared<std::string>(std::move(bytes));
  HostTensor t = Borrowed(std::move(name), dtype, std::move(shape),
                          storage->data(), storage->size());
  t.owner = std::move(storage);
  return t;
}

HostTensor HostTensor::Borrowed(std::string name, DataType dtype, Shape shape,
                                const char* data, size_t byte_size) {
  HostTensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = data;
  t.byte_size = byte_size;
  return t;
}

absl::Status ValidateTensor(const TensorSpec& spec, const HostTensor& tensor) {
  if (tensor.dtype != spec.dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", spec.name, "': expected datatype ", DataTypeName(spec.dtype),
        ", got ", DataTypeName(tensor.dtype)));
  }
  if (!spec.Matches(tensor.shape)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", spec.name, "': expected shape ", ShapeToString(spec.shape),
        ", got ", ShapeToString(tensor.shape)));
  }
  const int64_t bytes = ByteCount(tensor.shape, spec.dtype);
  if (bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", spec.name, "': shape ", ShapeToString(tensor.shape), " of ",
        DataTypeName(spec.dtype), " is too large (its byte size overflows)"));
  }
  const uint64_t expected = static_cast<uint64_t>(bytes);
  if (tensor.byte_size != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", spec.name, "': shape ", ShapeToString(tensor.shape), " of ",
        DataTypeName(spec.dtype), " needs ", expected, " bytes, got ",
        tensor.byte_size));
  }
  return absl::OkStatus();
}

}  // namespace twinserve
