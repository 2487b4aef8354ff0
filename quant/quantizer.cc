#include "quant/quantizer.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/fold_conv_bn.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/tensor_codec.h"
#include "quant/observers.h"
#include "server/core/file_util.h"

namespace twinserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// A range of samples of one set.
struct Samples {
  const CalibrationSet* set = nullptr;
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

absl::StatusOr<std::vector<c10::IValue>> Batch(const Samples& s, int64_t b,
                                               int64_t e) {
  std::vector<c10::IValue> args;
  for (const HostTensor& t : s.set->Slice(s.begin + b, s.begin + e)) {
    auto at = ToTorch(t);
    if (!at.ok()) return at.status();
    args.emplace_back(std::move(*at));
  }
  return args;
}

struct Once {
  std::vector<LayerReport> layers;
  uint64_t parameter_bytes = 0;
};

// Parameter bytes once quantized: weights seen by a weight observer become
// int8 plus a float scale and int zero point per channel; the rest (biases,
// FP32 layers) stay as they are.
uint64_t QuantizedParameterBytes(const torch::jit::Module& prepared,
                                 const std::vector<ObserverRef>& observers) {
  std::set<std::string> quantized;
  for (const ObserverRef& o : observers) {
    if (o.is_weight) quantized.insert(o.target);
  }
  uint64_t bytes = 0;
  for (const auto& p : prepared.named_parameters(/*recurse=*/true)) {
    if (quantized.count(p.name)) {
      const int64_t channels = p.value.dim() > 0 ? p.value.size(0) : 1;
      bytes += p.value.numel() + channels * (sizeof(float) + sizeof(int32_t));
    } else {
      bytes += p.value.nbytes();
    }
  }
  for (const auto& b : prepared.named_buffers(/*recurse=*/true)) {
    if (b.name.find("_observer_") == std::string::npos) {
      bytes += b.value.nbytes();
    }
  }
  return bytes;
}

// One pass of the pipeline with `excluded` modules kept in FP32. Writes the
// finalized module to `path`.
absl::StatusOr<Once> QuantizeOnce(
    const QuantizeInputs& in, const QuantizeOptions& o, const Samples& calib,
    const Samples& eval, const std::vector<std::string>& excluded,
    const std::string& path,
    const std::function<void(const QuantizeProgress&)>& progress,
    const std::atomic<bool>* cancel) {
  ObserverOptions obs;
  obs.method = o.method;
  obs.percentile = o.percentile;
  obs.per_channel_weights = o.per_channel_weights;
  torch::NoGradGuard no_grad;
  std::string stage = "preparing";
  try {
    torch::jit::Module fp32 = torch::jit::load(in.fp32_path);
    fp32.eval();
    torch::jit::Module folded = torch::jit::FoldConvBatchNorm(fp32);
    torch::jit::QConfigDict dict;
    dict[""] = MakeQConfig(obs);
    for (const std::string& m : excluded) dict[m] = c10::nullopt;
    torch::jit::Module prepared =
        torch::jit::InsertObservers(folded, "forward", dict, /*inplace=*/false,
                                    torch::jit::QuantType::STATIC);
    const auto observers = FindObservers(prepared);
    if (observers.empty()) {
      return absl::InvalidArgumentError(
          "the model has no op that static INT8 quantization supports "
          "(conv, linear, ...)");
    }

    const int passes = NeedsHistogram(obs) ? 2 : 1;
    const int64_t total = passes * calib.size() + eval.size();
    int64_t done = 0;
    auto run = [&](const Samples& s, const std::string& name) -> absl::Status {
      stage = name;
      for (int64_t b = 0; b < s.size(); b += o.batch_size) {
        if (cancel != nullptr && cancel->load()) {
          return absl::CancelledError("quantization was cancelled");
        }
        const int64_t e = std::min<int64_t>(s.size(), b + o.batch_size);
        auto args = Batch(s, b, e);
        if (!args.ok()) return args.status();
        prepared.forward(*args);
        done += e - b;
        if (progress) progress({name, done, total});
      }
      return absl::OkStatus();
    };
    SetPhase(observers, 0);
    absl::Status st = run(calib, "calibrating (ranges)");
    if (!st.ok()) return st;
    if (passes == 2) {
      SetPhase(observers, 1);
      st = run(calib, "calibrating (histograms)");
      if (!st.ok()) return st;
    }
    stage = "choosing ranges";
    FreezeQParams(observers);
    SetPhase(observers, 2);
    st = run(eval, "measuring layer SQNR");
    if (!st.ok()) return st;
    Once once;
    for (const ObserverRef& ref : observers) {
      once.layers.push_back(
          {ref.target, ref.is_weight, MeasuredSqnrDb(ref), true});
    }
    once.parameter_bytes = QuantizedParameterBytes(prepared, observers);
    stage = "converting";
    if (progress) progress({stage, done, total});
    torch::jit::Module quantized = torch::jit::InsertQuantDeQuant(
        prepared, "forward", /*inplace=*/false, /*debug=*/false,
        torch::jit::QuantType::STATIC);
    quantized =
        torch::jit::Finalize(quantized, torch::jit::QuantType::STATIC, {});
    quantized.save(path);
    return once;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization failed while ", stage, ": ", TorchErrorMessage(e)));
  }
}

// Dynamic INT8 or reduced precision: one conversion, no calibration.
absl::StatusOr<Once> ConvertOnce(const QuantizeInputs& in,
                                 const QuantizeOptions& o,
                                 const std::string& path) {
  torch::NoGradGuard no_grad;
  std::string stage = "converting";
  try {
    torch::jit::Module fp32 = torch::jit::load(in.fp32_path);
    fp32.eval();
    Once once;
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
    for (size_t i = 0; i < in.signature.inputs.size(); ++i) {
      const std::string a = absl::StrCat("x", i);
      args.push_back(a + ": Tensor");
      const DataType d = in.signature.inputs[i].dtype;
      const bool floating = d == DataType::kFp32 || d == DataType::kFp64 ||
                            d == DataType::kFp16 || d == DataType::kBf16;
      call.push_back(
          floating ? absl::StrCat(a, ".to(dtype=", static_cast<int>(low), ")")
                   : a);
    }
    auto code = [](DataType d) { return static_cast<int>(*ToScalarType(d)); };
    std::string body = absl::StrCat("    r = self.inner.forward(",
                                    absl::StrJoin(call, ", "), ")\n");
    if (in.signature.outputs.size() == 1) {
      absl::StrAppend(&body, "    return r.to(dtype=",
                      code(in.signature.outputs[0].dtype), ")\n");
    } else {
      std::vector<std::string> outs;
      for (size_t i = 0; i < in.signature.outputs.size(); ++i) {
        outs.push_back(absl::StrCat(
            "r[", i, "].to(dtype=", code(in.signature.outputs[i].dtype), ")"));
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

struct Metrics {
  double agreement = 0, cosine = 0, max_abs = 0, mean_abs = 0;
  double fp32_acc = -1, int8_acc = -1;
};

int64_t Argmax(const float* row, int64_t n) {
  return std::max_element(row, row + n) - row;
}

absl::StatusOr<Metrics> Evaluate(const Runner& fp32, const Runner& int8,
                                 const Samples& eval, int batch) {
  Metrics m;
  double cos_sum = 0, abs_sum = 0;
  int64_t agree = 0, fp_ok = 0, q_ok = 0, count = 0, elements = 0;
  const bool labels = eval.set->has_labels();
  for (int64_t b = 0; b < eval.size(); b += batch) {
    const int64_t e = std::min<int64_t>(eval.size(), b + batch);
    const auto slice = eval.set->Slice(eval.begin + b, eval.begin + e);
    auto a = fp32.Run(slice, nullptr);
    if (!a.ok()) return a.status();
    auto q = int8.Run(slice, nullptr);
    if (!q.ok()) return q.status();
    const HostTensor& ya = (*a)[0];
    const HostTensor& yq = (*q)[0];
    if (ya.dtype != DataType::kFp32 || yq.dtype != DataType::kFp32) {
      return absl::InvalidArgumentError(
          "evaluation compares FP32 outputs; the first output is not FP32");
    }
    const int64_t rows = e - b;
    const int64_t cols = ElementCount(ya.shape) / std::max<int64_t>(1, rows);
    const float* pa = reinterpret_cast<const float*>(ya.data);
    const float* pq = reinterpret_cast<const float*>(yq.data);
    for (int64_t r = 0; r < rows; ++r) {
      double dot = 0, na = 0, nq = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double x = pa[r * cols + c], y = pq[r * cols + c];
        dot += x * y;
        na += x * x;
        nq += y * y;
        const double d = std::fabs(x - y);
        abs_sum += d;
        m.max_abs = std::max(m.max_abs, d);
      }
      elements += cols;
      cos_sum += (na > 0 && nq > 0) ? dot / std::sqrt(na * nq) : 1.0;
      const int64_t top_a = Argmax(pa + r * cols, cols);
      const int64_t top_q = Argmax(pq + r * cols, cols);
      agree += top_a == top_q;
      if (labels) {
        const int64_t label = eval.set->labels()[eval.begin + b + r];
        fp_ok += top_a == label;
        q_ok += top_q == label;
      }
      ++count;
    }
  }
  if (count == 0) return m;
  m.agreement = 100.0 * agree / count;
  m.cosine = cos_sum / count;
  m.mean_abs = abs_sum / std::max<int64_t>(1, elements);
  if (labels) {
    m.fp32_acc = 100.0 * fp_ok / count;
    m.int8_acc = 100.0 * q_ok / count;
  }
  return m;
}

double MedianMs(const Runner& r, const std::vector<HostTensor>& in, int runs) {
  std::vector<double> ms;
  r.Run(in, nullptr).IgnoreError();  // warm
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    r.Run(in, nullptr).IgnoreError();
    ms.push_back(Seconds(t0) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::vector<HostTensor> LatencyInput(const Samples& s, int64_t batch) {
  // Repeat the first samples to fill `batch`.
  std::vector<HostTensor> out;
  const int64_t have = std::min<int64_t>(batch, s.size());
  const auto base = s.set->Slice(s.begin, s.begin + have);
  for (const HostTensor& t : base) {
    std::string bytes;
    while (static_cast<int64_t>(bytes.size()) <
           static_cast<int64_t>(t.byte_size / have * batch)) {
      bytes.append(t.data, t.byte_size);
    }
    bytes.resize(t.byte_size / have * batch);
    Shape shape = t.shape;
    shape[0] = batch;
    out.push_back(HostTensor::Owned(t.name, t.dtype, shape, std::move(bytes)));
  }
  return out;
}

bool CriterionMet(const QuantizeOptions& o, const Metrics& m) {
  if (o.max_agreement_loss >= 0 && 100.0 - m.agreement > o.max_agreement_loss) {
    return false;
  }
  if (o.max_accuracy_loss >= 0 && m.fp32_acc >= 0 &&
      m.fp32_acc - m.int8_acc > o.max_accuracy_loss) {
    return false;
  }
  return true;
}

// Module path of an activation observed at a submodule's output
// ("block1.conv1 output" -> "block1.conv1"), or "" for other tensors.
std::string ModuleOf(const LayerReport& l) {
  const std::string suffix = " output";
  if (l.is_weight || !absl::EndsWith(l.name, suffix)) return "";
  const std::string path = l.name.substr(0, l.name.size() - suffix.size());
  if (absl::StrContains(path, " ")) return "";
  return path;
}

}  // namespace

const char* QuantModeName(QuantMode mode) {
  switch (mode) {
    case QuantMode::kStatic:
      return "static";
    case QuantMode::kDynamic:
      return "dynamic";
    case QuantMode::kFp16:
      return "fp16";
    case QuantMode::kBf16:
      return "bf16";
  }
  return "unknown";
}

absl::StatusOr<QuantMode> ParseQuantMode(const std::string& name) {
  for (QuantMode m : {QuantMode::kStatic, QuantMode::kDynamic, QuantMode::kFp16,
                      QuantMode::kBf16}) {
    if (name == QuantModeName(m)) return m;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown quantization mode '", name, "' (static, dynamic, fp16, bf16)"));
}

const char* RangeMethodName(RangeMethod method) {
  switch (method) {
    case RangeMethod::kMinMax:
      return "minmax";
    case RangeMethod::kPercentile:
      return "percentile";
    case RangeMethod::kEntropy:
      return "entropy";
    case RangeMethod::kMse:
      return "mse";
  }
  return "unknown";
}

absl::StatusOr<RangeMethod> ParseRangeMethod(const std::string& name) {
  for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile,
                        RangeMethod::kEntropy, RangeMethod::kMse}) {
    if (name == RangeMethodName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown calibration method '", name,
                   "' (minmax, percentile, entropy, mse)"));
}

void UseOneDnnQuantizedEngine() {
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
}

absl::StatusOr<QuantizeResult> QuantizeModel(
    const QuantizeInputs& in, const QuantizeOptions& options,
    const std::string& output_path,
    const std::function<void(const QuantizeProgress&)>& progress,
    const std::atomic<bool>* cancel) {
  const auto start = Clock::now();
  if (in.calibration == nullptr || in.calibration->num_samples() == 0) {
    return absl::FailedPreconditionError(
        "the calibration set is empty; upload samples first");
  }
  if (in.fp32_runner == nullptr) {
    return absl::FailedPreconditionError("the FP32 variant is not loaded");
  }
  // Calibration and evaluation samples.
  Samples calib{in.calibration, 0, in.calibration->num_samples()};
  Samples eval;
  if (in.evaluation != nullptr && in.evaluation->num_samples() > 0) {
    eval = {in.evaluation, 0, in.evaluation->num_samples()};
  } else {
    const int64_t n = calib.size();
    const int64_t held =
        n >= 2
            ? std::max<int64_t>(1, std::llround(n * options.holdout_fraction))
            : 0;
    eval = held > 0 ? Samples{in.calibration, n - held, n} : calib;
    calib.end = n - held;
  }
  calib.end =
      std::min(calib.end, calib.begin + options.max_calibration_samples);
  eval.end = std::min(eval.end, eval.begin + options.max_eval_samples);

  QuantizationReport report;
  report.method = RangeMethodName(options.method);
  report.percentile = options.percentile;
  report.per_channel_weights = options.per_channel_weights;
  report.calibration_samples = calib.size();
  report.eval_samples = eval.size();
  report.fp32_serialized_bytes = in.fp32_serialized_bytes;
  report.fp32_parameter_bytes = in.fp32_runner->parameter_bytes();

  std::vector<std::string> excluded = options.fp32_modules;
  RunnerOptions int8_options;
  int8_options.optimize = false;  // Finalize froze it already
  std::unique_ptr<Runner> runner;
  Once once;
  Metrics metrics;
  report.mode = QuantModeName(options.mode);
  const bool is_static = options.mode == QuantMode::kStatic;
  if (!is_static) report.calibration_samples = 0;
  for (int trial = 1;; ++trial) {
    if (!is_static && progress) progress({"converting", 0, 0});
    auto q = is_static ? QuantizeOnce(in, options, calib, eval, excluded,
                                      output_path, progress, cancel)
                       : ConvertOnce(in, options, output_path);
    if (!q.ok()) return q.status();
    once = std::move(*q);
    auto loaded = Runner::Load(output_path, in.signature, int8_options);
    if (!loaded.ok()) {
      return absl::InternalError(absl::StrCat(
          "the quantized model does not run: ", loaded.status().message()));
    }
    runner = std::move(*loaded);
    if (progress) progress({"evaluating", 0, eval.size()});
    auto m = Evaluate(*in.fp32_runner, *runner, eval, options.batch_size);
    if (!m.ok()) return m.status();
    metrics = *m;
    report.trials = trial;
    report.criterion_met = CriterionMet(options, metrics);
    if (report.criterion_met || !options.auto_fallback || !is_static) break;
    if (trial >= options.max_trials ||
        Seconds(start) > options.time_limit_seconds) {
      report.fallback_log.push_back(
          absl::StrCat("stopped after ", trial, " trials and ",
                       static_cast<int>(Seconds(start)),
                       " s with the criterion still failing"));
      break;
    }
    // Return the quantized layer with the worst output SQNR to FP32.
    const LayerReport* worst = nullptr;
    for (const LayerReport& l : once.layers) {
      const std::string mod = ModuleOf(l);
      if (mod.empty() || std::count(excluded.begin(), excluded.end(), mod)) {
        continue;
      }
      if (worst == nullptr || l.sqnr_db < worst->sqnr_db) worst = &l;
    }
    if (worst == nullptr) {
      report.fallback_log.push_back(
          "no quantized layer left to return to FP32");
      break;
    }
    report.fallback_log.push_back(absl::StrFormat(
        "trial %d: top-1 agreement %.2f%%%s; %s has the lowest SQNR "
        "(%.1f dB) and goes back to FP32",
        trial, metrics.agreement,
        metrics.fp32_acc >= 0
            ? absl::StrFormat(", accuracy %.2f%% vs FP32 %.2f%%",
                              metrics.int8_acc, metrics.fp32_acc)
            : "",
        ModuleOf(*worst), worst->sqnr_db));
    excluded.push_back(ModuleOf(*worst));
  }
  std::set<std::string> kept(excluded.begin(), excluded.end());
  for (LayerReport& l : once.layers) {
    const std::string mod = ModuleOf(l);
    if (!mod.empty() && kept.count(mod)) l.quantized = false;
  }
  report.layers = once.layers;
  report.fp32_modules = excluded;
  report.top1_agreement = metrics.agreement;
  report.cosine_mean = metrics.cosine;
  report.max_abs_error = metrics.max_abs;
  report.mean_abs_error = metrics.mean_abs;
  report.fp32_accuracy = metrics.fp32_acc;
  report.int8_accuracy = metrics.int8_acc;
  report.int8_parameter_bytes = once.parameter_bytes;
  if (auto bytes = ReadFile(output_path); bytes.ok()) {
    report.int8_serialized_bytes = bytes->size();
  }

  if (progress) progress({"measuring latency", 0, 0});
  const auto b1 = LatencyInput(eval, 1);
  const auto b32 = LatencyInput(eval, 32);
  const int runs = std::max(3, options.latency_runs);
  report.fp32_latency_ms_b1 = MedianMs(*in.fp32_runner, b1, runs);
  report.int8_latency_ms_b1 = MedianMs(*runner, b1, runs);
  report.fp32_latency_ms_b32 =
      MedianMs(*in.fp32_runner, b32, std::max(3, runs / 3));
  report.int8_latency_ms_b32 = MedianMs(*runner, b32, std::max(3, runs / 3));
  report.duration_seconds = Seconds(start);

  if (!report.criterion_met) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "INT8 misses the accuracy criterion: top-1 agreement %.2f%% (allowed "
        "loss %.2f points)%s%s",
        metrics.agreement, options.max_agreement_loss,
        metrics.fp32_acc >= 0
            ? absl::StrFormat(", accuracy %.2f%% vs FP32 %.2f%% (allowed loss "
                              "%.2f)",
                              metrics.int8_acc, metrics.fp32_acc,
                              options.max_accuracy_loss)
            : "",
        options.auto_fallback ? "; " + absl::StrJoin(report.fallback_log, "; ")
                              : "; enable auto_fallback to return sensitive "
                                "layers to FP32"));
  }
  return QuantizeResult{std::move(runner), std::move(report)};
}

std::string QuantizationReport::ToJson() const {
  nlohmann::json j;
  j["mode"] = mode;
  j["method"] = method;
  j["percentile"] = percentile;
  j["per_channel_weights"] = per_channel_weights;
  j["calibration_samples"] = calibration_samples;
  j["eval_samples"] = eval_samples;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : layers) {
    j["layers"].push_back(
        {{"name", l.name},
         {"is_weight", l.is_weight},
         {"sqnr_db", std::isfinite(l.sqnr_db) ? l.sqnr_db : 999.0},
         {"quantized", l.quantized}});
  }
  j["fp32_modules"] = fp32_modules;
  j["fallback_log"] = fallback_log;
  j["trials"] = trials;
  j["criterion_met"] = criterion_met;
  j["top1_agreement"] = top1_agreement;
  j["cosine_mean"] = cosine_mean;
  j["max_abs_error"] = max_abs_error;
  j["mean_abs_error"] = mean_abs_error;
  j["fp32_accuracy"] = fp32_accuracy;
  j["int8_accuracy"] = int8_accuracy;
  j["fp32_serialized_bytes"] = fp32_serialized_bytes;
  j["int8_serialized_bytes"] = int8_serialized_bytes;
  j["fp32_parameter_bytes"] = fp32_parameter_bytes;
  j["int8_parameter_bytes"] = int8_parameter_bytes;
  j["fp32_latency_ms_b1"] = fp32_latency_ms_b1;
  j["int8_latency_ms_b1"] = int8_latency_ms_b1;
  j["fp32_latency_ms_b32"] = fp32_latency_ms_b32;
  j["int8_latency_ms_b32"] = int8_latency_ms_b32;
  j["duration_seconds"] = duration_seconds;
  return j.dump();
}

