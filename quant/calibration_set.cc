#include "quant/calibration_set.h"

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"

namespace twinserve {
namespace {

constexpr char kMagic[] = "TWINCAL1";

Shape Tail(const Shape& s) { return Shape(s.begin() + 1, s.end()); }

}  // namespace

absl::StatusOr<CalibrationSet> CalibrationSet::ForSignature(
    const Signature& signature, std::string name) {
  CalibrationSet set;
  set.name_ = std::move(name);
  for (const TensorSpec& spec : signature.inputs) {
    if (spec.shape.empty() || spec.shape[0] != -1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "input '", spec.name, "' has shape ", ShapeToString(spec.shape),
          "; calibration needs a free leading (batch) dim on every input"));
    }
    set.specs_.push_back(spec);
  }
  set.sample_shape_.resize(set.specs_.size());
  set.data_.resize(set.specs_.size());
  return set;
}

uint64_t CalibrationSet::byte_size() const {
  uint64_t n = labels_.size() * sizeof(int64_t);
  for (const auto& d : data_) n += d.size();
  return n;
}

absl::Status CalibrationSet::Append(const std::vector<HostTensor>& inputs,
                                    const std::vector<int64_t>& labels,
                                    const CalibrationLimits& limits) {
  if (inputs.size() != specs_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples carry ", inputs.size(),
                     " tensors; the model has ", specs_.size(), " inputs"));
  }
  std::vector<const HostTensor*> ordered(specs_.size(), nullptr);
  int64_t k = -1;
  uint64_t added_bytes = 0;
  for (const HostTensor& t : inputs) {
    size_t i = 0;
    while (i < specs_.size() && specs_[i].name != t.name) ++i;
    if (i == specs_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown input '", t.name, "' in calibration samples"));
    }
    if (ordered[i] != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", t.name, "' is given twice"));
    }
    absl::Status st = ValidateTensor(specs_[i], t);
    if (!st.ok()) return st;
    const Shape tail = Tail(t.shape);
    const Shape& expect = num_samples_ > 0 ? sample_shape_[i] : tail;
    if (tail != expect) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", t.name, "': sample shape ", ShapeToString(tail),
          " differs from the set's ", ShapeToString(expect)));
    }
    if (k >= 0 && t.shape[0] != k) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", t.name, "' holds ", t.shape[0],
                       " samples, another input ", k));
    }
    k = t.shape[0];
    ordered[i] = &t;
    added_bytes += t.byte_size;
  }
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != k) {
    return absl::InvalidArgumentError(absl::StrCat(
        labels.size(), " labels for ", k, " samples; send one per sample"));
  }
  if (num_samples_ > 0 && labels.empty() != labels_.empty()) {
    return absl::InvalidArgumentError(
        "label every sample of a set or none of them");
  }
  if (num_samples_ + k > limits.max_samples) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "calibration set '", name_, "' would hold ", num_samples_ + k,
        " samples; the limit is ", limits.max_samples));
  }
  if (byte_size() + added_bytes > limits.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "calibration set '", name_, "' would hold ", byte_size() + added_bytes,
        " bytes; the limit is ", limits.max_bytes));
  }
  for (size_t i = 0; i < specs_.size(); ++i) {
    sample_shape_[i] = Tail(ordered[i]->shape);
    data_[i].append(ordered[i]->data, ordered[i]->byte_size);
  }
  labels_.insert(labels_.end(), labels.begin(), labels.end());
  num_samples_ += k;
  return absl::OkStatus();
}

std::vector<HostTensor> CalibrationSet::Slice(int64_t begin,
                                              int64_t end) const {
  std::vector<HostTensor> out;
  for (size_t i = 0; i < specs_.size(); ++i) {
    const size_t per_sample =
        ElementCount(sample_shape_[i]) * DataTypeSize(specs_[i].dtype);
    HostTensor t;
    t.name = specs_[i].name;
    t.dtype = specs_[i].dtype;
    t.shape = sample_shape_[i];
    t.shape.insert(t.shape.begin(), end - begin);
    t.data = data_[i].data() + begin * per_sample;
    t.byte_size = (end - begin) * per_sample;
    out.push_back(std::move(t));
  }
  return out;
}

absl::StatusOr<CalibrationSet> CalibrationSet::ReadStored(
    const std::string& path, const std::string& sha256,
    const std::string& name) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  Sha256 sha;
  sha.Update(*bytes);
  if (sha.HexDigest() != sha256) {
    return absl::DataLossError(
        absl::StrCat("calibration set '", name, "' is corrupt on disk"));
  }
  return Parse(*bytes);
}

