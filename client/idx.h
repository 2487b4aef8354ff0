// IDX files (the MNIST / Fashion-MNIST format), optionally gzip'd.
#ifndef TWINSERVE_CLIENT_IDX_H_
#define TWINSERVE_CLIENT_IDX_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/common/tensor.h"

namespace twinserve {

// Reads an unsigned-byte IDX file as a UINT8 tensor of its dims.
absl::StatusOr<HostTensor> ReadIdx(const std::string& path);

// Images [N,H,W] UINT8 -> FP32 [N,1,H,W] scaled to [0,1], the input of the
// bundled Fashion-MNIST model.
HostTensor ImagesToFloat(const HostTensor& images);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_IDX_H_
