#include "server/traffic/router.h"

#include <algorithm>

namespace twinserve {

std::string ChooseVariant(const TrafficPolicy& policy, absl::string_view key,
                          double uniform) {
  TrafficPolicy rollout;
  const TrafficPolicy* pp = &policy;
  if (policy.kind == PolicyKind::kRollout && !policy.steps.empty()) {
    // A rollout stage is a weighted split between baseline and candidate.
    rollout = policy;
    rollout.kind = PolicyKind::kWeighted;
    const double pct =
        policy.steps[std::min<size_t>(policy.stage, policy.steps.size() - 1)];
    rollout.weights = {{policy.baseline, 100 - pct}, {policy.candidate, pct}};
    pp = &rollout;
  }
  const TrafficPolicy& p = *pp;
  if (p.kind != PolicyKind::kWeighted || p.weights.empty()) return p.baseline;
  double sum = 0;
  for (const auto& [v, w] : p.weights) sum += w;
  if (sum <= 0) return p.baseline;
  double u = uniform;
  if (!key.empty()) {
    // FNV-1a of key and policy version: stable across restarts and
    // machines, so a key sticks while the policy stands.
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](unsigned char c) {
      h ^= c;
      h *= 1099511628211ull;
    };
    for (unsigned char c : key) mix(c);
    for (int i = 0; i < 8; ++i)
      mix(static_cast<unsigned char>(p.version >> (8 * i)));
    // Finalize (splitmix64) so nearby keys spread evenly.
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    u = (h >> 11) * (1.0 / 9007199254740992.0);
  }
  double acc = 0;
  for (const auto& [v, w] : p.weights) {
    acc += w / sum;
    if (u < acc) return v;
  }
  return p.weights.rbegin()->first;
}

bool ShouldCompare(const TrafficPolicy& p, const std::string& served,
                   double uniform, std::string* other) {
  if (p.kind == PolicyKind::kShadow && served == p.baseline &&
      uniform < p.shadow_fraction) {
    *other = p.candidate;
    return true;
  }
  if (p.kind == PolicyKind::kRollout && served == p.candidate &&
      uniform < p.compare_fraction) {
    *other = p.baseline;
    return true;
  }
  return false;
}

Route Decide(const TrafficPolicy& policy, absl::string_view routing_key,
             uint64_t draw) {
  // One draw, two independent uniforms: the high 32 bits choose the
  // variant, the low 32 decide the comparison.
  const double choose = (draw >> 32) * (1.0 / 4294967296.0);
  const double compare = (draw & 0xffffffffu) * (1.0 / 4294967296.0);
  Route r;
  r.served = ChooseVariant(policy, routing_key, choose);
  if (ShouldCompare(policy, r.served, compare, &r.compare)) {
    r.served_is_baseline = r.served == policy.baseline;
  } else {
    r.compare.clear();
  }
  return r;
}

}  // namespace twinserve