std::string CalibrationSet::Serialize() const {
  nlohmann::json header;
  header["name"] = name_;
  header["num_samples"] = num_samples_;
  header["labels"] = !labels_.empty();
  header["inputs"] = nlohmann::json::array();
  for (size_t i = 0; i < specs_.size(); ++i) {
    header["inputs"].push_back({{"name", specs_[i].name},
                                {"datatype", DataTypeName(specs_[i].dtype)},
                                {"spec_shape", specs_[i].shape},
                                {"sample_shape", sample_shape_[i]},
                                {"bytes", data_[i].size()}});
  }
  const std::string h = header.dump();
  std::string out(kMagic);
  const uint32_t len = h.size();
  out.append(reinterpret_cast<const char*>(&len), sizeof(len));
  out += h;
  for (const auto& d : data_) out += d;
  out.append(reinterpret_cast<const char*>(labels_.data()),
             labels_.size() * sizeof(int64_t));
  return out;
}

absl::StatusOr<CalibrationSet> CalibrationSet::Parse(absl::string_view bytes) {
  const size_t magic = std::strlen(kMagic);
  if (bytes.size() < magic + 4 || bytes.substr(0, magic) != kMagic) {
    return absl::DataLossError("not a calibration set file");
  }
  uint32_t len;
  std::memcpy(&len, bytes.data() + magic, 4);
  size_t pos = magic + 4;
  // Sizes are compared as `n > left`, never `pos + n > size`, which wraps.
  auto left = [&] { return bytes.size() - pos; };
  if (len > left()) return absl::DataLossError("truncated header");
  try {
    auto header = nlohmann::json::parse(bytes.substr(pos, len));
    pos += len;
    CalibrationSet set;
    set.name_ = header.at("name").get<std::string>();
    set.num_samples_ = header.at("num_samples").get<int64_t>();
    if (set.num_samples_ < 0) {
      return absl::DataLossError("negative sample count");
    }
    for (const auto& in : header.at("inputs")) {
      TensorSpec spec;
      spec.name = in.at("name").get<std::string>();
      auto dtype = ParseDataType(in.at("datatype").get<std::string>());
      if (!dtype.ok()) return absl::DataLossError(dtype.status().message());
      spec.dtype = *dtype;
      spec.shape = in.at("spec_shape").get<Shape>();
      Shape sample_shape = in.at("sample_shape").get<Shape>();
      const size_t n = in.at("bytes").get<size_t>();
      // What Append would have made: a free leading dim, a sample shape
      // that fits the spec, exactly num_samples samples of it.
      if (spec.shape.empty() || spec.shape[0] != -1) {
        return absl::DataLossError(absl::StrCat(
            "input '", spec.name, "' has no free leading dim in the set"));
      }
      if (set.num_samples_ > 0) {
        bool fits = sample_shape.size() + 1 == spec.shape.size();
        for (size_t d = 0; fits && d < sample_shape.size(); ++d) {
          fits =
              spec.shape[d + 1] == -1 || spec.shape[d + 1] == sample_shape[d];
        }
        if (!fits) {
          return absl::DataLossError(
              absl::StrCat("input '", spec.name, "': sample shape ",
                           ShapeToString(sample_shape), " does not fit ",
                           ShapeToString(spec.shape)));
        }
      }
      const int64_t per_sample = ByteCount(sample_shape, spec.dtype);
      if (per_sample < 0 ||
          (per_sample > 0 &&
           set.num_samples_ >
               std::numeric_limits<int64_t>::max() / per_sample) ||
          n != static_cast<uint64_t>(set.num_samples_ * per_sample)) {
        return absl::DataLossError(absl::StrCat(
            "input '", spec.name, "': ", n, " bytes do not hold ",
            set.num_samples_, " samples of ", ShapeToString(sample_shape)));
      }
      if (n > left()) return absl::DataLossError("truncated data");
      set.specs_.push_back(spec);
      set.sample_shape_.push_back(std::move(sample_shape));
      set.data_.emplace_back(bytes.substr(pos, n));
      pos += n;
    }
    if (header.at("labels").get<bool>()) {
      if (static_cast<uint64_t>(set.num_samples_) > left() / sizeof(int64_t)) {
        return absl::DataLossError("truncated labels");
      }
      const size_t n = set.num_samples_ * sizeof(int64_t);
      set.labels_.resize(set.num_samples_);
      std::memcpy(set.labels_.data(), bytes.data() + pos, n);
      pos += n;
    }
    if (left() != 0) {
      return absl::DataLossError(
          absl::StrCat(left(), " bytes after the end of the set"));
    }
    return set;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("corrupt set header: ", e.what()));
  }
}

}  // namespace twinserve
