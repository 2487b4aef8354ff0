// CostModel: what one execution of a servable costs here, by batch rows and
// by how many executions run at once, measured rather than assumed: seeded
// by a probe when the servable is published (batch sizes 1, 2, 4, ... up to
// its max, one execution at a time) and refreshed by every live execution.
// The batcher asks it how to split waiting rows over workers: the split that
// answers them soonest on this machine (on a CPU whose per-row cost drops
// with larger batches it keeps rows together; where it does not, it spreads
// them), and whether handing work to a worker is worth its hand-off at all.
//
// Thread-safe; updates and reads are lock-free (relaxed atomics: an
// estimate may miss a concurrent update, never tear).
#ifndef TWINSERVE_SERVER_SERVING_COST_MODEL_H_
#define TWINSERVE_SERVER_SERVING_COST_MODEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace twinserve {

class CostModel {
 public:
  // Estimates closer than this ratio are within measurement noise: a
  // choice that costs a core or latency must be estimated at least 3%
  // better.
  static constexpr double kBetter = 0.97;

  // Rows 1..max_rows, up to `max_concurrency` executions at once.
  CostModel(int max_rows, int max_concurrency);
  CostModel(const CostModel&) = delete;
  CostModel& operator=(const CostModel&) = delete;

  int max_rows() const { return max_rows_; }
  int max_concurrency() const { return max_concurrency_; }

  // One execution of `rows` that took `ns` while `concurrency` executions
  // (itself included) ran. Values out of range are clamped.
  void Observe(int rows, int concurrency, uint64_t ns);

  // Estimated ns of one execution of `rows` among `concurrency`; 0 while
  // nothing is known. At concurrency 1, sizes without data are
  // interpolated linearly between the nearest measured ones (extrapolated
  // by the per-row cost of the largest). At a higher concurrency, an exact
  // measurement is used as is; otherwise the concurrency-1 estimate scaled
  // by the slow-down measured at that concurrency for the nearest size
  // (the next lower concurrency's if none was measured there).
  double Estimate(int rows, int concurrency = 1) const;
  bool Known() const;
  // Whether an execution of `rows` at `concurrency` was measured.
  bool Measured(int rows, int concurrency = 1) const;

  // How to take `rows` waiting rows (same shape) when `running` executions
  // already run and up to `free` more may start, each start beyond this
  // caller costing `handoff_ns`: `executions` executions of `rows_each`
  // rows (executions * rows_each <= rows; the rest wait for the next free
  // executor). First the batch size that answers the most rows per second
  // on one worker (where rows cost the same at any size: one, i.e.
  // unbatched; where batches are cheaper per row: as many as pay for
  // themselves). With rows for several such batches, as many executions as
  // add throughput; with fewer, the split that answers them soonest.
  // Choices within kBetter of each other go to fewer rows and fewer busy
  // cores. {1, rows} when nothing is known.
  struct Plan {
    int executions = 1;
    int rows_each = 1;
    friend bool operator==(const Plan& a, const Plan& b) {
      return a.executions == b.executions && a.rows_each == b.rows_each;
    }
  };
  Plan Choose(int rows, int running, int free, double handoff_ns) const;

  // (rows, ns) of one execution at concurrency 1, for every size measured.
  std::vector<std::pair<int, double>> Curve() const;

 private:
  std::atomic<uint64_t>& Slot(int rows, int concurrency) const;
  // Interpolated at `concurrency` from its own measurements only; 0 if it
  // has none.
  double Interpolate(int rows, int concurrency) const;

  const int max_rows_;
  const int max_concurrency_;
  // [concurrency - 1][rows - 1]: EWMA of ns, 0 = no data.
  std::unique_ptr<std::atomic<uint64_t>[]> ns_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_COST_MODEL_H_
