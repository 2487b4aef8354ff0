#include "server/common/signature_json.h"

#include "absl/strings/str_cat.h"

namespace twinserve {

nlohmann::json SpecsToJson(const std::vector<TensorSpec>& specs) {
  nlohmann::json out = nlohmann::json::array();
  for (const TensorSpec& s : specs) {
    out.push_back(nlohmann::json{{"name", s.name},
                                 {"datatype", DataTypeName(s.dtype)},
                                 {"shape", s.shape}});
  }
  return out;
}

absl::StatusOr<std::vector<TensorSpec>> SpecsFromJson(const nlohmann::json& j) {
  try {
    std::vector<TensorSpec> out;
    for (const nlohmann::json& s : j) {
      TensorSpec spec;
      spec.name = s.at("name").get<std::string>();
      auto dtype = ParseDataType(s.at("datatype").get<std::string>());
      if (!dtype.ok()) return dtype.status();
      spec.dtype = *dtype;
      spec.shape = s.at("shape").get<Shape>();
      out.push_back(std::move(spec));
    }
    return out;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed tensor specs: ", e.what()));
  }
}

}  // namespace twinserve