absl::StatusOr<QuantizationReport> QuantizationReport::FromJson(
    const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    QuantizationReport r;
    r.mode = j.value("mode", std::string("static"));
    r.method = j.at("method");
    r.percentile = j.at("percentile");
    r.per_channel_weights = j.at("per_channel_weights");
    r.calibration_samples = j.at("calibration_samples");
    r.eval_samples = j.at("eval_samples");
    for (const auto& l : j.at("layers")) {
      r.layers.push_back({l.at("name"), l.at("is_weight"), l.at("sqnr_db"),
                          l.at("quantized")});
    }
    r.fp32_modules = j.at("fp32_modules").get<std::vector<std::string>>();
    r.fallback_log = j.at("fallback_log").get<std::vector<std::string>>();
    r.trials = j.at("trials");
    r.criterion_met = j.at("criterion_met");
    r.top1_agreement = j.at("top1_agreement");
    r.cosine_mean = j.at("cosine_mean");
    r.max_abs_error = j.at("max_abs_error");
    r.mean_abs_error = j.at("mean_abs_error");
    r.fp32_accuracy = j.at("fp32_accuracy");
    r.int8_accuracy = j.at("int8_accuracy");
    r.fp32_serialized_bytes = j.at("fp32_serialized_bytes");
    r.int8_serialized_bytes = j.at("int8_serialized_bytes");
    r.fp32_parameter_bytes = j.at("fp32_parameter_bytes");
    r.int8_parameter_bytes = j.at("int8_parameter_bytes");
    r.fp32_latency_ms_b1 = j.at("fp32_latency_ms_b1");
    r.int8_latency_ms_b1 = j.at("int8_latency_ms_b1");
    r.fp32_latency_ms_b32 = j.at("fp32_latency_ms_b32");
    r.int8_latency_ms_b32 = j.at("int8_latency_ms_b32");
    r.duration_seconds = j.at("duration_seconds");
    return r;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("corrupt report: ", e.what()));
  }
}

}  // namespace twinserve
