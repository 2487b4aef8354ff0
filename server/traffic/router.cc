#include "server/traffic/router.h"

#include <algorithm>

namespace twinserve {

namespace {

// A key's point in [0, 1): FNV-1a of key and policy version, stable across
// restarts and machines, so a key sticks while the policy stands; finalized
// with splitmix64 so nearby keys spread evenly.
double KeyPoint(absl::string_view key, uint64_t version) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (unsigned char c : key) mix(c);
  for (int i = 0; i < 8; ++i)
    mix(static_cast<unsigned char>(version >> (8 * i)));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return (h >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

std::string ChooseVariant(const TrafficPolicy& p, absl::string_view key,
                          double uniform) {
  const bool rollout = p.kind == PolicyKind::kRollout && !p.steps.empty();
  if (!rollout && (p.kind != PolicyKind::kWeighted || p.weights.empty())) {
    return p.baseline;
  }
  const double u = key.empty() ? uniform : KeyPoint(key, p.version);
  if (rollout) {
    // A stage is a split between baseline and candidate, taken in name
    // order as a weighted policy's shares are.
    const double pct =
        p.steps[std::min<size_t>(p.stage, p.steps.size() - 1)] / 100;
    const bool baseline_first = p.baseline < p.candidate;
    const double first = baseline_first ? 1 - pct : pct;
    if (u < first) return baseline_first ? p.baseline : p.candidate;
    return baseline_first ? p.candidate : p.baseline;
  }
  double sum = 0;
  for (const auto& [v, w] : p.weights) sum += w;
  if (sum <= 0) return p.baseline;
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
