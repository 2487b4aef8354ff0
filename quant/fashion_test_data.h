// Fashion-MNIST slices as calibration sets, for the quantizer's tests
// (testonly). The images come from the Debian package dataset-fashion-mnist.
#ifndef TWINSERVE_QUANT_FASHION_TEST_DATA_H_
#define TWINSERVE_QUANT_FASHION_TEST_DATA_H_

#include <cstdint>
#include <string>

#include "quant/calibration_set.h"
#include "server/common/signature.h"

namespace twinserve {
namespace testing {

// image [-1, 1, 28, 28] FP32 -> logits [-1, 10] FP32.
Signature FashionSignature();

// `count` images of `split` ("train" or "t10k") from `offset`, with their
// labels, scaled to [0, 1] (or left as raw 0-255 pixels with `raw`).
CalibrationSet LoadFashion(const std::string& split, int64_t offset,
                           int64_t count, const std::string& name,
                           bool raw = false);

}  // namespace testing
}  // namespace twinserve

#endif  // TWINSERVE_QUANT_FASHION_TEST_DATA_H_
