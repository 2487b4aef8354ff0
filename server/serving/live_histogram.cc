#include "server/serving/live_histogram.h"

#include <algorithm>
#include <limits>

namespace twinserve {

LiveHistogram::LiveHistogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void LiveHistogram::Observe(double value) {
  // The first bucket whose bound is >= value (Prometheus' "le").
  const size_t i =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value,
                                     std::memory_order_relaxed)) {
  }
}

HistogramSnapshot LiveHistogram::Snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  s.bounds.push_back(std::numeric_limits<double>::infinity());
  s.cumulative.resize(s.bounds.size());
  uint64_t running = 0;
  for (size_t i = 0; i < s.bounds.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

const std::vector<double>& LatencyBounds() {
  static const auto* b = new std::vector<double>{
      50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3,  1.5e-3, 2e-3,
      3e-3,  5e-3,   7.5e-3, 10e-3,  15e-3,  20e-3,  30e-3, 50e-3,  75e-3,
      0.1,   0.15,   0.25,   0.5,    1,      2.5,    5,     10};
  return *b;
}

const std::vector<double>& BatchSizeBounds() {
  static const auto* b =
      new std::vector<double>{1, 2, 4, 8, 16, 32, 64, 128, 256};
  return *b;
}

const std::vector<double>& CosineBounds() {
  static const auto* b = new std::vector<double>{
      0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 1.0};
  return *b;
}

const std::vector<double>& AbsErrorBounds() {
  static const auto* b = new std::vector<double>{
      1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5, 1, 5, 10};
  return *b;
}

}  // namespace twinserve
