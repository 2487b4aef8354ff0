#include "server/traffic/policy.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace twinserve {
namespace {

using json = nlohmann::json;

json ToJ(const TrafficPolicy& p) {
  return json{{"kind", PolicyKindName(p.kind)},
              {"baseline", p.baseline},
              {"weights", p.weights},
              {"candidate", p.candidate},
              {"shadow_fraction", p.shadow_fraction},
              {"steps", p.steps},
              {"stage", p.stage},
              {"min_requests", p.min_requests},
              {"min_seconds", p.min_seconds},
              {"compare_fraction", p.compare_fraction},
              {"guards",
               {{"max_disagreement", p.guards.max_disagreement},
                {"min_cosine", p.guards.min_cosine},
                {"max_error_rate", p.guards.max_error_rate},
                {"max_p99_ratio", p.guards.max_p99_ratio},
                {"min_samples", p.guards.min_samples}}},
              {"version", p.version},
              {"updated_unix_ms", p.updated_unix_ms},
              {"author", p.author},
              {"reason", p.reason}};
}

absl::StatusOr<TrafficPolicy> FromJ(const json& j) {
  TrafficPolicy p;
  auto kind = ParsePolicyKind(j.at("kind").get<std::string>());
  if (!kind.ok()) return kind.status();
  p.kind = *kind;
  p.baseline = j.at("baseline").get<std::string>();
  p.weights = j.at("weights").get<std::map<std::string, double>>();
  // Earlier versions accepted (and ignored) weights on other kinds.
  if (p.kind != PolicyKind::kWeighted) p.weights.clear();
  p.candidate = j.value("candidate", "");
  p.shadow_fraction = j.value("shadow_fraction", 1.0);
  p.steps = j.value("steps", std::vector<double>());
  p.stage = j.value("stage", 0);
  p.min_requests = j.value("min_requests", int64_t{100});
  p.min_seconds = j.value("min_seconds", 10.0);
  p.compare_fraction = j.value("compare_fraction", 1.0);
  if (j.contains("guards")) {
    const auto& g = j.at("guards");
    p.guards.max_disagreement = g.value("max_disagreement", 0.02);
    p.guards.min_cosine = g.value("min_cosine", 0.99);
    p.guards.max_error_rate = g.value("max_error_rate", 0.01);
    p.guards.max_p99_ratio = g.value("max_p99_ratio", 2.0);
    p.guards.min_samples = g.value("min_samples", int64_t{20});
  }
  p.version = j.at("version").get<uint64_t>();
  p.updated_unix_ms = j.at("updated_unix_ms").get<int64_t>();
  p.author = j.value("author", "");
  p.reason = j.value("reason", "");
  return p;
}

}  // namespace

const char* PolicyKindName(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::kPinned:
      return "pinned";
    case PolicyKind::kWeighted:
      return "weighted";
    case PolicyKind::kShadow:
      return "shadow";
    case PolicyKind::kRollout:
      return "rollout";
  }
  return "unknown";
}

absl::StatusOr<PolicyKind> ParsePolicyKind(const std::string& name) {
  if (name == "pinned") return PolicyKind::kPinned;
  if (name == "weighted") return PolicyKind::kWeighted;
  if (name == "shadow") return PolicyKind::kShadow;
  if (name == "rollout") return PolicyKind::kRollout;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown policy kind '", name, "' (pinned, weighted)"));
}

