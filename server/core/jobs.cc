#include "server/core/jobs.h"

#include <malloc.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/common/clock.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/common/thread_name.h"

namespace twinserve {

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
    case JobState::kInterrupted:
      return "INTERRUPTED";
  }
  return "UNKNOWN";
}

bool IsTerminal(JobState s) {
  return s != JobState::kQueued && s != JobState::kRunning;
}

struct JobManager::Job {
  JobStatus status;
  std::atomic<bool> cancel{false};
  int64_t last_notify_ms = 0;
  std::atomic<bool> thread_done{false};  // its thread may be joined
};

class JobManager::Context : public JobContext {
 public:
  Context(JobManager* m, std::shared_ptr<Job> job) : m_(m), job_(job) {}
  void Progress(const std::string& stage, int64_t done,
                int64_t total) override {
    const int64_t now = NowUnixMs();
    // Subscribers see at most ~10 updates a second, and every stage change.
    bool notify;
    {
      absl::MutexLock lock(&m_->mu_);
      notify = stage != job_->status.stage || now - job_->last_notify_ms >= 100;
      if (notify) job_->last_notify_ms = now;
    }
    if (!notify) {
      absl::MutexLock lock(&m_->mu_);
      job_->status.done = done;
      job_->status.total = total;
      return;
    }
    m_->Update(
        job_->status.id,
        [&](JobStatus& s) {
          s.stage = stage;
          s.done = done;
          s.total = total;
        },
        /*persist=*/false);
  }
  const std::atomic<bool>* cancel_flag() const override {
    return &job_->cancel;
  }

 private:
  JobManager* m_;
  std::shared_ptr<Job> job_;
};

std::string JobToJson(const JobStatus& s) {
  nlohmann::json j = {{"id", s.id},
                      {"model", s.model},
                      {"variant", s.variant},
                      {"kind", s.kind},
                      {"state", JobStateName(s.state)},
                      {"stage", s.stage},
                      {"done", s.done},
                      {"total", s.total},
                      {"created_unix_ms", s.created_unix_ms},
                      {"started_unix_ms", s.started_unix_ms},
                      {"ended_unix_ms", s.ended_unix_ms},
                      {"message", s.message},
                      {"version", s.version},
                      {"plan_id", s.plan_id}};
  return j.dump(2);
}

bool JobFromJson(const std::string& text, JobStatus* s) {
  try {
    auto j = nlohmann::json::parse(text);
    s->id = j.at("id");
    s->model = j.at("model");
    s->variant = j.at("variant");
    s->kind = j.at("kind");
    const std::string state = j.at("state");
    s->state = JobState::kInterrupted;
    for (JobState st :
         {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
          JobState::kFailed, JobState::kCancelled, JobState::kInterrupted}) {
      if (state == JobStateName(st)) s->state = st;
    }
    s->stage = j.at("stage");
    s->done = j.at("done");
    s->total = j.at("total");
    s->created_unix_ms = j.at("created_unix_ms");
    s->started_unix_ms = j.at("started_unix_ms");
    s->ended_unix_ms = j.at("ended_unix_ms");
    s->message = j.at("message");
    s->version = j.value("version", uint64_t{0});  // absent before clusters
    s->plan_id = j.value("plan_id", std::string());
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

JobManager::JobManager(std::string dir,
                       std::function<void(const JobStatus&)> on_end,
                       int max_running, size_t max_ended_kept)
    : dir_(std::move(dir)),
      on_end_(std::move(on_end)),
      max_running_(max_running),
      max_ended_kept_(max_ended_kept) {
  MakeDirs(dir_).IgnoreError();
  auto files = ListDir(dir_);
  if (!files.ok()) return;
  std::vector<std::string> forget;
  absl::Cleanup remove = [&forget] {
    for (const std::string& f : forget) RemoveAll(f).IgnoreError();
  };
  absl::MutexLock lock(&mu_);
  for (const std::string& f : *files) {
    auto text = ReadFile(JoinPath(dir_, f));
    auto job = std::make_shared<Job>();
    if (!text.ok() || !JobFromJson(*text, &job->status)) continue;
    if (!IsTerminal(job->status.state)) {
      job->status.state = JobState::kInterrupted;
      job->status.message =
          "the server stopped while this job ran; nothing it made was "
          "published. Start it again.";
      job->status.ended_unix_ms = NowUnixMs();
      Persist(job->status);
    }
    jobs_[job->status.id] = job;
  }
  forget = PruneEnded();
}

std::vector<std::string> JobManager::PruneEnded() {
  std::vector<std::pair<int64_t, std::string>> ended;  // created, id
  for (const auto& [id, j] : jobs_) {
    if (IsTerminal(j->status.state)) {
      ended.emplace_back(j->status.created_unix_ms, id);
    }
  }
  std::vector<std::string> files;
  if (ended.size() <= max_ended_kept_) return files;
  std::sort(ended.begin(), ended.end());
  for (size_t i = 0; i + max_ended_kept_ < ended.size(); ++i) {
    jobs_.erase(ended[i].second);
    files.push_back(JoinPath(dir_, ended[i].second + ".json"));
  }
  return files;
}

JobManager::~JobManager() { Shutdown(); }

void JobManager::Shutdown() {
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> threads;
  std::thread poller;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, job] : jobs_) job->cancel = true;
    threads.swap(threads_);
    poller.swap(remote_poller_);
  }
  for (auto& [job, t] : threads) t.join();
  if (poller.joinable()) poller.join();
}

