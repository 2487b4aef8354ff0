// NumPy .npy files (format 1.0-3.0) <-> HostTensor. Little-endian, C order;
// dtypes bool, u1, i1, i2, i4, i8, f2, f4, f8. BF16 has no NumPy dtype, so
// BF16 tensors are refused.
#ifndef TWINSERVE_CLIENT_NPY_H_
#define TWINSERVE_CLIENT_NPY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/tensor.h"

namespace twinserve {

// INVALID_ARGUMENT names what is wrong: bad magic, unsupported dtype,
// Fortran order, truncated data.
absl::StatusOr<HostTensor> ParseNpy(absl::string_view bytes,
                                    const std::string& name);
absl::StatusOr<HostTensor> ReadNpy(const std::string& path,
                                   const std::string& name);

absl::StatusOr<std::string> SerializeNpy(const HostTensor& tensor);
absl::Status WriteNpy(const std::string& path, const HostTensor& tensor);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_NPY_H_
