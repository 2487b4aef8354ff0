"""The Grafana dashboard is valid JSON, and every series it queries is one
twinserve exports or a recording rule defines."""
import json
import re
import sys

dash = json.load(open(sys.argv[1]))
rules = open(sys.argv[2]).read()
known = set(re.findall(r"record: (\S+)", rules))
exported = {
    "twinserve_requests_total", "twinserve_request_duration_seconds",
    "twinserve_queue_duration_seconds", "twinserve_compute_duration_seconds",
    "twinserve_batch_size", "twinserve_inflight_requests",
    "twinserve_queued_requests",
    "twinserve_traffic_share", "twinserve_model_size_bytes",
    "twinserve_policy_version", "twinserve_rollbacks_total",
    "twinserve_rollout_stage", "twinserve_rollout_percent",
    "process_resident_memory_bytes",
}
bad = []
for p in dash["panels"]:
    assert p["title"] and p["targets"], p
    for t in p["targets"]:
        for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", t["expr"]):
            base = re.sub(r"_(sum|count|bucket)$", "", name)
            if name not in known and base not in exported:
                bad.append((p["title"], name))
assert not bad, bad
print(f"dashboard ok: {len(dash['panels'])} panels")
