// IDX files (the MNIST / Fashion-MNIST format), optionally gzip'd.
#ifndef TWINSERVE_CLIENT_IDX_H_
#define TWINSERVE_CLIENT_IDX_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/tensor.h"

namespace twinserve {

// Reads an unsigned-byte IDX file as a UINT8 tensor of its dims.
absl::StatusOr<HostTensor> ReadIdx(const std::string& path);

// The same from the file's (uncompressed) bytes. INVALID_ARGUMENT, naming
// `source`, for a bad magic, another element type, truncated dims, or data
// whose size does not match them.
absl::StatusOr<HostTensor> ParseIdx(absl::string_view bytes,
                                    const std::string& source);

// Images [N,H,W] UINT8 (rank 3 required) -> FP32 [N,1,H,W] scaled to [0,1], the
// input of the bundled Fashion-MNIST model.
HostTensor ImagesToFloat(const HostTensor& images);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_IDX_H_
