// Fleet: this replica's membership in a fleet sharing one etcd, and what
// replicas coordinate through it besides model records:
// - a session: one etcd lease per replica, kept alive by a thread; every
//   key below that names the replica lives under it, so it vanishes within
//   the lease's TTL when the replica dies;
// - leadership: the replica holding <prefix>fleet/leader runs the fleet's
//   rollout controller (a key under the session lease, created if absent);
// - statistics: each replica's small per-model summary under
//   <prefix>fleet/stats/<replica>, summed by the leader;
// - job claims: <prefix>jobs/claims/<model> names the one job of a model
//   running in the fleet; job records (<prefix>jobs/records/<id>) outlive
//   it, so any replica can answer for any job. A claim that vanishes while
//   its record says the job runs is a replica that died: Fleet marks the
//   record through `on_claim_lost` (any replica may; the write is
//   compare-and-set, so one does).
//
// Values are opaque strings (JSON made by server/core), so this library
// depends on etcd only.
//
// Thread-safe.
#ifndef TWINSERVE_SERVER_CLUSTER_FLEET_H_
#define TWINSERVE_SERVER_CLUSTER_FLEET_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/cluster/etcd_client.h"

namespace twinserve {

struct FleetOptions {
  // Unique in the fleet; on Kubernetes the pod name.
  std::string replica_id;
  // A dead replica's keys (leadership, statistics, job claims) vanish after
  // at most this long.
  absl::Duration lease_ttl = absl::Seconds(5);
};

class Fleet {
 public:
  // `client` must outlive the fleet; `prefix` ends with '/'. Starts the
  // session thread; works (keys written once etcd answers) even while etcd
  // is down.
  Fleet(EtcdClient* client, std::string prefix, FleetOptions options);
  ~Fleet();

  const std::string& replica_id() const { return options_.replica_id; }

  // --- Leadership ----------------------------------------------------------
  // Whether this replica leads now; claims the role when it is vacant.
  // False while etcd cannot be reached.
  bool Lead();
  // What the last Lead() found (no etcd call: for /metrics).
  bool leading() const { return leading_.load(); }
  // The session's lease id (0: none); changes when a lost session is
  // replaced, taking every key written under the old one with it.
  int64_t session();

  // --- Statistics ----------------------------------------------------------
  absl::Status PublishStats(const std::string& value);
  // Every live replica's statistics (own included), by replica.
  absl::StatusOr<std::map<std::string, std::string>> ListStats();

  // --- Jobs ----------------------------------------------------------------
  // Claims `model` for job `job_id`: FAILED_PRECONDITION naming the job and
  // replica that hold it; UNAVAILABLE if etcd cannot be reached.
  absl::Status ClaimJob(const std::string& model, const std::string& job_id);
  void ReleaseJob(const std::string& model, const std::string& job_id);
  // Ids of the jobs that hold a claim now.
  absl::StatusOr<std::set<std::string>> ClaimedJobs();
  absl::Status PutJobRecord(const std::string& id, const std::string& value);
  absl::StatusOr<std::optional<std::string>> GetJobRecord(
      const std::string& id);
  absl::Status DeleteJobRecord(const std::string& id);
  absl::StatusOr<std::vector<std::string>> ListJobRecords();
  // `fn(record)` returns the record to write when a job's claim vanished
  // while its record is not final (nullopt: leave it); `written(record)`
  // hears it when this replica's write of it won. Set once, before any
  // claim can vanish.
  void OnClaimLost(
      std::function<std::optional<std::string>(const std::string&)> fn,
      std::function<void(const std::string&)> written = nullptr);

 private:
  // Grants the lease if needed and keeps it alive; returns it or 0.
  int64_t Lease();
  void SessionLoop();
  void ClaimVanished(const std::string& model, const std::string& job_id);

  EtcdClient* const client_;
  const std::string prefix_;
  const FleetOptions options_;
  absl::Mutex mu_;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::function<std::optional<std::string>(const std::string&)> on_lost_
      ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> on_lost_written_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> leading_{false};
  std::thread session_;
  std::unique_ptr<EtcdWatch> claims_watch_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CLUSTER_FLEET_H_
