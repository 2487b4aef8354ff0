#include "server/common/quantile.h"

#include <cmath>

namespace twinserve {

double QuantileFromBuckets(const std::vector<double>& bounds,
                           const std::vector<uint64_t>& cumulative, double q) {
  if (cumulative.empty() || cumulative.back() == 0) return 0;
  const double rank = q * cumulative.back();
  for (size_t i = 0; i < cumulative.size() && i < bounds.size(); ++i) {
    if (cumulative[i] >= rank) {
      const double lo = i == 0 ? 0 : bounds[i - 1];
      const double hi = bounds[i];
      if (std::isinf(hi)) return lo;
      const uint64_t below = i == 0 ? 0 : cumulative[i - 1];
      const uint64_t in = cumulative[i] - below;
      if (in == 0) return hi;
      return lo + (hi - lo) * (rank - below) / in;
    }
  }
  return bounds.empty() ? 0 : bounds.back();
}

}  // namespace twinserve
