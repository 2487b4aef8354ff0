// twinctl's traffic commands: policy, promote, rollback, history, compare.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/report.h"
#include "client/twinctl_common.h"

namespace twinserve {
namespace twinctl {
namespace {

// One line for any policy the server returns, whatever it holds.
void PrintPolicy(const v1::TrafficPolicy& p) {
  std::string detail;
  for (const auto& [v, w] : p.weights()) {
    absl::StrAppend(&detail, detail.empty() ? "" : ", ", v, "=", w);
  }
  if (p.kind() == "shadow") {
    absl::StrAppend(&detail, "shadow ", p.candidate(), " on ",
                    100 * p.shadow_fraction(), "%");
  } else if (p.kind() == "rollout") {
    absl::StrAppend(&detail, "rollout of ", p.candidate());
    if (p.steps_size() > 0) {
      const int stage = std::clamp(p.stage(), 0, p.steps_size() - 1);
      absl::StrAppend(&detail, " at stage ", stage + 1, "/", p.steps_size(),
                      " (", p.steps(stage), "%)");
    }
    absl::StrAppend(
        &detail, "; a stage holds ", p.min_requests(), " requests and ",
        p.min_seconds(), " s; guards: disagreement <= ", p.max_disagreement(),
        ", cosine >= ", p.min_cosine(), ", errors <= ", p.max_error_rate(),
        ", p99 ratio <= ", p.max_p99_ratio(), " after ", p.min_samples(),
        " samples");
  }
  std::printf("policy v%llu: %s, baseline %s%s%s   (%s by %s%s%s)\n",
              static_cast<unsigned long long>(p.version()), p.kind().c_str(),
              p.baseline().c_str(), detail.empty() ? "" : ", ", detail.c_str(),
              Time(p.updated_unix_ms()).c_str(),
              p.author().empty() ? "-" : p.author().c_str(),
              p.reason().empty() ? "" : ": ", p.reason().c_str());
}

// --if-version N as the request's expected version; false if malformed.
template <typename Request>
bool ExpectedVersion(const Args& args, Request* req) {
  std::optional<int64_t> v;
  if (!IntegerFlag(args, "if-version", &v) || (v && *v < 0)) return false;
  if (v) req->set_expected_version(static_cast<uint64_t>(*v));
  return true;
}

}  // namespace

// Fills the rollout part of `p` from --rollout and its flags; an error
// message on a malformed value.
std::string RolloutFromFlags(const Args& args, v1::TrafficPolicy* p) {
  p->set_kind("rollout");
  p->set_baseline(args.Get("baseline"));
  p->set_candidate(args.Get("rollout"));
  for (absl::string_view part :
       absl::StrSplit(args.Get("steps", "1,10,50,100"), ',')) {
    double v;
    if (!absl::SimpleAtod(part, &v)) return "--steps takes 1,10,50,100";
    p->add_steps(v);
  }
  std::optional<int64_t> n;
  std::optional<double> v;
  if (!IntegerFlag(args, "min-requests", &n)) {
    return "--min-requests takes a number";
  }
  if (n) p->set_min_requests(*n);
  if (!NumberFlag(args, "min-seconds", &v)) {
    return "--min-seconds takes a number";
  }
  if (v) p->set_min_seconds(*v);
  if (!NumberFlag(args, "max-disagreement", &v)) {
    return "--max-disagreement takes a share, e.g. 0.02";
  }
  if (v) p->set_max_disagreement(*v);
  return "";
}

int Policy(TwinClient& client, const Args& args) {
  if (args.positional.size() < 2) return Usage("policy needs NAME");
  const std::string model = args.positional[1];
  if (!args.Has("pinned") && !args.Has("weights") && !args.Has("shadow") &&
      !args.Has("rollout")) {
    auto p = client.GetPolicy(model);
    if (!p.ok()) return Fail(p.status());
    PrintPolicy(*p);
    return 0;
  }
  v1::SetTrafficPolicyRequest req;
  req.set_model(model);
  req.set_author(args.Get("author"));
  req.set_reason(args.Get("reason"));
  if (!ExpectedVersion(args, &req)) return Usage("--if-version takes a number");
  auto* p = req.mutable_policy();
  if (args.Has("pinned")) {
    p->set_kind("pinned");
    p->set_baseline(args.Get("pinned"));
  } else if (args.Has("rollout")) {
    const std::string error = RolloutFromFlags(args, p);
    if (!error.empty()) return Usage(error);
  } else if (args.Has("shadow")) {
    p->set_kind("shadow");
    p->set_baseline(args.Get("baseline"));
    p->set_candidate(args.Get("shadow"));
    std::optional<double> f;
    if (!NumberFlag(args, "fraction", &f)) {
      return Usage("--fraction takes a number in (0, 1]");
    }
    if (f) p->set_shadow_fraction(*f);
  } else {
    p->set_kind("weighted");
    p->set_baseline(args.Get("baseline"));
    for (absl::string_view part :
         absl::StrSplit(args.Get("weights"), ',', absl::SkipEmpty())) {
      std::vector<std::string> kv = absl::StrSplit(part, '=');
      double w;
      if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &w)) {
        return Usage("--weights takes VARIANT=SHARE,VARIANT=SHARE");
      }
      (*p->mutable_weights())[kv[0]] = w;
    }
  }
  auto set = client.SetPolicy(req);
  if (!set.ok()) return Fail(set.status());
  PrintPolicy(*set);
  return 0;
}

