#include "quant/fashion_test_data.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "client/idx.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace testing {

constexpr char kData[] = "/usr/share/datasets/fashion-mnist/";

Signature FashionSignature() {
  Signature s;
  s.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
  s.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
  return s;
}

CalibrationSet LoadFashion(const std::string& split, int64_t offset,
                           int64_t count, const std::string& name, bool raw) {
  auto images = ReadIdx(std::string(kData) + split + "-images-idx3-ubyte.gz");
  auto labels = ReadIdx(std::string(kData) + split + "-labels-idx1-ubyte.gz");
  if (!images.ok() || !labels.ok()) {
    ADD_FAILURE() << "Fashion-MNIST missing: install dataset-fashion-mnist";
    std::abort();
  }
  HostTensor all = ImagesToFloat(*images);
  std::vector<float> pixels(count * 784);
  std::memcpy(pixels.data(), all.data + offset * 784 * sizeof(float),
              pixels.size() * sizeof(float));
  if (raw) {
    for (float& p : pixels) p *= 255.0f;
  }
  HostTensor slice = HostTensor::Owned(
      "image", DataType::kFp32, {count, 1, 28, 28},
      std::string(reinterpret_cast<const char*>(pixels.data()),
                  pixels.size() * sizeof(float)));
  std::vector<int64_t> y(count);
  for (int64_t i = 0; i < count; ++i) {
    y[i] = static_cast<unsigned char>(labels->data[offset + i]);
  }
  auto set = CalibrationSet::ForSignature(FashionSignature(), name);
  EXPECT_TRUE(set->Append({slice}, y, CalibrationLimits{}).ok());
  return std::move(*set);
}

}  // namespace testing
}  // namespace twinserve
