#include "client/idx.h"

#include <zlib.h>

#include "absl/strings/str_cat.h"

namespace twinserve {

absl::StatusOr<HostTensor> ReadIdx(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (f == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string bytes;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) bytes.append(buf, n);
  gzclose(f);
  if (n < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot decompress"));
  }
  return ParseIdx(bytes, path);
}

absl::StatusOr<HostTensor> ParseIdx(absl::string_view bytes,
                                    const std::string& path) {
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an IDX file"));
  }
  if (bytes[2] != 0x08) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": only unsigned-byte IDX files are supported"));
  }
  const int ndim = static_cast<unsigned char>(bytes[3]);
  if (bytes.size() < 4 + 4 * static_cast<size_t>(ndim)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated"));
  }
  Shape shape;
  for (int i = 0; i < ndim; ++i) {
    int64_t d = 0;
    for (int k = 0; k < 4; ++k) {
      d = (d << 8) | static_cast<unsigned char>(bytes[4 + 4 * i + k]);
    }
    shape.push_back(d);
  }
  const size_t offset = 4 + 4 * ndim;
  const int64_t count = ElementCount(shape);
  if (count < 0 || bytes.size() - offset != static_cast<size_t>(count)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": data size does not match dims ", ShapeToString(shape)));
  }
  return HostTensor::Owned("idx", DataType::kUint8, shape,
                           std::string(bytes.substr(offset)));
}

HostTensor ImagesToFloat(const HostTensor& images) {
  Shape shape = {images.shape[0], 1, images.shape[1], images.shape[2]};
  std::string out(images.byte_size * sizeof(float), '\0');
  float* dst = reinterpret_cast<float*>(out.data());
  const unsigned char* src =
      reinterpret_cast<const unsigned char*>(images.data);
  for (size_t i = 0; i < images.byte_size; ++i) dst[i] = src[i] / 255.0f;
  return HostTensor::Owned("image", DataType::kFp32, shape, std::move(out));
}

}  // namespace twinserve