int Promote(TwinClient& client, const Args& args) {
  if (args.positional.size() != 3) return Usage("promote needs NAME VARIANT");
  v1::PromoteRequest req;
  req.set_model(args.positional[1]);
  req.set_variant(args.positional[2]);
  req.set_author(args.Get("author"));
  req.set_reason(args.Get("reason"));
  if (!ExpectedVersion(args, &req)) return Usage("--if-version takes a number");
  auto p = client.Promote(req);
  if (!p.ok()) return Fail(p.status());
  PrintPolicy(*p);
  return 0;
}

int Rollback(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("rollback needs NAME");
  v1::RollbackRequest req;
  req.set_model(args.positional[1]);
  req.set_author(args.Get("author"));
  req.set_reason(args.Get("reason"));
  if (!ExpectedVersion(args, &req)) return Usage("--if-version takes a number");
  auto p = client.Rollback(req);
  if (!p.ok()) return Fail(p.status());
  PrintPolicy(*p);
  return 0;
}

int History(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("history needs NAME");
  auto history = client.PolicyHistory(args.positional[1]);
  if (!history.ok()) return Fail(history.status());
  std::printf("%-5s %-19s %-9s %-16s %-40s %s\n", "ver", "when", "action", "by",
              "policy", "why");
  for (const auto& c : *history) {
    std::string policy = c.policy().kind() + " " + c.policy().baseline();
    for (const auto& [v, w] : c.policy().weights()) {
      absl::StrAppend(&policy, " ", v, "=", w);
    }
    if (!c.policy().candidate().empty()) {
      absl::StrAppend(&policy, " -> ", c.policy().candidate());
    }
    std::printf("%-5llu %-19s %-9s %-16s %-40s %s\n",
                static_cast<unsigned long long>(c.version()),
                Time(c.unix_ms()).c_str(), c.action().c_str(),
                c.actor().c_str(), policy.c_str(), c.reason().c_str());
  }
  return 0;
}

int Compare(TwinClient& client, const Args& args) {
  if (args.positional.size() != 2) return Usage("compare needs NAME");
  auto first = client.GetModelStats(args.positional[1]);
  if (!first.ok()) return Fail(first.status());
  if (!args.Has("watch")) {
    std::fputs(FormatCompare(*first, nullptr).c_str(), stdout);
    return 0;
  }
  std::optional<double> interval;
  std::optional<int64_t> count;
  if (!NumberFlag(args, "interval", &interval)) {
    return Usage("--interval takes seconds");
  }
  if (!IntegerFlag(args, "count", &count)) {
    return Usage("--count takes a number");
  }
  const double seconds = interval.value_or(2);
  v1::ModelStats before = *first;
  for (int64_t i = 0; !count || i < *count; ++i) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
    auto now = client.GetModelStats(args.positional[1]);
    if (!now.ok()) return Fail(now.status());
    std::fputs(FormatCompare(*now, &before).c_str(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    before = *now;
  }
  return 0;
}

}  // namespace twinctl
}  // namespace twinserve
