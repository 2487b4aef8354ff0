#include "server/cluster/fleet.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/logging.h"
#include "server/common/thread_name.h"

namespace twinserve {
namespace {

// A claim's value: "<job id> <replica id>".
std::string ClaimValue(const std::string& job, const std::string& replica) {
  return absl::StrCat(job, " ", replica);
}
std::pair<std::string, std::string> ParseClaim(const std::string& value) {
  std::pair<std::string, std::string> out =
      absl::StrSplit(value, absl::MaxSplits(' ', 1));
  return out;
}

}  // namespace

Fleet::Fleet(EtcdClient* client, std::string prefix, FleetOptions options)
    : client_(client), prefix_(std::move(prefix)), options_(options) {
  session_ = std::thread([this] { SessionLoop(); });
  // Claims that vanish: a job's end (its record is final by then) or its
  // replica's death (the record still says it runs).
  const std::string claims = prefix_ + "jobs/claims/";
  auto now = client_->List(claims);
  claims_watch_ = client_->Watch(
      claims, now.ok() ? now->revision : 0,
      [this](const std::vector<EtcdEvent>& events) {
        for (const EtcdEvent& e : events) {
          if (!e.deleted || e.prev_value.empty()) continue;
          ClaimVanished(e.kv.key.substr((prefix_ + "jobs/claims/").size()),
                        ParseClaim(e.prev_value).first);
        }
      },
      [this, claims] {
        // Claims lost while compacted away: their records are swept by the
        // next replica start (server/core's job sweep).
        auto again = client_->List(claims);
        return again.ok() ? again->revision : int64_t{0};
      });
}

Fleet::~Fleet() {
  claims_watch_.reset();
  int64_t lease;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    lease = lease_;
  }
  session_.join();
  // Leaving: leadership, statistics and claims go now, not after the TTL.
  if (lease != 0) client_->RevokeLease(lease).IgnoreError();
}

void Fleet::SessionLoop() {
  SetThreadName("ts-fleet");
  const absl::Duration every = options_.lease_ttl / 3;
  absl::MutexLock lock(&mu_);
  auto stopping = [this]()
                      ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
  do {
    int64_t lease = lease_;
    mu_.Unlock();
    if (lease == 0) {
      auto granted = client_->GrantLease(options_.lease_ttl);
      if (granted.ok()) lease = *granted;
    } else {
      absl::Status st = client_->KeepAlive(lease);
      if (absl::IsNotFound(st)) {
        // Out of touch for longer than the TTL: every key under it is gone
        // (leadership, statistics, claims). A new session starts.
        TS_LOG(WARNING) << "fleet: replica " << options_.replica_id
                        << "'s etcd lease expired; starting a new session";
        lease = 0;
      }
    }
    mu_.Lock();
    lease_ = lease;
  } while (!mu_.AwaitWithTimeout(absl::Condition(&stopping), every));
}

int64_t Fleet::Lease() {
  absl::MutexLock lock(&mu_);
  return lease_;
}

int64_t Fleet::session() { return Lease(); }

bool Fleet::Lead() {
  bool leads = false;
  const int64_t lease = Lease();
  const std::string key = prefix_ + "fleet/leader";
  auto kv = lease == 0 ? absl::StatusOr<std::optional<EtcdKeyValue>>(
                             absl::UnavailableError("no session"))
                       : client_->Get(key);
  if (!kv.ok()) {
    leads = false;
  } else if (kv->has_value()) {
    leads = (*kv)->value == options_.replica_id && (*kv)->lease == lease;
  } else {
    leads = client_->PutIf(key, options_.replica_id, 0, lease).ok();
    if (leads) {
      TS_LOG(INFO) << "fleet: replica " << options_.replica_id
                   << " leads (runs the rollout controller)";
    }
  }
  leading_ = leads;
  return leads;
}

absl::Status Fleet::PublishStats(const std::string& value) {
  const int64_t lease = Lease();
  if (lease == 0) return absl::UnavailableError("fleet: no etcd session");
  return client_
      ->Put(prefix_ + "fleet/stats/" + options_.replica_id, value, lease)
      .status();
}

