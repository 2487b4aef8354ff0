// LiveHistogram: a fixed-bucket histogram cheap enough for every request:
// one atomic increment per observation plus the sum, no lock. Snapshots
// have Prometheus' shape (cumulative counts, +Inf last), so the exporter
// and the rollout guards read the same numbers.
#ifndef TWINSERVE_SERVER_SERVING_LIVE_HISTOGRAM_H_
#define TWINSERVE_SERVER_SERVING_LIVE_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace twinserve {

struct HistogramSnapshot {
  std::vector<double> bounds;        // upper bounds, ascending, +Inf last
  std::vector<uint64_t> cumulative;  // observations <= each bound
  uint64_t count = 0;
  double sum = 0;
};

class LiveHistogram {
 public:
  // `bounds`: finite upper bounds, ascending; must outlive the histogram
  // (the bucket sets below are static).
  explicit LiveHistogram(const std::vector<double>& bounds);
  LiveHistogram(const LiveHistogram&) = delete;
  LiveHistogram& operator=(const LiveHistogram&) = delete;

  void Observe(double value);
  HistogramSnapshot Snapshot() const;

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, +Inf last
  std::atomic<double> sum_{0};
};

// Request, queue and compute time: 50 us to 10 s, in seconds.
const std::vector<double>& LatencyBounds();
// Rows per execution: 1 to 256.
const std::vector<double>& BatchSizeBounds();
// Cosine similarity of compared outputs: 0.5 to 1.
const std::vector<double>& CosineBounds();
// Largest absolute difference of compared outputs: 1e-6 to 10.
const std::vector<double>& AbsErrorBounds();

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_LIVE_HISTOGRAM_H_
