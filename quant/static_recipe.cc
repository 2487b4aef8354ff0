#include "quant/static_recipe.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "quant/calibrator.h"
#include "server/runtime/runner.h"

namespace twinserve {
namespace {

using Clock = std::chrono::steady_clock;

// Screening and ranking use the first samples of the evaluation range:
// enough to tell recipes apart (2,000 samples resolve 0.1 point at ~90%
// accuracy to about +-0.7), a fraction of the cost.
constexpr int64_t kScreenSamples = 2000;
constexpr int64_t kRankSamples = 500;
constexpr int64_t kSqnrSamples = 256;
constexpr int kLatencyRuns = 7;
// Candidates this close to the fastest count as equally fast; the more
// accurate of them wins.
constexpr double kSameSpeed = 1.05;

struct Outcome {
  const Calibrated* cal = nullptr;
  Trial trial;
  std::string recipe;
  EvalMetrics metrics;
  double latency_ms = 0;
  bool met = false;
};

SampleRange Head(const SampleRange& s, int64_t n) {
  SampleRange out = s;
  out.end = std::min(s.end, s.begin + n);
  return out;
}

double Score(const EvalMetrics& m) {
  return m.int8_acc >= 0 ? m.int8_acc : m.agreement;
}

std::string Recipe(const Calibrated& c, const Trial& t) {
  return absl::StrCat(RangeMethodName(t.method),
                      c.equalized ? ", equalized" : ", not equalized",
                      t.bias_correction ? ", bias corrected" : "");
}

class Search {
 public:
  Search(const StaticInputs& in, const QuantizeOptions& o,
         const std::string& output_path,
         const std::function<void(const std::string&, int64_t, int64_t)>& p,
         const std::atomic<bool>* cancel)
      : in_(in),
        o_(o),
        scratch_(output_path + ".trial"),
        progress_(p),
        cancel_(cancel),
        start_(Clock::now()) {}
  // Every module of a calibration (folded, observed, each trial's INT8)
  // lives in the unit its file was loaded into; nothing outlives the
  // search (the result is saved), so the units are released here.
  ~Search() {
    std::remove(scratch_.c_str());
    for (auto& c : calibrations_) ReleaseCompilationUnit(c->base);
  }

  double Elapsed() const {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }
  bool OverBudget() const { return Elapsed() > o_.time_limit_seconds; }

  absl::StatusOr<const Calibrated*> Calibrate(bool equalize, bool histograms) {
    PrepareOptions p;
    p.equalize = equalize && o_.equalize;
    p.smooth_alpha = o_.smooth_alpha;
    p.histograms = histograms;
    p.per_channel_weights = o_.per_channel_weights;
    p.batch_size = o_.batch_size;
    auto c = twinserve::Calibrate(
        in_.fp32_path, p, in_.calib,
        [&](const std::string& stage, int64_t d, int64_t t) {
          if (progress_) progress_(stage, d, t);
        },
        cancel_);
    if (!c.ok()) return c.status();
    calibrations_.push_back(std::make_unique<Calibrated>(std::move(*c)));
    return calibrations_.back().get();
  }

  // Converts, loads and evaluates one trial on `s`; measures batch-1
  // latency when asked.
  absl::StatusOr<Outcome> Try(const Calibrated& c, const Trial& t,
                              const SampleRange& s, bool latency) {
    if (cancel_ != nullptr && cancel_->load()) {
      return absl::CancelledError("quantization was cancelled");
    }
    auto runner = ConvertAndLoad(c, t, nullptr, scratch_);
    if (!runner.ok()) return runner.status();
    Outcome out;
    out.cal = &c;
    out.trial = t;
    out.recipe = Recipe(c, t);
    auto m =
        Evaluate(*in_.fp32_runner, *runner->runner, s, o_.batch_size, cancel_);
    if (!m.ok()) return m.status();
    out.metrics = *m;
    out.met = CriterionMet(o_, *m);
    if (latency) {
      out.latency_ms =
          MedianLatencyMs(*runner->runner, LatencyInput(s, 1), kLatencyRuns);
    }
    return out;
  }