absl::StatusOr<std::map<std::string, std::string>> Fleet::ListStats() {
  const std::string dir = prefix_ + "fleet/stats/";
  auto snap = client_->List(dir);
  if (!snap.ok()) return snap.status();
  std::map<std::string, std::string> out;
  for (const EtcdKeyValue& kv : snap->kvs) {
    out[kv.key.substr(dir.size())] = kv.value;
  }
  return out;
}

absl::Status Fleet::ClaimJob(const std::string& model,
                             const std::string& job_id) {
  const int64_t lease = Lease();
  if (lease == 0) {
    return absl::UnavailableError(
        "etcd cannot be reached: a job cannot be claimed for the fleet; "
        "retry");
  }
  const std::string key = prefix_ + "jobs/claims/" + model;
  auto put =
      client_->PutIf(key, ClaimValue(job_id, options_.replica_id), 0, lease);
  if (put.ok()) return absl::OkStatus();
  if (!absl::IsAborted(put.status())) return put.status();
  auto held = client_->Get(key);
  std::string holder = "another job";
  if (held.ok() && held->has_value()) {
    const auto [job, replica] = ParseClaim((*held)->value);
    holder = absl::StrCat("job ", job, " on replica ", replica);
  }
  return absl::FailedPreconditionError(
      absl::StrCat("model '", model,
                   "' already has a quantization job "
                   "running in the fleet (",
                   holder, "); wait for it or cancel it"));
}

void Fleet::ReleaseJob(const std::string& model, const std::string& job_id) {
  const std::string key = prefix_ + "jobs/claims/" + model;
  auto held = client_->Get(key);
  if (!held.ok() || !held->has_value()) return;
  if (ParseClaim((*held)->value).first != job_id) return;
  client_->DeleteIf(key, (*held)->mod_revision).IgnoreError();
}

absl::StatusOr<std::set<std::string>> Fleet::ClaimedJobs() {
  auto snap = client_->List(prefix_ + "jobs/claims/");
  if (!snap.ok()) return snap.status();
  std::set<std::string> out;
  for (const EtcdKeyValue& kv : snap->kvs) {
    out.insert(ParseClaim(kv.value).first);
  }
  return out;
}

absl::Status Fleet::PutJobRecord(const std::string& id,
                                 const std::string& value) {
  return client_->Put(prefix_ + "jobs/records/" + id, value).status();
}

absl::StatusOr<std::optional<std::string>> Fleet::GetJobRecord(
    const std::string& id) {
  auto kv = client_->Get(prefix_ + "jobs/records/" + id);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return std::optional<std::string>();
  return std::optional<std::string>((*kv)->value);
}

absl::Status Fleet::DeleteJobRecord(const std::string& id) {
  const std::string key = prefix_ + "jobs/records/" + id;
  auto kv = client_->Get(key);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return absl::OkStatus();
  return client_->DeleteIf(key, (*kv)->mod_revision);
}

absl::StatusOr<std::vector<std::string>> Fleet::ListJobRecords() {
  auto snap = client_->List(prefix_ + "jobs/records/");
  if (!snap.ok()) return snap.status();
  std::vector<std::string> out;
  for (const EtcdKeyValue& kv : snap->kvs) out.push_back(kv.value);
  return out;
}

void Fleet::OnClaimLost(
    std::function<std::optional<std::string>(const std::string&)> fn,
    std::function<void(const std::string&)> written) {
  absl::MutexLock lock(&mu_);
  on_lost_ = std::move(fn);
  on_lost_written_ = std::move(written);
}

void Fleet::ClaimVanished(const std::string& model, const std::string& job_id) {
  std::function<std::optional<std::string>(const std::string&)> fn;
  std::function<void(const std::string&)> written;
  {
    absl::MutexLock lock(&mu_);
    fn = on_lost_;
    written = on_lost_written_;
  }
  if (!fn) return;
  const std::string key = prefix_ + "jobs/records/" + job_id;
  auto kv = client_->Get(key);
  if (!kv.ok() || !kv->has_value()) return;
  std::optional<std::string> next = fn((*kv)->value);
  if (!next.has_value()) return;
  // Every replica sees the claim go; the first write wins.
  if (client_->PutIf(key, *next, (*kv)->mod_revision).ok()) {
    TS_LOG(WARNING) << "fleet: job " << job_id << " of model " << model
                    << " lost its replica; marked interrupted";
    if (written) written(*next);
  }
}

}  // namespace twinserve
