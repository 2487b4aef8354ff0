// CalibrationSet: samples uploaded for one model, durable as one file.
//
// Every model input must have a free leading (batch) dim; a set holds, per
// input, all its samples concatenated along that dim, plus optionally one
// int64 label per sample (classification) for labelled accuracy.
#ifndef TWINSERVE_QUANT_CALIBRATION_SET_H_
#define TWINSERVE_QUANT_CALIBRATION_SET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/signature.h"
#include "server/common/tensor.h"

namespace twinserve {

struct CalibrationLimits {
  int64_t max_samples = 100000;
  uint64_t max_bytes = uint64_t{2} << 30;
};

class CalibrationSet {
 public:
  CalibrationSet() = default;
  // An empty set for `signature`. FAILED_PRECONDITION if an input has no
  // free leading dim.
  static absl::StatusOr<CalibrationSet> ForSignature(const Signature& signature,
                                                     std::string name);

  // Appends samples: one tensor per model input (by name, any order), all
  // with the same dim 0 = k samples, and either no labels or k of them.
  // INVALID_ARGUMENT names the input that does not fit; RESOURCE_EXHAUSTED
  // past `limits`. On error the set is unchanged.
  absl::Status Append(const std::vector<HostTensor>& inputs,
                      const std::vector<int64_t>& labels,
                      const CalibrationLimits& limits);

  const std::string& name() const { return name_; }
  int64_t num_samples() const { return num_samples_; }
  bool has_labels() const { return !labels_.empty(); }
  const std::vector<int64_t>& labels() const { return labels_; }
  uint64_t byte_size() const;
  const std::vector<TensorSpec>& specs() const { return specs_; }

  // Samples [begin, end) of every input, as views into this set (valid while
  // it lives and is not appended to).
  std::vector<HostTensor> Slice(int64_t begin, int64_t end) const;

  std::string Serialize() const;
  // DATA_LOSS if `bytes` is not a set this code wrote.
  static absl::StatusOr<CalibrationSet> Parse(absl::string_view bytes);
  // The set the store keeps at `path` as `name`: DATA_LOSS when its SHA-256
  // is not `sha256` (hex) or it does not parse; ReadFile's errors.
  static absl::StatusOr<CalibrationSet> ReadStored(const std::string& path,
                                                   const std::string& sha256,
                                                   const std::string& name);

 private:
  std::string name_;
  std::vector<TensorSpec> specs_;    // shape[0] == -1
  std::vector<Shape> sample_shape_;  // per input, without dim 0; set by the
                                     // first Append when specs have free dims
  std::vector<std::string> data_;    // per input, concatenated samples
  std::vector<int64_t> labels_;
  int64_t num_samples_ = 0;
};

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_CALIBRATION_SET_H_
