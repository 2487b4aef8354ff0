#include "server/grpc/oip_codec.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/clock.h"
#include "server/common/status_macros.h"

namespace twinserve {
namespace {

using inference::InferTensorContents;
using inference::ModelInferRequest;

template <typename To, typename Repeated>
absl::StatusOr<std::string> Pack(const Repeated& values,
                                 const std::string& name) {
  std::string bytes(values.size() * sizeof(To), '\0');
  To* out = reinterpret_cast<To*>(bytes.data());
  for (int i = 0; i < values.size(); ++i) {
    const auto v = values.Get(i);
    if constexpr (std::is_integral_v<To> && !std::is_same_v<To, bool>) {
      if (v < std::numeric_limits<To>::min() ||
          v > std::numeric_limits<To>::max()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", name, "': element ", i, " (", v,
                         ") is out of range for its datatype"));
      }
    }
    out[i] = static_cast<To>(v);
  }
  return bytes;
}

// The first non-empty typed-contents field, or "" (to name a request that
// filled the field of another datatype).
const char* FilledField(const InferTensorContents& c) {
  if (c.bool_contents_size() > 0) return "bool_contents";
  if (c.int_contents_size() > 0) return "int_contents";
  if (c.int64_contents_size() > 0) return "int64_contents";
  if (c.uint_contents_size() > 0) return "uint_contents";
  if (c.uint64_contents_size() > 0) return "uint64_contents";
  if (c.fp32_contents_size() > 0) return "fp32_contents";
  if (c.fp64_contents_size() > 0) return "fp64_contents";
  if (c.bytes_contents_size() > 0) return "bytes_contents";
  return "";
}

// The typed-contents field that carries `dtype`, as the OIP spec assigns it.
absl::StatusOr<std::string> PackContents(const std::string& name,
                                         DataType dtype,
                                         const InferTensorContents& c,
                                         int64_t expected_count) {
  int count = 0;
  absl::StatusOr<std::string> bytes;
  switch (dtype) {
    case DataType::kBool:
      count = c.bool_contents_size();
      bytes = Pack<bool>(c.bool_contents(), name);
      break;
    case DataType::kUint8:
      count = c.uint_contents_size();
      bytes = Pack<uint8_t>(c.uint_contents(), name);
      break;
    case DataType::kInt8:
      count = c.int_contents_size();
      bytes = Pack<int8_t>(c.int_contents(), name);
      break;
    case DataType::kInt16:
      count = c.int_contents_size();
      bytes = Pack<int16_t>(c.int_contents(), name);
      break;
    case DataType::kInt32:
      count = c.int_contents_size();
      bytes = Pack<int32_t>(c.int_contents(), name);
      break;
    case DataType::kInt64:
      count = c.int64_contents_size();
      bytes = Pack<int64_t>(c.int64_contents(), name);
      break;
    case DataType::kFp32:
      count = c.fp32_contents_size();
      bytes = Pack<float>(c.fp32_contents(), name);
      break;
    case DataType::kFp64:
      count = c.fp64_contents_size();
      bytes = Pack<double>(c.fp64_contents(), name);
      break;
    case DataType::kFp16:
    case DataType::kBf16:
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "': ", DataTypeName(dtype),
                       " has no typed contents field; send it in "
                       "raw_input_contents"));
    case DataType::kInvalid:
      return absl::InvalidArgumentError("invalid datatype");
  }
  if (count != expected_count) {
    std::string hint;
    if (count == 0 && *FilledField(c) != '\0') {
      hint = absl::StrCat(" (the request filled ", FilledField(c),
                          ", which does not carry ", DataTypeName(dtype), ")");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", name, "': shape needs ", expected_count, " ",
        DataTypeName(dtype), " elements, contents hold ", count, hint));
  }
  return bytes;
}

// The value of an integer parameter (int64 or uint64), or INVALID_ARGUMENT
// "<what> must be a <kind> integer" when it is negative, zero without
// `allow_zero`, or not an integer.
absl::StatusOr<uint64_t> IntParameter(const std::string& what,
                                      const inference::InferParameter& p,
                                      bool allow_zero) {
  uint64_t v = 0;
  bool ok = false;
  if (p.has_int64_param() && p.int64_param() >= 0) {
    v = static_cast<uint64_t>(p.int64_param());
    ok = true;
  } else if (p.has_uint64_param() &&
             p.uint64_param() <= static_cast<uint64_t>(INT64_MAX)) {
    v = p.uint64_param();
    ok = true;
  }
  if (!ok || (v == 0 && !allow_zero)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a ",
                     allow_zero ? "non-negative" : "positive", " integer"));
  }
  return v;
}

