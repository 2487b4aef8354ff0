#include "server/runtime/runner.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>

#include <chrono>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/clock.h"
#include "server/common/logging.h"
#include "server/runtime/tensor_codec.h"
#include "server/runtime/unsafe_ops.h"

namespace twinserve {
namespace {

// Flattens forward()'s return value (a tensor, or a tuple/list of tensors).
absl::StatusOr<std::vector<at::Tensor>> Flatten(const c10::IValue& value) {
  std::vector<at::Tensor> out;
  if (value.isTensor()) {
    out.push_back(value.toTensor());
  } else if (value.isTuple()) {
    for (const auto& e : value.toTupleRef().elements()) {
      if (!e.isTensor()) {
        return absl::InvalidArgumentError(
            absl::StrCat("forward returned a tuple holding a ", e.tagKind(),
                         "; only tensors are supported"));
      }
      out.push_back(e.toTensor());
    }
  } else if (value.isTensorList()) {
    for (const at::Tensor& t : value.toTensorVector()) out.push_back(t);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("forward returned a ", value.tagKind(),
                     "; expected a tensor or a tuple of tensors"));
  }
  return out;
}

}  // namespace

void ReleaseCompilationUnit(torch::jit::Module& module) {
  try {
    if (auto cu = module._ivalue()->compilation_unit()) {
      cu->drop_all_functions();
    }
  } catch (const std::exception&) {
  }
}

namespace {

class TorchRunner : public Runner {
 public:
  TorchRunner(torch::jit::Module module, Signature signature,
              std::string execution_path, uint64_t parameter_bytes)
      : module_(std::move(module)),
        signature_(std::move(signature)),
        execution_path_(std::move(execution_path)),
        parameter_bytes_(parameter_bytes) {}

  // The module came from its own file, so its CompilationUnit is ours
  // alone. LibTorch keeps a unit alive through a cycle (its functions'
  // graphs hold a frozen module's weights as constants; pytorch#96726):
  // without dropping them, every runner discarded (a quantization trial, a
  // replaced variant) left its graphs and weights behind.
  ~TorchRunner() override { ReleaseCompilationUnit(module_); }

  absl::StatusOr<std::vector<HostTensor>> Run(
      const std::vector<HostTensor>& inputs,
      RunTimings* timings) const override {
    // OpenMP thread counts are per thread: a fresh worker thread would run
    // oneDNN kernels with one OpenMP thread per core (spinning against the
    // other workers) unless it adopts at::set_num_threads' setting first.
    thread_local bool threads_initialized = false;
    if (!threads_initialized) {
      at::init_num_threads();
      threads_initialized = true;
    }
    try {
      c10::InferenceMode guard;
      uint64_t t0 = NowNs();
      std::vector<c10::IValue> args;
      args.reserve(inputs.size());
      for (const HostTensor& in : inputs) {
        auto t = ToTorch(in);
        if (!t.ok()) return t.status();
        args.emplace_back(std::move(*t));
      }
      uint64_t t1 = NowNs();
      c10::IValue result = module_.forward(std::move(args));
      uint64_t t2 = NowNs();
      auto flat = Flatten(result);
      if (!flat.ok()) return absl::InternalError(flat.status().message());
      if (flat->size() != signature_.outputs.size()) {
        return absl::InternalError(absl::StrCat(
            "forward returned ", flat->size(), " tensors; the model declares ",
            signature_.outputs.size(), " outputs"));
      }
      std::vector<HostTensor> outputs;
      outputs.reserve(flat->size());
      for (size_t i = 0; i < flat->size(); ++i) {
        auto out = FromTorch(signature_.outputs[i].name, (*flat)[i]);
        if (!out.ok()) return absl::InternalError(out.status().message());
        outputs.push_back(std::move(*out));
      }
      if (timings != nullptr) {
        timings->input_ns = t1 - t0;
        timings->infer_ns = t2 - t1;
        timings->output_ns = NowNs() - t2;
      }
      return outputs;
    } catch (const std::exception& e) {
      return absl::InternalError(
          absl::StrCat("model forward failed: ", TorchErrorMessage(e)));
    }
  }

  const Signature& signature() const override { return signature_; }
  uint64_t parameter_bytes() const override { return parameter_bytes_; }
  const std::string& execution_path() const override { return execution_path_; }

 private:
  // forward() is const-callable in effect but not declared so by LibTorch.
  mutable torch::jit::Module module_;
  Signature signature_;
  std::string execution_path_;
  const uint64_t parameter_bytes_;
};

absl::StatusOr<std::vector<HostTensor>> ExampleInputs(
    const Signature& signature) {
  std::vector<HostTensor> inputs;
  for (const TensorSpec& spec : signature.inputs) {
    Shape shape = spec.Example(1);
    const int64_t n = ElementCount(shape);
    if (n < 0 || n > (int64_t{1} << 28)) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", spec.name, "' example shape ",
                       ShapeToString(shape), " is too large"));
    }
    HostTensor t =
        HostTensor::Owned(spec.name, spec.dtype, shape,
                          std::string(n * DataTypeSize(spec.dtype), '\0'));
    inputs.push_back(std::move(t));
  }
  return inputs;
}

