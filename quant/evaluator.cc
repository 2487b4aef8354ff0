#include "quant/evaluator.h"

#include <algorithm>
#include <chrono>

#include "kernels/drift.h"

namespace twinserve {

absl::StatusOr<EvalMetrics> Evaluate(const Runner& baseline,
                                     const Runner& candidate,
                                     const SampleRange& eval, int batch,
                                     const std::atomic<bool>* cancel) {
  EvalMetrics m;
  DriftStats total;
  int64_t base_ok = 0, cand_ok = 0;
  const bool labels = eval.set->has_labels();
  std::vector<int64_t> top_base, top_cand;
  for (int64_t b = 0; b < eval.size(); b += batch) {
    if (cancel != nullptr && cancel->load()) {
      return absl::CancelledError("quantization was cancelled");
    }
    const int64_t e = std::min<int64_t>(eval.size(), b + batch);
    const auto slice = eval.set->Slice(eval.begin + b, eval.begin + e);
    auto a = baseline.Run(slice, nullptr);
    if (!a.ok()) return a.status();
    auto q = candidate.Run(slice, nullptr);
    if (!q.ok()) return q.status();
    const HostTensor& ya = (*a)[0];
    const HostTensor& yq = (*q)[0];
    if (ya.dtype != DataType::kFp32 || yq.dtype != DataType::kFp32 ||
        ya.byte_size != yq.byte_size) {
      return absl::InvalidArgumentError(
          "evaluation compares FP32 outputs; the first output is not FP32");
    }
    const int64_t rows = e - b;
    const int64_t cols = ElementCount(ya.shape) / std::max<int64_t>(1, rows);
    top_base.resize(rows);
    top_cand.resize(rows);
    total.Merge(CompareRows(reinterpret_cast<const float*>(ya.data),
                            reinterpret_cast<const float*>(yq.data), rows, cols,
                            top_base.data(), top_cand.data()));
    if (labels) {
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t label = eval.set->labels()[eval.begin + b + r];
        base_ok += top_base[r] == label;
        cand_ok += top_cand[r] == label;
      }
    }
  }
  if (total.rows == 0) return m;
  const int64_t compared = total.top1_agreements + total.top1_disagreements;
  m.agreement = compared > 0 ? 100.0 * total.top1_agreements / compared : 100;
  m.cosine = total.cosine_sum / total.rows;
  m.max_abs = total.max_abs_error;
  m.mean_abs = total.abs_error_sum / std::max<int64_t>(1, total.elements);
  if (labels) {
    m.fp32_acc = 100.0 * base_ok / total.rows;
    m.int8_acc = 100.0 * cand_ok / total.rows;
  }
  return m;
}

bool CriterionMet(const QuantizeOptions& o, const EvalMetrics& m) {
  if (o.max_agreement_loss >= 0 && 100.0 - m.agreement > o.max_agreement_loss) {
    return false;
  }
  if (o.max_accuracy_loss >= 0 && m.fp32_acc >= 0 &&
      m.fp32_acc - m.int8_acc > o.max_accuracy_loss) {
    return false;
  }
  return true;
}

std::vector<HostTensor> LatencyInput(const SampleRange& s, int64_t batch) {
  std::vector<HostTensor> out;
  const int64_t have = std::min<int64_t>(batch, s.size());
  const auto base = s.set->Slice(s.begin, s.begin + have);
  for (const HostTensor& t : base) {
    const size_t want = t.byte_size / have * batch;
    std::string bytes;
    bytes.reserve(want + t.byte_size);
    while (bytes.size() < want) bytes.append(t.data, t.byte_size);
    bytes.resize(want);
    Shape shape = t.shape;
    shape[0] = batch;
    out.push_back(HostTensor::Owned(t.name, t.dtype, shape, std::move(bytes)));
  }
  return out;
}

double MedianLatencyMs(const Runner& r, const std::vector<HostTensor>& in,
                       int runs) {
  using Clock = std::chrono::steady_clock;
  std::vector<double> ms;
  r.Run(in, nullptr).IgnoreError();  // warm
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    r.Run(in, nullptr).IgnoreError();
    ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms.empty() ? 0 : ms[ms.size() / 2];
}

}  // namespace twinserve