// Reads Triton's shared-memory parameters of a tensor. Returns false when
// the tensor names no region.
absl::StatusOr<bool> ShmParameters(
    const std::string& what,
    const google::protobuf::Map<std::string, inference::InferParameter>& params,
    std::string* region, uint64_t* offset, uint64_t* byte_size) {
  auto it = params.find(kShmRegionParameter);
  if (it == params.end()) return false;
  if (!it->second.has_string_param() || it->second.string_param().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", kShmRegionParameter, " must be a string"));
  }
  *region = it->second.string_param();
  auto size = params.find(kShmByteSizeParameter);
  if (size == params.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", kShmRegionParameter, " needs ", kShmByteSizeParameter));
  }
  TS_ASSIGN_OR_RETURN(
      *byte_size, IntParameter(absl::StrCat(what, ": ", kShmByteSizeParameter),
                               size->second, /*allow_zero=*/true));
  *offset = 0;
  if (auto off = params.find(kShmOffsetParameter); off != params.end()) {
    TS_ASSIGN_OR_RETURN(
        *offset, IntParameter(absl::StrCat(what, ": ", kShmOffsetParameter),
                              off->second, /*allow_zero=*/true));
  }
  return true;
}

absl::StatusOr<SharedMemoryView> ShmView(
    const std::string& what,
    const google::protobuf::Map<std::string, inference::InferParameter>& params,
    const SharedMemoryScope* shm, bool* named) {
  std::string region;
  uint64_t offset = 0, byte_size = 0;
  TS_ASSIGN_OR_RETURN(
      *named, ShmParameters(what, params, &region, &offset, &byte_size));
  if (!*named) return SharedMemoryView();
  if (shm == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": shared memory cannot be used here"));
  }
  auto view = shm->View(region, offset, byte_size);
  if (!view.ok()) {
    return absl::Status(view.status().code(),
                        absl::StrCat(what, ": ", view.status().message()));
  }
  return view;
}

template <typename T>
void ReadAsDouble(const char* data, int64_t n, std::vector<double>* out) {
  out->resize(n);
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, data + i * sizeof(T), sizeof(T));
    (*out)[i] = static_cast<double>(v);
  }
}

// Triton's classification: the top `k` of the last dim, best first, as OIP
// BYTES ("value:index", each preceded by its 4-byte little-endian length).
absl::Status Classify(const HostTensor& t, int64_t k, Shape* shape,
                      std::string* bytes) {
  const std::string what = absl::StrCat("output '", t.name, "'");
  if (t.shape.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is a scalar: nothing to classify"));
  }
  const int64_t classes = t.shape.back();
  if (k > classes) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", classes,
                                                   " classes; classification ",
                                                   k, " asks for more"));
  }
  const int64_t n = ElementCount(t.shape);
  std::vector<double> values;
  switch (t.dtype) {
    case DataType::kFp32:
      ReadAsDouble<float>(t.data, n, &values);
      break;
    case DataType::kFp64:
      ReadAsDouble<double>(t.data, n, &values);
      break;
    case DataType::kInt32:
      ReadAsDouble<int32_t>(t.data, n, &values);
      break;
    case DataType::kInt64:
      ReadAsDouble<int64_t>(t.data, n, &values);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is ", DataTypeName(t.dtype),
                       "; classification needs FP32, FP64, INT32 or INT64"));
  }
  *shape = t.shape;
  shape->back() = k;
  bytes->clear();
  std::vector<int64_t> order(classes);
  for (int64_t row = 0; classes > 0 && row < n / classes; ++row) {
    const double* v = values.data() + row * classes;
    for (int64_t i = 0; i < classes; ++i) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [v](int64_t a, int64_t b) {
                        return v[a] > v[b] || (v[a] == v[b] && a < b);
                      });
    for (int64_t i = 0; i < k; ++i) {
      const std::string entry = absl::StrFormat("%f:%d", v[order[i]], order[i]);
      const uint32_t len = static_cast<uint32_t>(entry.size());
      char le[4] = {static_cast<char>(len & 0xff),
                    static_cast<char>((len >> 8) & 0xff),
                    static_cast<char>((len >> 16) & 0xff),
                    static_cast<char>((len >> 24) & 0xff)};
      bytes->append(le, 4);
      bytes->append(entry);
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<SharedMemoryUse>& Use(std::shared_ptr<SharedMemoryUse>* use) {
  if (*use == nullptr) *use = std::make_shared<SharedMemoryUse>();
  return *use;
}

}  // namespace

