#include "server/serving/cost_model.h"

#include <algorithm>

namespace twinserve {

CostModel::CostModel(int max_rows, int max_concurrency)
    : max_rows_(std::max(1, max_rows)),
      max_concurrency_(std::max(1, max_concurrency)),
      ns_(new std::atomic<uint64_t>[static_cast<size_t>(max_rows_) *
                                    max_concurrency_]) {
  for (int i = 0; i < max_rows_ * max_concurrency_; ++i) ns_[i] = 0;
}

std::atomic<uint64_t>& CostModel::Slot(int rows, int concurrency) const {
  rows = std::clamp(rows, 1, max_rows_);
  concurrency = std::clamp(concurrency, 1, max_concurrency_);
  return ns_[static_cast<size_t>(concurrency - 1) * max_rows_ + (rows - 1)];
}

void CostModel::Observe(int rows, int concurrency, uint64_t ns) {
  if (ns == 0) ns = 1;
  std::atomic<uint64_t>& slot = Slot(rows, concurrency);
  const uint64_t old = slot.load(std::memory_order_relaxed);
  // An exponential average over about the last eight executions: it
  // follows the machine's state without jumping at one slow run.
  const uint64_t next =
      old == 0
          ? ns
          : static_cast<uint64_t>(
                static_cast<int64_t>(old) +
                (static_cast<int64_t>(ns) - static_cast<int64_t>(old)) / 8);
  slot.store(next == 0 ? 1 : next, std::memory_order_relaxed);
}

double CostModel::Interpolate(int rows, int k) const {
  const uint64_t exact = Slot(rows, k).load(std::memory_order_relaxed);
  if (exact != 0) return static_cast<double>(exact);
  // Nearest measured sizes below and above.
  int lo = 0, hi = 0;
  uint64_t lo_ns = 0, hi_ns = 0;
  for (int r = rows - 1; r >= 1; --r) {
    if ((lo_ns = Slot(r, k).load(std::memory_order_relaxed)) != 0) {
      lo = r;
      break;
    }
  }
  for (int r = rows + 1; r <= max_rows_; ++r) {
    if ((hi_ns = Slot(r, k).load(std::memory_order_relaxed)) != 0) {
      hi = r;
      break;
    }
  }
  if (lo != 0 && hi != 0) {
    return lo_ns +
           (static_cast<double>(hi_ns) - lo_ns) * (rows - lo) / (hi - lo);
  }
  if (lo != 0) return static_cast<double>(lo_ns) * rows / lo;
  if (hi != 0) return static_cast<double>(hi_ns);  // fixed cost dominates
  return 0;
}

double CostModel::Estimate(int rows, int concurrency) const {
  rows = std::clamp(rows, 1, max_rows_);
  concurrency = std::clamp(concurrency, 1, max_concurrency_);
  // The lowest concurrency with data is the base curve (1 once probed).
  int base_k = 1;
  double base = 0;
  for (; base_k <= concurrency; ++base_k) {
    if ((base = Interpolate(rows, base_k)) > 0) break;
  }
  if (base == 0) return 0;
  const uint64_t exact =
      Slot(rows, concurrency).load(std::memory_order_relaxed);
  if (exact != 0) return static_cast<double>(exact);
  // The slow-down measured at the highest concurrency up to `concurrency`
  // that has data, at the size nearest `rows`.
  for (int k = concurrency; k > base_k; --k) {
    for (int d = 1; d < max_rows_; ++d) {
      for (int r : {rows - d, rows + d}) {
        if (r < 1 || r > max_rows_) continue;
        const uint64_t ns = Slot(r, k).load(std::memory_order_relaxed);
        if (ns == 0) continue;
        const double at_base = Interpolate(r, base_k);
        return at_base > 0 ? base * ns / at_base : base;
      }
    }
  }
  return base;
}

bool CostModel::Known() const { return Estimate(1, 1) > 0; }

bool CostModel::Measured(int rows, int concurrency) const {
  if (rows < 1 || rows > max_rows_ || concurrency < 1 ||
      concurrency > max_concurrency_) {
    return false;
  }
  return Slot(rows, concurrency).load(std::memory_order_relaxed) != 0;
}

CostModel::Plan CostModel::Choose(int rows, int running, int free,
                                  double handoff_ns) const {
  if (rows <= 1 || !Known()) return {1, std::max(1, rows)};
  free = std::max(0, free);
  // The batch size that answers the most rows per second on one worker
  // (the smallest within kBetter of it: sooner answers).
  int each = 1;
  double best = 1 / Estimate(1, running + 1);
  for (int b = 2; b <= rows; ++b) {
    const double rate = b / Estimate(b, running + 1);
    if (rate * kBetter > best) {
      each = b;
      best = rate;
    }
  }
  if (rows >= 2 * each) {
    // Enough for several such batches: as many workers as add throughput
    // (executions at once may slow each other).
    int executions = 1;
    for (int s = 2; s <= std::min(1 + free, rows / each); ++s) {
      const double rate = s * each / (Estimate(each, running + s) + handoff_ns);
      if (rate * kBetter > best) {
        executions = s;
        best = rate;
      }
    }
    return {executions, each};
  }
  // Fewer rows than two such batches: the split that answers them soonest.
  int executions = 1;
  double soonest = Estimate(rows, running + 1);
  for (int s = 2; s <= std::min(rows, 1 + free); ++s) {
    const double ns = Estimate((rows + s - 1) / s, running + s) + handoff_ns;
    if (ns < soonest * kBetter) {
      executions = s;
      soonest = ns;
    }
  }
  return {executions, (rows + executions - 1) / executions};
}

std::vector<std::pair<int, double>> CostModel::Curve() const {
  std::vector<std::pair<int, double>> out;
  for (int r = 1; r <= max_rows_; ++r) {
    const uint64_t ns = Slot(r, 1).load(std::memory_order_relaxed);
    if (ns != 0) out.push_back({r, static_cast<double>(ns)});
  }
  return out;
}

}  // namespace twinserve
