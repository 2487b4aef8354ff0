#include "client/npy.h"

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace twinserve {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

struct Descr {
  const char* descr;
  DataType dtype;
};
constexpr Descr kDescrs[] = {
    {"|b1", DataType::kBool},  {"|u1", DataType::kUint8},
    {"|i1", DataType::kInt8},  {"<i2", DataType::kInt16},
    {"<i4", DataType::kInt32}, {"<i8", DataType::kInt64},
    {"<f2", DataType::kFp16},  {"<f4", DataType::kFp32},
    {"<f8", DataType::kFp64},
};

// Value of 'key' in the header dict, e.g. "'<f4'" or "(2, 3)".
absl::StatusOr<std::string> DictValue(absl::string_view header,
                                      absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "':");
  size_t pos = header.find(quoted);
  if (pos == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy header has no '", key, "'"));
  }
  pos += quoted.size();
  while (pos < header.size() && header[pos] == ' ') ++pos;
  size_t end = pos;
  if (pos < header.size() && header[pos] == '(') {
    end = header.find(')', pos);
    if (end == absl::string_view::npos) {
      return absl::InvalidArgumentError("npy header: unterminated shape");
    }
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') {
      ++end;
    }
  }
  return std::string(absl::StripAsciiWhitespace(header.substr(pos, end - pos)));
}

}  // namespace

absl::StatusOr<HostTensor> ParseNpy(absl::string_view bytes,
                                    const std::string& name) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != absl::string_view(kMagic, 6)) {
    return absl::InvalidArgumentError("not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) |
                 (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return absl::InvalidArgumentError("truncated npy");
    header_len = 0;
    for (int i = 0; i < 4; ++i) {
      header_len |=
          static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i]))
          << (8 * i);
    }
    offset = 12;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported npy version ", major));
  }
  if (bytes.size() < offset + header_len) {
    return absl::InvalidArgumentError("truncated npy header");
  }
  const absl::string_view header = bytes.substr(offset, header_len);
  auto descr = DictValue(header, "descr");
  if (!descr.ok()) return descr.status();
  auto fortran = DictValue(header, "fortran_order");
  if (!fortran.ok()) return fortran.status();
  auto shape_text = DictValue(header, "shape");
  if (!shape_text.ok()) return shape_text.status();
  if (*fortran != "False") {
    return absl::InvalidArgumentError(
        "npy array is in Fortran order; save it C-contiguous");
  }
  std::string d(absl::StripPrefix(absl::StripSuffix(*descr, "'"), "'"));
  if (d == "<b1" || d == "=b1") d = "|b1";
  if (d == "<u1" || d == "=u1") d = "|u1";
  if (d == "<i1" || d == "=i1") d = "|i1";
  DataType dtype = DataType::kInvalid;
  for (const Descr& x : kDescrs) {
    if (d == x.descr) dtype = x.dtype;
  }
  if (dtype == DataType::kInvalid) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy dtype '", d, "' is not supported"));
  }
  Shape shape;
  absl::string_view inner = *shape_text;
  inner = absl::StripPrefix(absl::StripSuffix(inner, ")"), "(");
  for (absl::string_view part : absl::StrSplit(inner, ',', absl::SkipEmpty())) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    int64_t v;
    if (!absl::SimpleAtoi(part, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("npy shape ", *shape_text, " is malformed"));
    }
    shape.push_back(v);
  }
  const int64_t count = ByteCount(shape, dtype);
  const size_t data_size = count < 0 ? 0 : static_cast<size_t>(count);
  const size_t data_offset = offset + header_len;
  if (count < 0 || bytes.size() < data_offset ||
      bytes.size() - data_offset < data_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "npy data is truncated: shape ", ShapeToString(shape), " needs ",
        data_size, " bytes, file has ", bytes.size() - data_offset));
  }
  return HostTensor::Owned(name, dtype, std::move(shape),
                           std::string(bytes.substr(data_offset, data_size)));
}

absl::StatusOr<HostTensor> ReadNpy(const std::string& path,
                                   const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto t = ParseNpy(ss.str(), name);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", t.status().message()));
  }
  return t;
}

absl::StatusOr<std::string> SerializeNpy(const HostTensor& t) {
  const char* descr = nullptr;
  for (const Descr& x : kDescrs) {
    if (x.dtype == t.dtype) descr = x.descr;
  }
  if (descr == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", t.name, "' is ", DataTypeName(t.dtype),
                     ", which has no NumPy dtype"));
  }
  std::string shape = absl::StrJoin(t.shape, ", ");
  if (t.shape.size() == 1) shape += ",";
  std::string header =
      absl::StrCat("{'descr': '", descr,
                   "', 'fortran_order': False, 'shape': (", shape, "), }");
  // Pad so the data starts on a 64-byte boundary, ending with '\n'.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic, 6);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(t.data, t.byte_size);
  return out;
}

absl::Status WriteNpy(const std::string& path, const HostTensor& t) {
  auto bytes = SerializeNpy(t);
  if (!bytes.ok()) return bytes.status();
  std::ofstream out(path, std::ios::binary);
  out.write(bytes->data(), bytes->size());
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace twinserve