absl::StatusOr<std::vector<HostTensor>> DecodeTensors(
    const google::protobuf::RepeatedPtrField<
        inference::ModelInferRequest::InferInputTensor>& inputs,
    const google::protobuf::RepeatedPtrField<std::string>& raw_contents,
    const SharedMemoryScope* shm) {
  std::vector<HostTensor> out;
  const bool raw = raw_contents.size() > 0;
  // Raw entries go, in order, to the inputs that are not in shared memory.
  int in_shm = 0;
  for (const auto& in : inputs) {
    in_shm += in.parameters().count(kShmRegionParameter) > 0;
  }
  if (raw && raw_contents.size() != inputs.size() - in_shm) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", raw_contents.size(), " entries for ",
        inputs.size() - in_shm,
        " inputs not in shared memory; send one per input, in order"));
  }
  out.reserve(inputs.size());
  int next_raw = 0;
  for (int i = 0; i < inputs.size(); ++i) {
    const auto& in = inputs.Get(i);
    auto dtype = ParseDataType(in.datatype());
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name(), "': ", dtype.status().message()));
    }
    Shape shape(in.shape().begin(), in.shape().end());
    for (int64_t d : shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", in.name(), "': shape ",
                         ShapeToString(shape), " has a negative dim"));
      }
    }
    bool named = false;
    auto view = ShmView(absl::StrCat("input '", in.name(), "'"),
                        in.parameters(), shm, &named);
    if (!view.ok()) return view.status();
    if (named) {
      if (in.has_contents()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", in.name(),
                         "' is in shared memory and also has contents; use "
                         "one or the other"));
      }
      HostTensor t = HostTensor::Borrowed(in.name(), *dtype, std::move(shape),
                                          view->data, view->byte_size);
      t.owner = std::move(view->pin);  // the region stays mapped while used
      out.push_back(std::move(t));
      continue;
    }
    if (raw) {
      if (in.has_contents()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", in.name(),
            "' has typed contents while raw_input_contents is used; use one "
            "or the other"));
      }
      const std::string& bytes = raw_contents.Get(next_raw++);
      out.push_back(HostTensor::Borrowed(in.name(), *dtype, std::move(shape),
                                         bytes.data(), bytes.size()));
      continue;
    }
    const int64_t count = ElementCount(shape);
    if (count < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name(), "': shape ", ShapeToString(shape),
                       " is too large"));
    }
    TS_ASSIGN_OR_RETURN(std::string bytes,
                        PackContents(in.name(), *dtype, in.contents(), count));
    out.push_back(HostTensor::Owned(in.name(), *dtype, std::move(shape),
                                    std::move(bytes)));
  }
  return out;
}