// Checks outputs against the declared specs. Free dims match anything.
absl::Status CheckOutputs(const Signature& signature,
                          const std::vector<HostTensor>& outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const TensorSpec& spec = signature.outputs[i];
    const HostTensor& out = outputs[i];
    if (out.dtype != spec.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", spec.name, "' (position ", i,
                       ") is declared ", DataTypeName(spec.dtype),
                       " but the model returned ", DataTypeName(out.dtype)));
    }
    if (!spec.Matches(out.shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output '", spec.name, "' (position ", i, ") is declared ",
          ShapeToString(spec.shape), " but the model returned ",
          ShapeToString(out.shape), " for the example input"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Runner>> Runner::Load(
    const std::string& path, const Signature& signature,
    const RunnerOptions& options) {
  const bool check_ops = !UnsafeOpsAllowed();
  if (check_ops) {
    // Before loading: loading runs the model's __setstate__ methods.
    if (absl::Status st = CheckArchiveSource(path); !st.ok()) return st;
  }
  torch::jit::Module module;
  try {
    module = torch::jit::load(path);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a loadable TorchScript file: ", TorchErrorMessage(e)));
  }
  if (check_ops) {
    if (absl::Status st = CheckModule(module); !st.ok()) return st;
  }
  if (!module.find_method("forward")) {
    return absl::InvalidArgumentError("the TorchScript module has no forward");
  }
  const size_t num_args =
      module.get_method("forward").function().getSchema().arguments().size();
  if (num_args != signature.inputs.size() + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "forward takes ", num_args - 1, " inputs; the registration declares ",
        signature.inputs.size()));
  }
  module.eval();
  // Counted before freezing: a frozen module holds its weights as graph
  // constants (prepacked for oneDNN), where they are no longer parameters.
  uint64_t parameter_bytes = 0;
  for (const auto& p : module.parameters()) parameter_bytes += p.nbytes();
  for (const auto& b : module.buffers()) parameter_bytes += b.nbytes();

  std::string execution_path = "scripted";
  if (options.optimize) {
    try {
      torch::jit::Module frozen = torch::jit::freeze(module);
      execution_path = "frozen";
      try {
        module = torch::jit::optimize_for_inference(frozen);
        execution_path = "frozen+optimized";
      } catch (const std::exception& e) {
        TS_LOG(WARNING) << "optimize_for_inference failed, serving the frozen "
                           "module: "
                        << TorchErrorMessage(e);
        module = frozen;
      }
    } catch (const std::exception& e) {
      TS_LOG(WARNING) << "freezing failed, serving the scripted module: "
                      << TorchErrorMessage(e);
    }
  }

  auto runner = std::make_unique<TorchRunner>(std::move(module), signature,
                                              execution_path, parameter_bytes);
  auto inputs = ExampleInputs(signature);
  if (!inputs.ok()) return inputs.status();
  for (int i = 0; i < std::max(1, options.warmup_runs); ++i) {
    auto outputs = runner->Run(*inputs, nullptr);
    if (!outputs.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model failed on an example input shaped like its "
                       "declared inputs: ",
                       outputs.status().message()));
    }
    absl::Status st = CheckOutputs(signature, *outputs);
    if (!st.ok()) return st;
  }
  return runner;
}

std::string TorchErrorMessage(const std::exception& e) {
  const char* what = e.what();
  if (auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
    what = c10->what_without_backtrace();
  }
  const std::string text(what);
  const size_t end = text.find_last_not_of(" \n");
  if (end == std::string::npos) return text;
  if (text.rfind("The following operation failed in the TorchScript", 0) == 0) {
    const size_t start = text.rfind('\n', end);
    return text.substr(start == std::string::npos ? 0 : start + 1,
                       end - (start == std::string::npos ? 0 : start + 1) + 1);
  }
  const size_t start = text.find_first_not_of(" \n");
  return text.substr(start, text.find('\n', start) - start);
}

void LimitOneDnnCaches(int capacity) {
  const std::string value = std::to_string(std::max(0, capacity));
  // Read by oneDNN (ONEDNN_ or DNNL_ prefix) and by ideep at first use.
  setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", value.c_str(), 1);
  setenv("LRU_CACHE_CAPACITY", value.c_str(), 1);
}

int BlasThreads() {
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(
      dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get != nullptr ? get() : -1;
}

void ConfigureTorchThreads(int intra_op_threads, int inter_op_threads) {
  static std::once_flag once;
  std::call_once(once, [&] {
    if (intra_op_threads > 0) {
      at::set_num_threads(intra_op_threads);
      // Debian's LibTorch calls BLAS through libblas.so.3, so its setting
      // never reaches OpenBLAS, which starts one thread per core. Looked
      // up at run time: another BLAS may stand behind libblas.so.3.
      using SetThreads = void (*)(int);
      if (auto set = reinterpret_cast<SetThreads>(
              dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
        set(intra_op_threads);
      }
    }
    if (inter_op_threads > 0) at::set_num_interop_threads(inter_op_threads);
  });
}

void UseOneDnnQuantizedEngine() {
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
}

}  // namespace twinserve
