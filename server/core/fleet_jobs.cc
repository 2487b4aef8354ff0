#include "server/core/fleet_jobs.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/common/logging.h"

namespace twinserve {
namespace {

// The record of a job whose replica died, or nullopt if it ended anyway.
std::optional<std::string> Interrupted(const std::string& record,
                                       const std::string& why) {
  JobStatus s;
  if (!JobFromJson(record, &s) || IsTerminal(s.state)) return std::nullopt;
  s.state = JobState::kInterrupted;
  s.ended_unix_ms = NowUnixMs();
  s.message = absl::StrCat(why,
                           "; nothing it made was published. Start it again "
                           "(through any replica).");
  s.version++;
  return JobToJson(s);
}

}  // namespace

FleetJobs::FleetJobs(Fleet* fleet, size_t max_ended_kept,
                     std::function<void(const JobStatus&)> on_interrupted)
    : fleet_(fleet),
      max_ended_kept_(max_ended_kept),
      on_interrupted_(std::move(on_interrupted)) {
  fleet_->OnClaimLost(
      [](const std::string& record) {
        return Interrupted(record,
                           "the replica running this job stopped (its etcd "
                           "lease expired)");
      },
      [this](const std::string& record) {
        JobStatus s;
        if (on_interrupted_ && JobFromJson(record, &s)) on_interrupted_(s);
      });
  Prune();
}

int FleetJobs::Prune() {
  auto records = fleet_->ListJobRecords();
  if (!records.ok()) return 0;
  std::vector<std::pair<int64_t, std::string>> ended;  // created, id
  for (const std::string& r : *records) {
    JobStatus s;
    if (JobFromJson(r, &s) && IsTerminal(s.state)) {
      ended.emplace_back(s.created_unix_ms, s.id);
    }
  }
  if (ended.size() <= max_ended_kept_) return 0;
  std::sort(ended.begin(), ended.end());
  int deleted = 0;
  for (size_t i = 0; i + max_ended_kept_ < ended.size(); ++i) {
    if (fleet_->DeleteJobRecord(ended[i].second).ok()) ++deleted;
  }
  return deleted;
}

int FleetJobs::SweepOrphans() {
  auto claimed = fleet_->ClaimedJobs();
  auto records = fleet_->ListJobRecords();
  if (!claimed.ok() || !records.ok()) return 0;
  int marked = 0;
  for (const std::string& r : *records) {
    JobStatus s;
    if (!JobFromJson(r, &s) || claimed->count(s.id)) continue;
    auto next = Interrupted(r, "the replica running this job stopped");
    if (next.has_value() && fleet_->PutJobRecord(s.id, *next).ok()) {
      ++marked;
      if (on_interrupted_) on_interrupted_(s);
    }
  }
  if (marked > 0) {
    TS_LOG(WARNING) << "fleet: " << marked
                    << " jobs of stopped replicas marked INTERRUPTED";
  }
  return marked;
}

absl::Status FleetJobs::Claim(const JobStatus& status) {
  return fleet_->ClaimJob(status.model, status.id);
}

void FleetJobs::Publish(const JobStatus& status) {
  absl::Status st = fleet_->PutJobRecord(status.id, JobToJson(status));
  if (!st.ok()) {
    TS_LOG(WARNING) << "fleet: job " << status.id
                    << "'s status not shared: " << st;
  }
}

void FleetJobs::Release(const JobStatus& status) {
  fleet_->ReleaseJob(status.model, status.id);
  Prune();  // one listing per job's end: jobs take seconds at least
}

absl::StatusOr<JobStatus> FleetJobs::Find(const std::string& id) {
  auto record = fleet_->GetJobRecord(id);
  if (!record.ok()) return record.status();
  JobStatus s;
  if (!record->has_value() || !JobFromJson(**record, &s)) {
    return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  }
  return s;
}

std::vector<JobStatus> FleetJobs::List(const std::string& model) {
  std::vector<JobStatus> out;
  auto records = fleet_->ListJobRecords();
  if (!records.ok()) return out;
  for (const std::string& r : *records) {
    JobStatus s;
    if (JobFromJson(r, &s) && (model.empty() || s.model == model)) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace twinserve