absl::Status ValidatePolicy(const TrafficPolicy& p,
                            const std::set<std::string>& variants) {
  // Every number is stored in the manifest as JSON, which has no NaN or
  // infinity, whatever the kind uses: such a policy would not survive a
  // restart.
  const RolloutGuards& g = p.guards;
  const std::pair<const char*, double> numbers[] = {
      {"shadow_fraction", p.shadow_fraction},
      {"min_seconds", p.min_seconds},
      {"compare_fraction", p.compare_fraction},
      {"max_disagreement", g.max_disagreement},
      {"min_cosine", g.min_cosine},
      {"max_error_rate", g.max_error_rate},
      {"max_p99_ratio", g.max_p99_ratio}};
  for (const auto& [name, value] : numbers) {
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be a finite number, not ", value));
    }
  }
  for (double s : p.steps) {
    if (!std::isfinite(s)) {
      return absl::InvalidArgumentError(
          absl::StrCat("rollout steps must be finite numbers, not ", s));
    }
  }
  if (!variants.count(p.baseline)) {
    return absl::InvalidArgumentError(
        absl::StrCat("baseline variant '", p.baseline, "' does not exist"));
  }
  if (p.kind == PolicyKind::kRollout) {
    if (!variants.count(p.candidate) || p.candidate == p.baseline) {
      return absl::InvalidArgumentError(
          absl::StrCat("rollout candidate '", p.candidate,
                       "' must be a ready variant other than the baseline"));
    }
    if (p.steps.empty()) {
      return absl::InvalidArgumentError(
          "a rollout needs steps (percent of traffic), e.g. 1,10,50,100");
    }
    double last = 0;
    for (double s : p.steps) {
      if (!(s > last && s <= 100)) {
        return absl::InvalidArgumentError(
            "rollout steps must increase within (0, 100]");
      }
      last = s;
    }
    if (p.stage < 0 || p.stage >= static_cast<int>(p.steps.size())) {
      return absl::InvalidArgumentError("rollout stage is out of range");
    }
    if (!(p.compare_fraction >= 0 && p.compare_fraction <= 1)) {
      return absl::InvalidArgumentError("compare_fraction must be in [0, 1]");
    }
    if (p.min_requests < 0) {
      return absl::InvalidArgumentError("min_requests must be >= 0");
    }
    if (p.min_seconds < 0) {  // finite: checked above
      return absl::InvalidArgumentError("min_seconds must be >= 0");
    }
    if (!(g.max_disagreement >= 0 && g.max_disagreement <= 1)) {
      return absl::InvalidArgumentError(
          "max_disagreement must be in [0, 1] (0 turns the guard off)");
    }
    if (!(g.min_cosine >= -1 && g.min_cosine <= 1)) {
      return absl::InvalidArgumentError(
          "min_cosine must be in [-1, 1] (<= 0 turns the guard off)");
    }
    if (!(g.max_error_rate >= 0 && g.max_error_rate <= 1)) {
      return absl::InvalidArgumentError(
          "max_error_rate must be in [0, 1] (0 turns the guard off)");
    }
    if (g.max_p99_ratio < 0) {
      return absl::InvalidArgumentError(
          "max_p99_ratio must be >= 0 (0 turns the guard off)");
    }
    if (g.min_samples < 0) {
      return absl::InvalidArgumentError("min_samples must be >= 0");
    }
  }
  if (p.kind == PolicyKind::kShadow) {
    if (!variants.count(p.candidate)) {
      return absl::InvalidArgumentError(
          absl::StrCat("shadow candidate '", p.candidate,
                       "' does not exist or is not ready"));
    }
    if (p.candidate == p.baseline) {
      return absl::InvalidArgumentError(
          "the shadow candidate must differ from the baseline");
    }
    if (!(p.shadow_fraction > 0 && p.shadow_fraction <= 1)) {
      return absl::InvalidArgumentError("shadow_fraction must be in (0, 1]");
    }
  }
  if (p.kind != PolicyKind::kWeighted && !p.weights.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights apply only to a weighted policy; this one is ",
                     PolicyKindName(p.kind)));
  }
  if (p.kind == PolicyKind::kWeighted) {
    double sum = 0;
    for (const auto& [v, w] : p.weights) {
      if (!variants.count(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("weighted policy names variant '", v,
                         "', which the model does not have"));
      }
      if (!(w >= 0 && std::isfinite(w))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "weight of '", v, "' must be a finite number >= 0, not ", w));
      }
      sum += w;
    }
    if (sum <= 0) {
      return absl::InvalidArgumentError(
          "a weighted policy needs at least one positive weight");
    }
    if (!std::isfinite(sum)) {
      return absl::InvalidArgumentError(
          "the weights of a weighted policy must have a finite sum");
    }
  }
  return absl::OkStatus();
}

std::map<std::string, double> TrafficShares(const TrafficPolicy& p) {
  std::map<std::string, double> out;
  if (p.kind == PolicyKind::kRollout && !p.steps.empty()) {
    const double pct =
        p.steps[std::min<size_t>(p.stage, p.steps.size() - 1)] / 100;
    out[p.baseline] = 1 - pct;
    out[p.candidate] += pct;
    return out;
  }
  if (p.kind != PolicyKind::kWeighted) {
    out[p.baseline] = 1.0;
    return out;
  }
  double sum = 0;
  for (const auto& [v, w] : p.weights) sum += w;
  for (const auto& [v, w] : p.weights) out[v] = sum > 0 ? w / sum : 0;
  return out;
}

std::string PolicyToJson(const TrafficPolicy& p) { return ToJ(p).dump(); }

absl::StatusOr<TrafficPolicy> PolicyFromJson(const std::string& text) {
  try {
    return FromJ(json::parse(text));
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("corrupt policy: ", e.what()));
  }
}

std::string HistoryToJson(const std::vector<PolicyChange>& history) {
  json arr = json::array();
  for (const PolicyChange& c : history) {
    arr.push_back({{"version", c.version},
                   {"unix_ms", c.unix_ms},
                   {"action", c.action},
                   {"actor", c.actor},
                   {"reason", c.reason},
                   {"policy", ToJ(c.policy)}});
  }
  return arr.dump();
}

absl::StatusOr<std::vector<PolicyChange>> HistoryFromJson(
    const std::string& text) {
  try {
    std::vector<PolicyChange> out;
    for (const auto& j : json::parse(text)) {
      PolicyChange c;
      c.version = j.at("version");
      c.unix_ms = j.at("unix_ms");
      c.action = j.at("action");
      c.actor = j.at("actor");
      c.reason = j.at("reason");
      auto p = FromJ(j.at("policy"));
      if (!p.ok()) return p.status();
      c.policy = *p;
      out.push_back(std::move(c));
    }
    return out;
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("corrupt history: ", e.what()));
  }
}

}  // namespace twinserve
