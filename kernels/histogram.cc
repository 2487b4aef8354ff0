#include "kernels/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace twinserve {
namespace {

// A one-sided magnitude histogram: counts of |x| in equal bins over
// [0, max_abs]. Built from the observer's [lo, hi] histogram by folding.
struct Magnitudes {
  std::vector<double> bins;
  double width = 0;  // of one bin
};

Magnitudes Fold(const double* bins, int num_bins, float lo, float hi) {
  Magnitudes m;
  m.bins.assign(num_bins, 0.0);
  const double max_abs = std::max(std::fabs(lo), std::fabs(hi));
  m.width = max_abs / num_bins;
  const double in_width = (static_cast<double>(hi) - lo) / num_bins;
  for (int i = 0; i < num_bins; ++i) {
    if (bins[i] == 0) continue;
    const double center = std::fabs(lo + (i + 0.5) * in_width);
    int j = static_cast<int>(center / m.width);
    m.bins[std::min(j, num_bins - 1)] += bins[i];
  }
  return m;
}

// Smallest t (in bins) holding `fraction` of the mass.
int PercentileBin(const std::vector<double>& bins, double fraction) {
  double total = 0;
  for (double b : bins) total += b;
  const double target = total * fraction;
  double acc = 0;
  for (size_t i = 0; i < bins.size(); ++i) {
    acc += bins[i];
    if (acc >= target) return static_cast<int>(i) + 1;
  }
  return static_cast<int>(bins.size());
}

// TensorRT's entropy calibration over a magnitude histogram: for each
// candidate threshold, the reference P clips the outliers into its last bin,
// Q quantizes P's range to `levels` buckets and spreads each bucket's mass
// over its non-empty bins; pick the threshold with the least KL(P || Q).
int EntropyBin(const std::vector<double>& bins, int levels) {
  const int n = static_cast<int>(bins.size());
  if (n <= levels) return n;
  int best = n;
  double best_kl = std::numeric_limits<double>::infinity();
  std::vector<double> p, q;
  double tail = 0;
  for (int i = n - 1; i >= levels; --i) tail += bins[i];  // mass beyond i
  for (int t = levels; t <= n; ++t) {
    // tail = mass in bins [t, n)
    p.assign(bins.begin(), bins.begin() + t);
    p[t - 1] += tail;
    q.assign(t, 0.0);
    const double per = static_cast<double>(t) / levels;
    for (int k = 0; k < levels; ++k) {
      const int start = static_cast<int>(std::floor(k * per));
      const int end = std::min(t, static_cast<int>(std::floor((k + 1) * per)));
      double mass = 0;
      int nonzero = 0;
      for (int j = start; j < end; ++j) {
        mass += bins[j];
        nonzero += bins[j] != 0;
      }
      if (nonzero == 0) continue;
      for (int j = start; j < end; ++j) {
        if (bins[j] != 0) q[j] = mass / nonzero;
      }
    }
    // Bin 0 holds the exact zeros (a ReLU output is half zeros), which any
    // range represents exactly; left in, that spike dominates KL and drives
    // the threshold far too low.
    p[0] = 0;
    q[0] = 0;
    double psum = 0, qsum = 0;
    for (int j = 0; j < t; ++j) {
      psum += p[j];
      qsum += q[j];
    }
    if (psum <= 0 || qsum <= 0) continue;
    double kl = 0;
    for (int j = 0; j < t; ++j) {
      if (p[j] == 0) continue;
      const double pj = p[j] / psum;
      // Outlier mass folded into p's last bin may have no q; smooth it.
      const double qj = q[j] > 0 ? q[j] / qsum : 1e-12;
      kl += pj * std::log(pj / qj);
    }
    if (kl < best_kl) {
      best_kl = kl;
      best = t;
    }
    if (t < n) tail -= bins[t];
  }
  return best;
}

// Expected squared error for clipping at t bins, with prefix sums so each
// candidate costs O(1): values past t clip (error (x - T)^2), values below
// round (error step^2 / 12).
int MseBin(const std::vector<double>& bins, double width, int levels) {
  const int n = static_cast<int>(bins.size());
  std::vector<double> c(n + 1, 0), cx(n + 1, 0), cxx(n + 1, 0);
  for (int i = 0; i < n; ++i) {
    const double x = (i + 0.5) * width;
    c[i + 1] = c[i] + bins[i];
    cx[i + 1] = cx[i] + bins[i] * x;
    cxx[i + 1] = cxx[i] + bins[i] * x * x;
  }
  int best = n;
  double best_err = std::numeric_limits<double>::infinity();
  for (int t = 1; t <= n; ++t) {
    const double clip = t * width;
    const double step = clip / (levels - 1);
    const double inside = c[t] * step * step / 12.0;
    const double nc = c[n] - c[t], nx = cx[n] - cx[t], nxx = cxx[n] - cxx[t];
    const double outside = nxx - 2 * clip * nx + clip * clip * nc;
    const double err = inside + outside;
    if (err < best_err) {
      best_err = err;
      best = t;
    }
  }
  return best;
}

}  // namespace

