#include "client/load_generator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {
namespace {

using Clock = std::chrono::steady_clock;

double Us(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Server-side totals for the model (one version, or all when routed).
struct ServerTotals {
  bool ok = false;
  uint64_t success = 0, executions = 0, inferences = 0;
  uint64_t request_ns = 0, queue_ns = 0, compute_ns = 0;
};

ServerTotals Snapshot(inference::GRPCInferenceService::Stub* stub,
                      const LoadOptions& o) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  inference::ModelStatisticsRequest req;
  req.set_name(o.model);
  req.set_version(o.version);
  inference::ModelStatisticsResponse resp;
  ServerTotals t;
  if (!stub->ModelStatistics(&ctx, req, &resp).ok()) return t;
  t.ok = true;
  for (const auto& m : resp.model_stats()) {
    const auto& s = m.inference_stats();
    t.success += s.success().count();
    t.executions += m.execution_count();
    t.inferences += m.inference_count();
    t.request_ns += s.success().ns();
    t.queue_ns += s.queue().ns();
    t.compute_ns += s.compute_input().ns() + s.compute_infer().ns() +
                    s.compute_output().ns();
  }
  return t;
}

// The shared state of one run. Calls complete on gRPC's threads, each
// holding a reference so the state outlives the last callback's unlock.
class Run : public std::enable_shared_from_this<Run> {
 public:
  Run(const std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>>&
          stubs,
      const LoadOptions& o)
      : stubs_(stubs), o_(o) {}

