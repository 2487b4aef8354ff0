// Quantiles from cumulative histogram buckets, as Prometheus'
// histogram_quantile computes them.
#ifndef TWINSERVE_SERVER_COMMON_QUANTILE_H_
#define TWINSERVE_SERVER_COMMON_QUANTILE_H_

#include <cstdint>
#include <vector>

namespace twinserve {

// The q-quantile (0..1): linear inside the bucket that holds it; the lower
// bound when it falls past the last finite bound; 0 when empty.
double QuantileFromBuckets(const std::vector<double>& upper_bounds,
                           const std::vector<uint64_t>& cumulative, double q);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_COMMON_QUANTILE_H_
