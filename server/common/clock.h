// Time helpers: steady (monotonic) nanoseconds, the unit of every queue,
// compute and deadline figure on the request path; wall-clock milliseconds
// for what is stored or shown to operators.
#ifndef TWINSERVE_SERVER_COMMON_CLOCK_H_
#define TWINSERVE_SERVER_COMMON_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace twinserve {

inline uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Milliseconds since the Unix epoch.
inline int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_CLOCK_H_