absl::StatusOr<InferRequest> DecodeInferRequest(
    const ModelInferRequest& request, const SharedMemoryScope* shm,
    std::shared_ptr<SharedMemoryUse>* use) {
  std::shared_ptr<SharedMemoryUse> no_use;
  if (use == nullptr) use = &no_use;
  InferRequest out;
  out.model = request.model_name();
  out.version = request.model_version();
  TS_ASSIGN_OR_RETURN(
      out.inputs,
      DecodeTensors(request.inputs(), request.raw_input_contents(), shm));
  if (auto it = request.parameters().find(kTimeoutParameter);
      it != request.parameters().end()) {
    TS_ASSIGN_OR_RETURN(
        const uint64_t us,
        IntParameter("parameter timeout (microseconds)", it->second,
                     /*allow_zero=*/true));
    // 0 means none, as in Triton; a year caps what overflow could do.
    if (us > 0)
      out.deadline_ns =
          NowNs() + std::min<uint64_t>(us, 31'536'000'000'000) * 1000;
  }
  if (auto it = request.parameters().find("routing_key");
      it != request.parameters().end()) {
    const auto& p = it->second;
    if (p.has_string_param()) {
      out.routing_key = p.string_param();
    } else if (p.has_int64_param()) {
      out.routing_key = absl::StrCat(p.int64_param());
    } else {
      return absl::InvalidArgumentError(
          "parameter routing_key must be a string or an int64");
    }
  }
  out.requested_outputs.reserve(request.outputs_size());
  for (const auto& o : request.outputs()) {
    // One answer per name: a second request for it could only contradict
    // the first (another shared memory range, another classification).
    if (std::find(out.requested_outputs.begin(), out.requested_outputs.end(),
                  o.name()) != out.requested_outputs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", o.name(), "' is requested twice"));
    }
    out.requested_outputs.push_back(o.name());
    if (auto c = o.parameters().find(kClassificationParameter);
        c != o.parameters().end()) {
      auto k = IntParameter(
          absl::StrCat("output '", o.name(), "': ", kClassificationParameter),
          c->second, /*allow_zero=*/false);
      if (!k.ok()) return k.status();
    }
    bool named = false;
    auto view = ShmView(absl::StrCat("output '", o.name(), "'"), o.parameters(),
                        shm, &named);
    if (!view.ok()) return view.status();
    if (named) Use(use)->outputs[o.name()] = std::move(*view);
  }
  return out;
}

absl::Status EncodeInferResponse(const ModelInferRequest& request,
                                 const InferResult& result,
                                 inference::ModelInferResponse* response,
                                 const SharedMemoryUse* use) {
  response->set_model_name(result.model);
  response->set_model_version(result.variant);
  response->set_id(request.id());
  (*response->mutable_parameters())[kVariantParameter].set_string_param(
      result.variant);
  for (const HostTensor& t : result.outputs) {
    const inference::ModelInferRequest::InferRequestedOutputTensor* spec =
        nullptr;
    for (const auto& o : request.outputs()) {
      if (o.name() == t.name) spec = &o;
    }
    auto* out = response->add_outputs();
    out->set_name(t.name);
    const char* data = t.data;
    size_t byte_size = t.byte_size;
    std::string classified;
    const inference::InferParameter* classification = nullptr;
    if (spec != nullptr) {
      auto c = spec->parameters().find(kClassificationParameter);
      if (c != spec->parameters().end()) classification = &c->second;
    }
    if (classification != nullptr) {
      TS_ASSIGN_OR_RETURN(
          const int64_t k,
          IntParameter(kClassificationParameter, *classification,
                       /*allow_zero=*/false));
      Shape shape;
      TS_RETURN_IF_ERROR(Classify(t, k, &shape, &classified));
      out->set_datatype("BYTES");
      for (int64_t d : shape) out->add_shape(d);
      data = classified.data();
      byte_size = classified.size();
    } else {
      out->set_datatype(DataTypeName(t.dtype));
      for (int64_t d : t.shape) out->add_shape(d);
    }
    if (use != nullptr) {
      if (auto it = use->outputs.find(t.name); it != use->outputs.end()) {
        const SharedMemoryView& view = it->second;
        if (byte_size > view.byte_size) {
          return absl::InvalidArgumentError(absl::StrCat(
              "output '", t.name, "' needs ", byte_size,
              " bytes; its shared memory range holds ", view.byte_size));
        }
        std::memcpy(view.data, data, byte_size);
        // Described as the request placed it, with the bytes written.
        auto& params = *out->mutable_parameters();
        for (const char* name : {kShmRegionParameter, kShmOffsetParameter}) {
          if (auto p = spec->parameters().find(name);
              p != spec->parameters().end()) {
            params[name] = p->second;
          }
        }
        params[kShmByteSizeParameter].set_int64_param(byte_size);
        response->add_raw_output_contents();  // keeps indexes aligned
        continue;
      }
    }
    response->add_raw_output_contents()->assign(data, byte_size);
  }
  return absl::OkStatus();
}

}  // namespace twinserve
