// The request path's clock: steady (monotonic) nanoseconds, the unit of
// every queue, compute and deadline figure in the core.
#ifndef TWINSERVE_SERVER_CORE_CLOCK_H_
#define TWINSERVE_SERVER_CORE_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace twinserve {

inline uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_CLOCK_H_
