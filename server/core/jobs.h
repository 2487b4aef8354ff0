// JobManager: long-running operator jobs (quantization) on their own
// threads, with progress, cancellation, subscribers for streaming, and a
// durable record per job so that a job cut short by a crash shows as
// INTERRUPTED after restart.
//
// Policy: one active job per model; a second Start for the same model is
// refused with FAILED_PRECONDITION (documented in the proto).
//
// Subscribers hear every job's statuses in version order, the current one
// first: a late subscriber never gets an older status after a newer one.
#ifndef TWINSERVE_SERVER_CORE_JOBS_H_
#define TWINSERVE_SERVER_CORE_JOBS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {

enum class JobState {
  kQueued,
  kRunning,
  kSucceeded,
  kFailed,
  kCancelled,
  kInterrupted,  // the server stopped while the job ran
};
const char* JobStateName(JobState state);
bool IsTerminal(JobState state);

struct JobStatus {
  std::string id;
  std::string model;
  std::string variant;
  std::string kind;
  JobState state = JobState::kQueued;
  std::string stage;
  int64_t done = 0;
  int64_t total = 0;
  int64_t created_unix_ms = 0;
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;
  std::string message;  // the reason for FAILED, a summary on success
  // The traffic plan waiting for this job's variant, if any (dropped when
  // the job cannot finish).
  std::string plan_id;
  uint64_t version = 0;  // bumps on every change
  double percent() const {
    return total > 0 ? 100.0 * done / total : (IsTerminal(state) ? 100 : 0);
  }
};

// A status as JSON (job records on disk and in a fleet's etcd); false if
// `text` is not one.
std::string JobToJson(const JobStatus& status);
bool JobFromJson(const std::string& text, JobStatus* status);

// The jobs of the other replicas of a fleet (server/core/fleet_jobs.h):
// one job per model across the fleet, and every job visible from every
// replica.
class JobFleet {
 public:
  virtual ~JobFleet() = default;
  // Claims the job's model for it; an error refuses the start
  // (FAILED_PRECONDITION naming the holder, UNAVAILABLE).
  virtual absl::Status Claim(const JobStatus& status) = 0;
  // Each persisted status, the final one included (before Release).
  virtual void Publish(const JobStatus& status) = 0;
  virtual void Release(const JobStatus& status) = 0;
  // Jobs known to the fleet (other replicas' included).
  virtual absl::StatusOr<JobStatus> Find(const std::string& id) = 0;
  virtual std::vector<JobStatus> List(const std::string& model) = 0;
};

// Handed to a job's work function.
class JobContext {
 public:
  virtual ~JobContext() = default;
  // Reports progress (throttled for subscribers).
  virtual void Progress(const std::string& stage, int64_t done,
                        int64_t total) = 0;
  virtual const std::atomic<bool>* cancel_flag() const = 0;
};

class JobManager {
 public:
  // `dir` holds the job records; those left RUNNING or QUEUED by a previous
  // process are marked INTERRUPTED. `on_end` (if set) hears each job's
  // terminal status once.
  // At most `max_running` jobs run at once (0: no limit); past it Start is
  // RESOURCE_EXHAUSTED. The newest `max_ended_kept` ended jobs are kept (in
  // memory and on disk); older ones are forgotten, so a server that runs
  // jobs for months does not grow with them.
  explicit JobManager(std::string dir,
                      std::function<void(const JobStatus&)> on_end = nullptr,
                      int max_running = 0, size_t max_ended_kept = 1000);
  // Shutdown(), if not done yet.
  ~JobManager();
  // Jobs are claimed from and published to `fleet` (must outlive the
  // manager). REQUIRES: before the first Start.
  void SetFleet(JobFleet* fleet) { fleet_ = fleet; }

  // Refuses new jobs, asks running ones to stop and waits for them; a job
  // stopped this way ends INTERRUPTED ("the server shut down"). Whatever a
  // job uses must outlive this call, not the manager.
  void Shutdown();

  using Work = std::function<absl::StatusOr<std::string>(JobContext&)>;
  // Runs `work` on a new thread. Its result string becomes the message of a
  // SUCCEEDED job; an error status FAILED (CANCELLED for kCancelled).
  absl::StatusOr<JobStatus> Start(const std::string& model,
                                  const std::string& variant,
                                  const std::string& kind, Work work,
                                  const std::string& plan_id = "");
  absl::StatusOr<JobStatus> Get(const std::string& id) const;
  // Newest first; `model` empty for all.
  std::vector<JobStatus> List(const std::string& model) const;
  // Asks a job to stop; it ends CANCELLED at its next check. NOT_FOUND, or
  // FAILED_PRECONDITION if it already ended.
  absl::StatusOr<JobStatus> Cancel(const std::string& id);

  // Calls `fn` with the current status now and on every change until the job
  // ends (the last call carries the terminal state). Returns a token for
  // Unsubscribe. NOT_FOUND for an unknown job. Another replica's job (in a
  // fleet) is followed by polling its shared record (every 250 ms).
  absl::StatusOr<uint64_t> Subscribe(const std::string& id,
                                     std::function<void(const JobStatus&)> fn);
  void Unsubscribe(uint64_t token);

 private:
  struct Job;
  class Context;
  void Update(const std::string& id,
              const std::function<void(JobStatus&)>& change, bool persist);
  void Persist(const JobStatus& status);
  // Forgets the oldest ended jobs past max_ended_kept_; returns the files
  // to remove (outside the lock).
  std::vector<std::string> PruneEnded() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Follows other replicas' jobs for their subscribers.
  void PollRemote();

  const std::string dir_;
  JobFleet* fleet_ = nullptr;
  const std::function<void(const JobStatus&)> on_end_;
  const int max_running_;
  const size_t max_ended_kept_;
  // Held while a status is made and handed to subscribers, so they hear
  // statuses in version order. Taken before mu_.
  absl::Mutex delivery_mu_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t,
           std::pair<std::string, std::function<void(const JobStatus&)>>>
      subscribers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  struct RemoteSubscription {
    std::string id;
    std::function<void(const JobStatus&)> fn;
    uint64_t version = 0;  // of the last status delivered
  };
  std::map<uint64_t, RemoteSubscription> remote_subscribers_
      ABSL_GUARDED_BY(mu_);
  std::thread remote_poller_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> threads_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_JOBS_H_
