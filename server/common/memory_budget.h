// A byte budget shared by everyone who holds memory of one kind (e.g.
// calibration uploads in progress), so that many clients together cannot
// exhaust the server's memory, and a reservation that gives its bytes back
// when it goes.
#ifndef TWINSERVE_SERVER_COMMON_MEMORY_BUDGET_H_
#define TWINSERVE_SERVER_COMMON_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace twinserve {

class MemoryBudget {
 public:
  // `limit` 0: unlimited. `what` ("calibration uploads") and `flag`
  // ("--max_calibration_memory_bytes") appear in the error.
  MemoryBudget(uint64_t limit, std::string what, std::string flag)
      : limit_(limit), what_(std::move(what)), flag_(std::move(flag)) {}

  // RESOURCE_EXHAUSTED naming the flag when `bytes` more would pass it.
  absl::Status Reserve(uint64_t bytes);
  void Release(uint64_t bytes) { used_.fetch_sub(bytes); }
  uint64_t used() const { return used_.load(); }
  uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  const std::string what_;
  const std::string flag_;
  std::atomic<uint64_t> used_{0};
};

// Bytes one holder took from a budget; all given back on destruction.
// Not thread-safe (one holder).
class MemoryReservation {
 public:
  explicit MemoryReservation(MemoryBudget* budget) : budget_(budget) {}
  ~MemoryReservation() { Reset(); }
  MemoryReservation(const MemoryReservation&) = delete;
  MemoryReservation& operator=(const MemoryReservation&) = delete;

  absl::Status Grow(uint64_t bytes) {
    if (budget_ == nullptr) return absl::OkStatus();
    absl::Status st = budget_->Reserve(bytes);
    if (st.ok()) bytes_ += bytes;
    return st;
  }
  // Gives every byte back now (the holder freed its memory).
  void Reset() {
    if (budget_ != nullptr) budget_->Release(bytes_);
    bytes_ = 0;
  }
  uint64_t bytes() const { return bytes_; }

 private:
  MemoryBudget* const budget_;
  uint64_t bytes_ = 0;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_MEMORY_BUDGET_H_
