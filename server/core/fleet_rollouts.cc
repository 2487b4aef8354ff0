#include "server/core/fleet_rollouts.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "server/common/logging.h"

namespace twinserve {

std::string FleetRollouts::Encode(
    const std::map<std::string, std::pair<uint64_t, RolloutCounters>>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [model, vc] : m) {
    const RolloutCounters& c = vc.second;
    j[model] = {{"policy_version", vc.first},
                {"candidate_success", c.candidate_success},
                {"candidate_failed", c.candidate_failed},
                {"agreements", c.agreements},
                {"disagreements", c.disagreements},
                {"cosine_sum", c.cosine_sum},
                {"cosine_count", c.cosine_count},
                {"bounds", c.bounds},
                {"candidate_buckets", c.candidate_buckets},
                {"baseline_buckets", c.baseline_buckets}};
  }
  return j.dump();
}

bool FleetRollouts::Decode(
    const std::string& text,
    std::map<std::string, std::pair<uint64_t, RolloutCounters>>* m) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    for (const auto& [model, v] : j.items()) {
      RolloutCounters c;
      c.candidate_success = v.at("candidate_success");
      c.candidate_failed = v.at("candidate_failed");
      c.agreements = v.at("agreements");
      c.disagreements = v.at("disagreements");
      c.cosine_sum = v.at("cosine_sum");
      c.cosine_count = v.at("cosine_count");
      // JSON has no infinity: the last bound (+inf) was written as null.
      for (const auto& b : v.at("bounds")) {
        c.bounds.push_back(b.is_null() ? std::numeric_limits<double>::infinity()
                                       : b.get<double>());
      }
      c.candidate_buckets =
          v.at("candidate_buckets").get<std::vector<uint64_t>>();
      c.baseline_buckets =
          v.at("baseline_buckets").get<std::vector<uint64_t>>();
      (*m)[model] = {v.at("policy_version").get<uint64_t>(), std::move(c)};
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool FleetRollouts::Share(
    const std::map<std::string, std::pair<uint64_t, RolloutCounters>>& mine) {
  // Shared when they change (an empty map too, so the leader's sums drop a
  // finished stage) and again under a new session (the old one's keys
  // went with it).
  const std::string text = Encode(mine);
  const int64_t session = fleet_->session();
  if (session == 0) return false;  // out of touch: nobody's counters are sure
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    changed = text != published_ || session != published_session_;
  }
  if (changed) {
    if (!fleet_->PublishStats(text).ok()) return false;
    absl::MutexLock lock(&mu_);
    published_ = text;
    published_session_ = session;
  }
  if (!fleet_->Lead()) return false;
  auto all = fleet_->ListStats();
  if (!all.ok()) return false;
  std::map<std::pair<std::string, uint64_t>, RolloutCounters> sums;
  for (const auto& [replica, text] : *all) {
    std::map<std::string, std::pair<uint64_t, RolloutCounters>> theirs;
    if (!Decode(text, &theirs)) {
      TS_LOG(WARNING) << "fleet: unreadable statistics of replica " << replica;
      continue;
    }
    for (const auto& [model, vc] : theirs) {
      AddCounters(vc.second, &sums[{model, vc.first}]);
    }
  }
  absl::MutexLock lock(&mu_);
  sums_ = std::move(sums);
  return true;
}

RolloutCounters FleetRollouts::Sum(const std::string& model,
                                   uint64_t policy_version) {
  absl::MutexLock lock(&mu_);
  auto it = sums_.find({model, policy_version});
  return it == sums_.end() ? RolloutCounters() : it->second;
}

}  // namespace twinserve