  struct Loaded {
    std::unique_ptr<Runner> runner;
    Converted converted;
  };
  absl::StatusOr<Loaded> ConvertAndLoad(const Calibrated& c, const Trial& t,
                                        const SampleRange* sqnr,
                                        const std::string& path) {
    auto conv = Convert(c, t, sqnr);
    if (!conv.ok()) return conv.status();
    try {
      conv->module.save(path);
    } catch (const std::exception& e) {
      return absl::InternalError(
          absl::StrCat("cannot save the quantized model: ", e.what()));
    }
    RunnerOptions ro;
    ro.optimize = false;  // Finalize froze it already
    auto r = Runner::Load(path, in_.signature, ro);
    if (!r.ok()) {
      return absl::InternalError(absl::StrCat(
          "the quantized model does not run: ", r.status().message()));
    }
    Loaded out;
    out.runner = std::move(*r);
    out.converted = std::move(*conv);
    return out;
  }

  void Progress(const std::string& stage, int64_t d, int64_t t) {
    if (progress_) progress_(stage, d, t);
  }

 private:
  const StaticInputs& in_;
  const QuantizeOptions& o_;
  const std::string scratch_;
  const std::function<void(const std::string&, int64_t, int64_t)> progress_;
  const std::atomic<bool>* cancel_;
  const Clock::time_point start_;
  std::vector<std::unique_ptr<Calibrated>> calibrations_;
};

// Of the candidates meeting the criterion, the fastest (more accurate among
// equally fast); of none meeting it, the most accurate.
int Choose(const std::vector<Outcome>& c) {
  int best = -1;
  double fastest = 0;
  for (const Outcome& o : c) {
    if (o.met && (fastest == 0 || o.latency_ms < fastest)) {
      fastest = o.latency_ms;
    }
  }
  for (int i = 0; i < static_cast<int>(c.size()); ++i) {
    const bool eligible =
        fastest > 0 ? c[i].met && c[i].latency_ms <= fastest * kSameSpeed
                    : true;
    if (eligible &&
        (best < 0 || Score(c[i].metrics) > Score(c[best].metrics))) {
      best = i;
    }
  }
  return best;
}

std::string Describe(const EvalMetrics& m) {
  return absl::StrCat(absl::StrFormat("top-1 agreement %.2f%%", m.agreement),
                      m.fp32_acc >= 0
                          ? absl::StrFormat(", accuracy %.2f%% vs FP32 %.2f%%",
                                            m.int8_acc, m.fp32_acc)
                          : "");
}

}  // namespace

absl::StatusOr<StaticOutcome> QuantizeStatic(
    const StaticInputs& in, const QuantizeOptions& o,
    const std::string& output_path,
    const std::function<void(const std::string&, int64_t, int64_t)>& progress,
    const std::atomic<bool>* cancel, QuantizationReport* report) {
  Search search(in, o, output_path, progress, cancel);
  const SampleRange screen = Head(in.eval, kScreenSamples);
  Trial base;
  base.bias_correction = o.bias_correction;
  base.per_channel_weights = o.per_channel_weights;
  base.percentile = o.percentile;
  base.fp32_modules.insert(o.fp32_modules.begin(), o.fp32_modules.end());

  std::vector<RangeMethod> methods = {o.method};
  if (o.search) {
    methods = {RangeMethod::kMinMax, RangeMethod::kEntropy,
               RangeMethod::kPercentile, RangeMethod::kMse};
  }
  bool histograms = false;
  for (RangeMethod m : methods) {
    ObserverOptions obs;
    obs.method = m;
    histograms = histograms || NeedsHistogram(obs);
  }
  auto cal = search.Calibrate(/*equalize=*/true, histograms);
  if (!cal.ok()) return cal.status();

  std::vector<Outcome> candidates;
  Outcome chosen;
  chosen.cal = *cal;
  chosen.trial = base;
  chosen.trial.method = o.method;
  if (o.search) {
    auto screen_all = [&](const Calibrated& c,
                          const std::vector<RangeMethod>& ms) -> absl::Status {
      for (RangeMethod m : ms) {
        if (!candidates.empty() && search.OverBudget()) {
          report->fallback_log.push_back(absl::StrFormat(
              "recipe search stopped at the time limit (%.0f s) after %d "
              "candidates",
              o.time_limit_seconds, static_cast<int>(candidates.size())));
          return absl::OkStatus();
        }
        Trial t = base;
        t.method = m;
        search.Progress(absl::StrCat("screening ", Recipe(c, t)),
                        candidates.size(), 0);
        auto r = search.Try(c, t, screen, /*latency=*/true);
        if (!r.ok()) return r.status();
        candidates.push_back(std::move(*r));
      }
      return absl::OkStatus();
    };
    absl::Status st = screen_all(**cal, methods);
    if (!st.ok()) return st;
    bool any_met = false;
    for (const Outcome& c : candidates) any_met = any_met || c.met;
    // Equalization is FP32-exact but moves ranges into weights; where no
    // recipe meets the criterion with it, try without.
    if (!any_met && o.equalize && (*cal)->equalized && !search.OverBudget()) {
      auto plain = search.Calibrate(/*equalize=*/false, /*histograms=*/true);
      if (!plain.ok()) return plain.status();
      st = screen_all(**plain, {RangeMethod::kMinMax, RangeMethod::kEntropy});
      if (!st.ok()) return st;
    }
    const int best = Choose(candidates);
    chosen = candidates[best];
    for (int i = 0; i < static_cast<int>(candidates.size()); ++i) {
      const Outcome& c = candidates[i];
      CandidateReport cr;
      cr.recipe = c.recipe;
      cr.top1_agreement = c.metrics.agreement;
      cr.accuracy = c.metrics.int8_acc;
      cr.latency_ms_b1 = c.latency_ms;
      cr.criterion_met = c.met;
      cr.chosen = i == best;
      report->candidates.push_back(cr);
    }
  }

  const Calibrated& c = *chosen.cal;
  // Why layers are sensitive: their input channels' spread.
  std::map<std::string, LayerSensitivity> sensitivity;
  for (const Layer& l : c.graph.layers) {
    if (l.path.empty()) continue;
    LayerSensitivity s;
    s.layer = l.path;
    auto it = c.inputs.find(l.path);
    if (it != c.inputs.end()) s.input_channel_spread = it->second.Spread();
    sensitivity[l.path] = s;
  }

  // The chosen recipe on the whole evaluation range, converted with
  // per-tensor SQNR for the report.
  const SampleRange sqnr = Head(in.eval, kSqnrSamples);
  Trial trial = chosen.trial;
  auto finish =
      [&]() -> absl::StatusOr<std::pair<Search::Loaded, EvalMetrics>> {
    search.Progress("converting", 0, 0);
    auto v = search.ConvertAndLoad(c, trial, &sqnr, output_path);
    if (!v.ok()) return v.status();
    search.Progress("evaluating", 0, in.eval.size());
    auto m =
        Evaluate(*in.fp32_runner, *v->runner, in.eval, o.batch_size, cancel);
    if (!m.ok()) return m.status();
    return std::make_pair(std::move(*v), *m);
  };
  auto final_variant = finish();
  if (!final_variant.ok()) return final_variant.status();
  EvalMetrics metrics = final_variant->second;
  bool met = CriterionMet(o, metrics);
  int trials = 1;
  if (!met && o.auto_fallback) {
    // Rank: each layer quantized alone (the rest FP32), its effect on the
    // model's output. Keeping one layer in FP32 alone is no measure: the
    // tensor between two layers stays quantized while either is INT8.
    const SampleRange rank = Head(in.eval, kRankSamples);
    struct Ranked {
      double agreement, error;
      std::string path;
    };
    std::vector<Ranked> order;
    for (auto& [path, s] : sensitivity) {
      if (trial.fp32_modules.count(path)) continue;
      if (search.OverBudget()) break;
      Trial t = trial;
      for (const auto& [other, unused] : sensitivity) {
        if (other != path) t.fp32_modules.insert(other);
      }
      search.Progress(absl::StrCat("ranking ", path), order.size(),
                      sensitivity.size());
      auto r = search.Try(c, t, rank, /*latency=*/false);
      if (!r.ok()) {
        if (absl::IsCancelled(r.status())) return r.status();
        report->fallback_log.push_back(
            absl::StrCat("ranking: ", path,
                         " cannot be quantized alone: ", r.status().message()));
        continue;
      }
      s.agreement_quantized_alone = r->metrics.agreement;
      s.mean_abs_error_quantized_alone = r->metrics.mean_abs;
      order.push_back({r->metrics.agreement, r->metrics.mean_abs, path});
    }
    // Most harmful first: lowest agreement; output error breaks ties (and
    // ranks regressors).
    std::sort(order.begin(), order.end(), [](const Ranked& a, const Ranked& b) {
      if (a.agreement != b.agreement) return a.agreement < b.agreement;
      return a.error > b.error;
    });
    for (const Ranked& next : order) {
      if (met) break;
      if (trials >= o.max_trials || search.OverBudget()) {
        report->fallback_log.push_back(absl::StrFormat(
            "stopped after %d trials and %.0f s with the criterion still "
            "failing",
            trials, search.Elapsed()));
        break;
      }
      const LayerSensitivity& s = sensitivity[next.path];
      report->fallback_log.push_back(absl::StrFormat(
          "trial %d: %s; %s goes back to FP32 (quantized alone: top-1 "
          "agreement %.2f%%; input channel spread %.0fx)",
          trials, Describe(metrics), next.path, s.agreement_quantized_alone,
          s.input_channel_spread));
      trial.fp32_modules.insert(next.path);
      ++trials;
      search.Progress("fallback trial", trials, o.max_trials);
      auto r = search.Try(c, trial, in.eval, /*latency=*/false);
      if (!r.ok()) return r.status();
      metrics = r->metrics;
      met = r->met;
    }
    if (!met && order.empty()) {
      report->fallback_log.push_back(
          "no quantized layer left to return to FP32");
    }
    if (trials > 1) {
      final_variant = finish();
      if (!final_variant.ok()) return final_variant.status();
    }
  }
  const EvalMetrics* m = &final_variant->second;

  const Converted& conv = final_variant->first.converted;
  report->searched = o.search;
  report->method = RangeMethodName(trial.method);
  report->percentile = trial.percentile;
  report->equalized = c.equalized;
  report->bias_corrected_layers = conv.bias_corrected;
  report->smooth_alpha = o.smooth_alpha > 0 ? o.smooth_alpha : 0;
  report->rescaling = c.rescaling.rescaled;
  for (const std::string& s : c.rescaling.skipped) {
    report->rescaling.push_back(absl::StrCat("skipped: ", s));
  }
  for (const std::string& n : conv.notes) {
    report->rescaling.push_back(absl::StrCat("bias correction: ", n));
  }
  report->layers = conv.layers;
  report->fp32_modules.assign(trial.fp32_modules.begin(),
                              trial.fp32_modules.end());
  report->int8_parameter_bytes = conv.parameter_bytes;
  report->trials = trials;
  report->criterion_met = CriterionMet(o, *m);
  for (auto& [path, s] : sensitivity) report->sensitivity.push_back(s);
  std::sort(report->sensitivity.begin(), report->sensitivity.end(),
            [](const LayerSensitivity& a, const LayerSensitivity& b) {
              return a.input_channel_spread > b.input_channel_spread;
            });
  StaticOutcome out;
  out.runner = std::move(final_variant->first.runner);
  out.metrics = *m;
  return out;
}

}  // namespace twinserve