void JobManager::Persist(const JobStatus& status) {
  if (fleet_ != nullptr) fleet_->Publish(status);
  absl::Status st = WriteFileAtomically(JoinPath(dir_, status.id + ".json"),
                                        JobToJson(status));
  if (!st.ok()) {
    TS_LOG(ERROR) << "cannot persist job " << status.id << ": " << st;
  }
}

void JobManager::Update(const std::string& id,
                        const std::function<void(JobStatus&)>& change,
                        bool persist) {
  absl::MutexLock delivery(&delivery_mu_);
  JobStatus copy;
  std::vector<std::function<void(const JobStatus&)>> fns;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    change(it->second->status);
    it->second->status.version++;
    copy = it->second->status;
    if (persist) Persist(copy);
    for (const auto& [token, sub] : subscribers_) {
      if (sub.first == id) fns.push_back(sub.second);
    }
  }
  for (auto& fn : fns) fn(copy);
}

absl::StatusOr<JobStatus> JobManager::Start(const std::string& model,
                                            const std::string& variant,
                                            const std::string& kind, Work work,
                                            const std::string& plan_id) {
  auto job = std::make_shared<Job>();
  // Threads of ended jobs are joined here: an unjoined thread keeps its
  // stack (and LibTorch's thread-local caches) for the process's life.
  std::vector<std::thread> ended;
  std::vector<std::string> forget;
  absl::Cleanup join_ended = [&ended, &forget] {
    for (std::thread& t : ended) t.join();
    for (const std::string& f : forget) RemoveAll(f).IgnoreError();
  };
  const int64_t now = NowUnixMs();
  job->status.id = absl::StrFormat("q-%d-%s", now, RandomToken().substr(0, 6));
  job->status.model = model;
  job->status.variant = variant;
  job->status.kind = kind;
  job->status.plan_id = plan_id;
  job->status.state = JobState::kRunning;
  job->status.stage = "starting";
  job->status.created_unix_ms = now;
  job->status.started_unix_ms = now;
  // The fleet's claim first (an etcd round trip, outside the lock); given
  // back if this replica refuses the job after all.
  bool claimed = false;
  if (fleet_ != nullptr) {
    absl::Status st = fleet_->Claim(job->status);
    if (!st.ok()) return st;
    claimed = true;
  }
  absl::Cleanup release = [&] {
    if (claimed) fleet_->Release(job->status);
  };
  {
    absl::MutexLock lock(&mu_);
    forget = PruneEnded();
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->first->thread_done.load()) {
        ended.push_back(std::move(it->second));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    if (stopping_) {
      return absl::UnavailableError(
          "the server is shutting down; no new jobs start");
    }
    int running = 0;
    for (const auto& [id, j] : jobs_) {
      if (IsTerminal(j->status.state)) continue;
      ++running;
      if (j->status.model == model) {
        return absl::FailedPreconditionError(absl::StrCat(
            "job ", id, " is already ", JobStateName(j->status.state),
            " for model '", model,
            "'; one job per model at a time (wait for it or cancel it)"));
      }
    }
    if (max_running_ > 0 && running >= max_running_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          running, " jobs are running, the limit (--max_concurrent_jobs=",
          max_running_, "); retry when one ends"));
    }
    Persist(job->status);
    claimed = false;  // the job's thread releases it
    jobs_[job->status.id] = job;
    const std::string id = job->status.id;
    threads_.emplace_back(
        job, std::thread([this, job, id, work = std::move(work)] {
          SetThreadName("ts-job");
          Context ctx(this, job);
          absl::StatusOr<std::string> result = work(ctx);
          bool stopping;
          {
            absl::MutexLock lock(&mu_);
            stopping = stopping_;
          }
          Update(
              id,
              [&](JobStatus& s) {
                s.ended_unix_ms = NowUnixMs();
                if (result.ok()) {
                  s.state = JobState::kSucceeded;
                  s.stage = "done";
                  s.done = s.total;
                  s.message = *result;
                } else if (absl::IsCancelled(result.status()) && stopping) {
                  s.state = JobState::kInterrupted;
                  s.message =
                      "the server shut down while this job ran; nothing it "
                      "made "
                      "was published. Start it again.";
                } else if (absl::IsCancelled(result.status())) {
                  s.state = JobState::kCancelled;
                  s.message = std::string(result.status().message());
                } else {
                  s.state = JobState::kFailed;
                  s.message = std::string(result.status().message());
                }
              },
              /*persist=*/true);
          auto end = Get(id);
          if (fleet_ != nullptr && end.ok()) fleet_->Release(*end);
          TS_LOG(INFO) << "job " << id << " ended "
                       << (end.ok() ? JobStateName(end->state) : "");
          if (on_end_ && end.ok()) on_end_(*end);
          // A job frees hundreds of MB (a model loaded per trial,
          // calibration batches) that glibc keeps in its arenas: without
          // this each job left ~75 MB resident (6 jobs: 196 -> 689 MB;
          // malloc_trim then -> 306 MB).
          malloc_trim(0);
          job->thread_done = true;
        }));
  }
  return Get(job->status.id);
}

