#include "quant/awq.h"

#include <cmath>
#include <utility>
#include <vector>

namespace twinserve {
namespace {

// sum_j E[x_j^2] * sum_c (W - Q(W))_cj^2: the expected squared output error
// of the layer if its inputs were uncorrelated.
double WeightedError(const at::Tensor& w, const std::vector<float>& wq,
                     const at::Tensor& mean_sq) {
  at::Tensor d =
      w - at::from_blob(const_cast<float*>(wq.data()), w.sizes(), at::kFloat);
  return ((d * d).sum(0) * mean_sq).sum().item<double>();
}

}  // namespace

Int4Choice PackInt4ActivationAware(const at::Tensor& w, int64_t group,
                                   const ChannelStats* stats) {
  const int64_t n = w.size(0), k = w.size(1);
  const float* wp = w.data_ptr<float>();
  Int4Choice best;
  best.packed = PackInt4(wp, n, k, group);
  if (stats == nullptr || !stats->mean_abs.defined() ||
      stats->mean_abs.numel() != k) {
    return best;
  }
  const at::Tensor mean_sq = stats->mean_sq.to(at::kFloat);
  const at::Tensor s = stats->mean_abs.to(at::kFloat).clamp_min(1e-6);
  const double rtn = WeightedError(w, Unpack(best.packed), mean_sq);
  double best_error = rtn;
  best.alpha = 0;
  for (int step = 1; step <= 10; ++step) {
    const double alpha = step / 10.0;
    at::Tensor sc = s.pow(alpha);
    // Centred on 1 so the weights' range stays put on average.
    sc = (sc / std::sqrt(sc.max().item<double>() * sc.min().item<double>()))
             .clamp(1e-4, 1e4)
             .contiguous();
    PackedInt4 p = PackInt4(wp, n, k, group, sc.data_ptr<float>());
    const double e = WeightedError(w, Unpack(p), mean_sq);
    if (e < best_error) {
      best_error = e;
      best.alpha = alpha;
      best.packed = std::move(p);
    }
  }
  best.error_ratio = rtn > 0 ? best_error / rtn : 1;
  return best;
}

}  // namespace twinserve
