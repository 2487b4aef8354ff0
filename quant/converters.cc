#include "quant/converters.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "quant/observers.h"
#include "server/runtime/runner.h"
#include "server/runtime/tensor_codec.h"

namespace twinserve {

absl::StatusOr<Conversion> ConvertWithoutCalibration(
    const std::string& fp32_path, const Signature& signature,
    const QuantizeOptions& o, const std::string& path) {
  torch::NoGradGuard no_grad;
  std::string stage = "converting";
  try {
    torch::jit::Module fp32 = torch::jit::load(fp32_path);
    // All made here is saved; the unit is released however this ends.
    absl::Cleanup release = [&fp32] { ReleaseCompilationUnit(fp32); };
    fp32.eval();
    Conversion once;
    if (o.mode == QuantMode::kDynamic) {
      ObserverOptions obs;
      obs.per_channel_weights = o.per_channel_weights;
      torch::jit::QConfigDict dict;
      dict[""] = MakeDynamicQConfig(obs);
      for (const std::string& m : o.fp32_modules) dict[m] = c10::nullopt;
      torch::jit::Module prepared =
          torch::jit::InsertObservers(fp32, "forward", dict, /*inplace=*/false,
                                      torch::jit::QuantType::DYNAMIC);
      const auto observers = FindObservers(prepared);
      bool any_weight = false;
      for (const auto& ob : observers) any_weight |= ob.is_weight;
      if (!any_weight) {
        return absl::InvalidArgumentError(
            "the model has no Linear (or LSTM) layer for dynamic "
            "quantization; use mode static for convolutions");
      }
      once.parameter_bytes = QuantizedParameterBytes(prepared, observers);
      for (const auto& ob : observers) {
        if (ob.is_weight) once.layers.push_back({ob.target, true, 0, true});
      }
      torch::jit::Module q = torch::jit::InsertQuantDeQuant(
          prepared, "forward", false, false, torch::jit::QuantType::DYNAMIC);
      q = torch::jit::Finalize(q, torch::jit::QuantType::DYNAMIC, {});
      q.save(path);
      return once;
    }
    // FP16 / BF16: the weights converted, inputs cast down and outputs cast
    // back to their declared types around the original forward.
    const at::ScalarType low =
        o.mode == QuantMode::kFp16 ? at::kHalf : at::kBFloat16;
    fp32.to(low);
    for (const auto& p : fp32.parameters()) once.parameter_bytes += p.nbytes();
    for (const auto& b : fp32.buffers()) once.parameter_bytes += b.nbytes();
    std::vector<std::string> args, call;
    for (size_t i = 0; i < signature.inputs.size(); ++i) {
      const std::string a = absl::StrCat("x", i);
      args.push_back(a + ": Tensor");
      const DataType d = signature.inputs[i].dtype;
      const bool floating = d == DataType::kFp32 || d == DataType::kFp64 ||
                            d == DataType::kFp16 || d == DataType::kBf16;
      call.push_back(
          floating ? absl::StrCat(a, ".to(dtype=", static_cast<int>(low), ")")
                   : a);
    }
    auto code = [](DataType d) { return static_cast<int>(*ToScalarType(d)); };
    std::string body = absl::StrCat("    r = self.inner.forward(",
                                    absl::StrJoin(call, ", "), ")\n");
    if (signature.outputs.size() == 1) {
      absl::StrAppend(&body, "    return r.to(dtype=",
                      code(signature.outputs[0].dtype), ")\n");
    } else {
      std::vector<std::string> outs;
      for (size_t i = 0; i < signature.outputs.size(); ++i) {
        outs.push_back(absl::StrCat(
            "r[", i, "].to(dtype=", code(signature.outputs[i].dtype), ")"));
      }
      absl::StrAppend(&body, "    return (", absl::StrJoin(outs, ", "), ")\n");
    }
    torch::jit::Module wrapper("__torch__.twinserve.ReducedPrecision",
                               std::make_shared<torch::jit::CompilationUnit>(),
                               true);
    wrapper.register_module("inner", fp32);
    wrapper.define(absl::StrCat("def forward(self, ", absl::StrJoin(args, ", "),
                                "):\n", body));
    wrapper.eval();
    torch::jit::freeze(wrapper).save(path);
    return once;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conversion failed while ", stage, ": ", TorchErrorMessage(e)));
  }
}

}  // namespace twinserve
