// FleetJobs: JobManager's jobs shared with the other replicas of a fleet
// through server/cluster/fleet.h: a job claims its model in etcd (one job
// per model in the fleet), its statuses are published there (any replica
// answers GetJob and ListJobs), and a job whose replica dies is marked
// INTERRUPTED by the replicas that see its claim expire, or, if none was
// running then, by the next one to start. Nothing a dead job made was
// published: a variant commits only when its job finishes.
#ifndef TWINSERVE_SERVER_CORE_FLEET_JOBS_H_
#define TWINSERVE_SERVER_CORE_FLEET_JOBS_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "server/cluster/fleet.h"
#include "server/core/jobs.h"

namespace twinserve {

class FleetJobs : public JobFleet {
 public:
  // `fleet` must outlive this. Marks jobs whose claims are gone. The
  // newest `max_ended_kept` ended jobs are kept in etcd (as JobManager
  // keeps them on disk); older records are deleted as jobs end.
  // `on_interrupted` (may be null) hears each job this replica marks
  // INTERRUPTED (once in the fleet: the marking is compare-and-set).
  explicit FleetJobs(
      Fleet* fleet, size_t max_ended_kept = 1000,
      std::function<void(const JobStatus&)> on_interrupted = nullptr);

  absl::Status Claim(const JobStatus& status) override;
  void Publish(const JobStatus& status) override;
  void Release(const JobStatus& status) override;
  absl::StatusOr<JobStatus> Find(const std::string& id) override;
  std::vector<JobStatus> List(const std::string& model) override;

  // Records that say a job runs though no claim holds it (their replica
  // died while no other watched) are marked INTERRUPTED; call once the
  // server has loaded its models. Returns how many.
  int SweepOrphans();
  // Deletes the oldest ended records past max_ended_kept. Returns how many.
  int Prune();

 private:
  Fleet* const fleet_;
  const size_t max_ended_kept_;
  const std::function<void(const JobStatus&)> on_interrupted_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_FLEET_JOBS_H_