absl::StatusOr<JobStatus> JobManager::Get(const std::string& id) const {
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end()) return it->second->status;
  }
  if (fleet_ != nullptr) {
    auto found = fleet_->Find(id);
    if (found.ok() || !absl::IsNotFound(found.status())) return found;
  }
  return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
}

std::vector<JobStatus> JobManager::List(const std::string& model) const {
  std::vector<JobStatus> out;
  std::set<std::string> local;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, j] : jobs_) {
      local.insert(id);
      if (model.empty() || j->status.model == model) out.push_back(j->status);
    }
  }
  if (fleet_ != nullptr) {
    for (JobStatus& s : fleet_->List(model)) {
      if (!local.count(s.id)) out.push_back(std::move(s));
    }
  }
  std::sort(out.begin(), out.end(), [](const JobStatus& a, const JobStatus& b) {
    return a.created_unix_ms > b.created_unix_ms;
  });
  return out;
}

absl::StatusOr<JobStatus> JobManager::Cancel(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      auto remote = fleet_ != nullptr
                        ? fleet_->Find(id)
                        : absl::StatusOr<JobStatus>(absl::NotFoundError(""));
      if (remote.ok() && !IsTerminal(remote->state)) {
        return absl::FailedPreconditionError(
            absl::StrCat("job ", id,
                         " runs on another replica of the fleet; cancel it "
                         "through that replica"));
      }
      if (remote.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "job ", id, " already ended ", JobStateName(remote->state)));
      }
      return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
    }
    if (IsTerminal(it->second->status.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " already ended ",
                       JobStateName(it->second->status.state)));
    }
    it->second->cancel = true;
  }
  return Get(id);
}

absl::StatusOr<uint64_t> JobManager::Subscribe(
    const std::string& id, std::function<void(const JobStatus&)> fn) {
  // The current status reaches `fn` before any later one can.
  absl::MutexLock delivery(&delivery_mu_);
  JobStatus now;
  uint64_t token;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end()) {
      token = next_token_++;
      subscribers_[token] = {id, fn};
      now = it->second->status;
    } else {
      token = 0;
    }
  }
  if (token == 0) {
    if (fleet_ == nullptr) {
      return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
    }
    TS_ASSIGN_OR_RETURN(now, fleet_->Find(id));
    absl::MutexLock lock(&mu_);
    token = next_token_++;
    if (!IsTerminal(now.state)) {
      if (stopping_) {
        return absl::UnavailableError("the server is shutting down");
      }
      remote_subscribers_[token] = {id, fn, now.version};
      if (!remote_poller_.joinable()) {
        remote_poller_ = std::thread([this] { PollRemote(); });
      }
    }
  }
  fn(now);
  return token;
}

void JobManager::PollRemote() {
  SetThreadName("ts-job-follow");
  absl::MutexLock lock(&mu_);
  auto stopping = [this]()
                      ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping),
                               absl::Milliseconds(250))) {
    std::map<uint64_t, RemoteSubscription> subs = remote_subscribers_;
    mu_.Unlock();
    for (auto& [token, sub] : subs) {
      auto s = fleet_->Find(sub.id);
      if (!s.ok() || s->version == sub.version) continue;
      {
        absl::MutexLock delivery(&delivery_mu_);
        sub.fn(*s);
      }
      absl::MutexLock relock(&mu_);
      auto it = remote_subscribers_.find(token);
      if (it == remote_subscribers_.end()) continue;
      it->second.version = s->version;
      if (IsTerminal(s->state)) remote_subscribers_.erase(it);
    }
    mu_.Lock();
  }
}

void JobManager::Unsubscribe(uint64_t token) {
  absl::MutexLock lock(&mu_);
  subscribers_.erase(token);
  remote_subscribers_.erase(token);
}

}  // namespace twinserve