void AccumulateHistogram(const float* values, int64_t n, float lo, float hi,
                         double* bins, int num_bins) {
  const float scale = num_bins / (hi - lo);
  const int last = num_bins - 1;
  // Counting into a local int array first keeps the inner loop to integer
  // increments; 4 partial arrays break the store-to-load dependency chain
  // when neighbouring values fall in the same bin.
  std::vector<uint32_t> counts(4 * static_cast<size_t>(num_bins), 0);
  uint32_t* c0 = counts.data();
  uint32_t* c1 = c0 + num_bins;
  uint32_t* c2 = c1 + num_bins;
  uint32_t* c3 = c2 + num_bins;
  auto bin = [&](float v) {
    int b = static_cast<int>((v - lo) * scale);
    return b < 0 ? 0 : (b > last ? last : b);
  };
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++c0[bin(values[i])];
    ++c1[bin(values[i + 1])];
    ++c2[bin(values[i + 2])];
    ++c3[bin(values[i + 3])];
  }
  for (; i < n; ++i) ++c0[bin(values[i])];
  for (int b = 0; b < num_bins; ++b) {
    bins[b] += static_cast<double>(c0[b]) + c1[b] + c2[b] + c3[b];
  }
}

void MinMax(const float* values, int64_t n, float* min, float* max) {
  float lo = values[0], hi = values[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  *min = lo;
  *max = hi;
}

ClipRange ChooseClipRange(const double* bins, int num_bins, float lo, float hi,
                          RangeMethod method, double param, int levels) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (method == RangeMethod::kMinMax || hi - lo <= 0) return {lo, hi};
  const bool one_sided = lo >= 0;
  Magnitudes m = Fold(bins, num_bins, lo, hi);
  int t = num_bins;
  switch (method) {
    case RangeMethod::kPercentile:
      t = PercentileBin(m.bins, std::clamp(param, 0.0, 100.0) / 100.0);
      break;
    case RangeMethod::kEntropy:
      // Signed values spend half the codes on each side. KL alone can clip
      // below a dense spike (a constant image background normalizes to one
      // value holding half the mass), so it may clip at most 0.1% of values.
      t = std::max(EntropyBin(m.bins, one_sided ? levels - 1 : levels / 2),
                   PercentileBin(m.bins, 0.999));
      break;
    case RangeMethod::kMse:
      t = MseBin(m.bins, m.width, one_sided ? levels : levels / 2);
      break;
    case RangeMethod::kMinMax:
      break;
  }
  const float clip = static_cast<float>(t * m.width);
  if (one_sided) return {0.0f, std::min(hi, clip)};
  return {std::max(lo, -clip), std::min(hi, clip)};
}

void AffineQParams(ClipRange range, int qmin, int qmax, double* scale,
                   int64_t* zero_point) {
  const double lo = std::min(0.0f, range.lo);
  const double hi = std::max(0.0f, range.hi);
  double s = (hi - lo) / (qmax - qmin);
  if (s <= std::numeric_limits<float>::epsilon()) s = 1e-8;
  int64_t zp = qmin - static_cast<int64_t>(std::lround(lo / s));
  *scale = s;
  *zero_point = std::clamp<int64_t>(zp, qmin, qmax);
}

}  // namespace twinserve