  LoadResult Go() {
    start_ = Clock::now();
    window_start_ =
        start_ + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(o_.warmup_seconds));
    window_end_ =
        window_start_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(o_.duration_seconds));
    std::thread pacer;
    if (o_.rate > 0) {
      pacer = std::thread([this] { Pace(); });
    } else {
      for (int i = 0; i < o_.concurrency; ++i) Issue(i);
    }
    ServerTotals before, after;
    bool took_before = false;
    while (Clock::now() < window_end_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto now = Clock::now();
      if (!took_before && now >= window_start_) {
        before = Snapshot(stubs_[0].get(), o_);
        took_before = true;
      }
      if (o_.progress &&
          now - last_progress_ > std::chrono::milliseconds(500)) {
        last_progress_ = now;
        o_.progress(ProgressLine(now));
      }
    }
    stopping_.store(true);
    if (pacer.joinable()) pacer.join();
    after = Snapshot(stubs_[0].get(), o_);
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* n) { return *n == 0; }, &outstanding_));
    }
    return Result(before, after);
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    inference::ModelInferResponse response;
    inference::ServerLiveResponse live;
    Clock::time_point sent;
  };

  void Issue(uint64_t n) {
    {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
    }
    auto* call = new Call;
    const auto& request = o_.requests[n % o_.requests.size()];
    auto* stub = stubs_[n % stubs_.size()].get();
    auto done = [this, self = shared_from_this(), call, n](grpc::Status st) {
      Done(call, st);
      if (o_.rate <= 0 && !stopping_.load()) Issue(n + o_.concurrency);
      absl::MutexLock lock(&mu_);
      --outstanding_;
    };
    call->sent = Clock::now();
    if (o_.ping) {
      static const inference::ServerLiveRequest kLive;
      stub->async()->ServerLive(&call->ctx, &kLive, &call->live,
                                std::move(done));
    } else {
      stub->async()->ModelInfer(&call->ctx, &request, &call->response,
                                std::move(done));
    }
  }

  void Done(Call* call, const grpc::Status& st) {
    const auto now = Clock::now();
    const bool inside = call->sent >= window_start_ && now <= window_end_;
    const double us = Us(now - call->sent);
    double stages[3] = {-1, -1, -1};
    if (o_.server_timings && st.ok()) {
      const auto& params = call->response.parameters();
      const char* names[3] = {"twinserve_decode_ns", "twinserve_engine_ns",
                              "twinserve_encode_ns"};
      for (int i = 0; i < 3; ++i) {
        if (auto it = params.find(names[i]); it != params.end()) {
          stages[i] = it->second.int64_param() / 1000.0;
        }
      }
    }
    delete call;
    if (!inside) return;
    absl::MutexLock lock(&mu_);
    if (st.ok()) {
      latencies_.push_back(us);
      for (int i = 0; i < 3; ++i) {
        if (stages[i] >= 0) stages_[i].push_back(stages[i]);
      }
    } else {
      ++errors_;
      ++errors_by_code_[absl::StrFormat("%d", st.error_code())];
    }
  }

  // Open loop: sends on a fixed schedule, whatever the answers do.
  void Pace() {
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / o_.rate));
    auto next = start_;
    for (uint64_t n = 0; !stopping_.load(); ++n, next += interval) {
      std::this_thread::sleep_until(next);
      bool full;
      {
        absl::MutexLock lock(&mu_);
        full = outstanding_ >= o_.concurrency;
        if (full && Clock::now() >= window_start_) ++skipped_;
      }
      if (!full) Issue(n);
    }
  }

  std::string ProgressLine(Clock::time_point now) {
    if (now < window_start_) {
      return absl::StrFormat("warm-up %.1f/%.1f s", Us(now - start_) * 1e-6,
                             o_.warmup_seconds);
    }
    absl::MutexLock lock(&mu_);
    const double s = Us(now - window_start_) * 1e-6;
    return absl::StrFormat(
        "measuring %.1f/%.1f s: %d ok, %d errors, %.0f req/s", s,
        o_.duration_seconds, latencies_.size(), errors_,
        s > 0 ? latencies_.size() / s : 0.0);
  }

  LoadResult Result(const ServerTotals& before, const ServerTotals& after) {
    absl::MutexLock lock(&mu_);
    LoadResult r;
    r.concurrency = o_.concurrency;
    r.target_rate = o_.rate;
    r.seconds = o_.duration_seconds;
    r.requests = latencies_.size();
    r.errors = errors_;
    r.errors_by_code = errors_by_code_;
    r.skipped = skipped_;
    r.requests_per_second = r.requests / r.seconds;
    r.inferences_per_second = r.requests_per_second * o_.rows_per_request;
    std::sort(latencies_.begin(), latencies_.end());
    if (!latencies_.empty()) {
      double sum = 0;
      for (double v : latencies_) sum += v;
      r.mean_us = sum / latencies_.size();
      r.p50_us = Percentile(latencies_, 50);
      r.p90_us = Percentile(latencies_, 90);
      r.p99_us = Percentile(latencies_, 99);
      r.max_us = latencies_.back();
    }
    double* stage_out[3] = {&r.stage_decode_us, &r.stage_engine_us,
                            &r.stage_encode_us};
    for (int i = 0; i < 3; ++i) {
      if (stages_[i].empty()) continue;
      std::sort(stages_[i].begin(), stages_[i].end());
      *stage_out[i] = Percentile(stages_[i], 50);
    }
    if (before.ok && after.ok && after.success > before.success) {
      const double n = after.success - before.success;
      r.server_request_us = (after.request_ns - before.request_ns) / n / 1000;
      r.server_queue_us = (after.queue_ns - before.queue_ns) / n / 1000;
      r.server_compute_us = (after.compute_ns - before.compute_ns) / n / 1000;
      if (after.executions > before.executions) {
        r.server_batch =
            static_cast<double>(after.inferences - before.inferences) /
            (after.executions - before.executions);
      }
    }
    return r;
  }

  const std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>>&
      stubs_;
  const LoadOptions& o_;
  Clock::time_point start_, window_start_, window_end_, last_progress_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<double> latencies_ ABSL_GUARDED_BY(mu_);
  std::vector<double> stages_[3] ABSL_GUARDED_BY(
      mu_);  // decode, engine, encode
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, uint64_t> errors_by_code_ ABSL_GUARDED_BY(mu_);
  uint64_t skipped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

absl::StatusOr<LoadResult> RunLoad(
    const std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>>&
        stubs,
    const LoadOptions& options) {
  if (stubs.empty() || options.requests.empty()) {
    return absl::InvalidArgumentError("no channel or no request to send");
  }
  if (options.concurrency < 1 || options.duration_seconds <= 0 ||
      options.warmup_seconds < 0 || options.rate < 0) {
    return absl::InvalidArgumentError(
        "concurrency must be >= 1, duration > 0, warm-up and rate >= 0");
  }
  auto run = std::make_shared<Run>(stubs, options);
  return run->Go();
}

}  // namespace twinserve
