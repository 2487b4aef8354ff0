// LibTorch operators over kernels/histogram.h, callable from TorchScript as
// twinserve.<op>(...) (the observers in quant/ use them). Registered
// statically: linking this library is enough.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "kernels/histogram.h"

namespace twinserve {
namespace {

// Adds x's values into hist (float64, in place) over [lo, hi].
at::Tensor HistogramObserve(const at::Tensor& x, at::Tensor hist, double lo,
                            double hi) {
  TORCH_CHECK(hist.scalar_type() == at::kDouble && hist.is_contiguous(),
              "histogram must be a contiguous float64 tensor");
  if (x.numel() == 0 || hi <= lo) return hist;
  at::Tensor xf = x.detach().to(at::kFloat).contiguous();
  AccumulateHistogram(xf.data_ptr<float>(), xf.numel(), static_cast<float>(lo),
                      static_cast<float>(hi), hist.data_ptr<double>(),
                      static_cast<int>(hist.numel()));
  return hist;
}

// (scale float32[1], zero_point int64[1]) for uint8 activations.
std::tuple<at::Tensor, at::Tensor> ChooseQParams(const at::Tensor& hist,
                                                 double lo, double hi,
                                                 int64_t method, double param) {
  at::Tensor h = hist.to(at::kDouble).contiguous();
  ClipRange range = ChooseClipRange(
      h.data_ptr<double>(), static_cast<int>(h.numel()), static_cast<float>(lo),
      static_cast<float>(hi), static_cast<RangeMethod>(method), param, 256);
  double scale;
  int64_t zero_point;
  AffineQParams(range, 0, 255, &scale, &zero_point);
  return {at::full({1}, scale, at::kFloat),
          at::full({1}, zero_point, at::kLong)};
}

TORCH_LIBRARY_FRAGMENT(twinserve, m) {
  m.def(
      "histogram_observe(Tensor x, Tensor(a!) hist, float lo, float hi) -> "
      "Tensor(a!)",
      &HistogramObserve);
  m.def(
      "choose_qparams(Tensor hist, float lo, float hi, int method, "
      "float param) -> (Tensor, Tensor)",
      &ChooseQParams);
}

}  // namespace
}  // namespace twinserve
