#!/usr/bin/env bash
# Shadow overhead on the primary's latency with twinbench: the bundled model
# (after the demo: "fashion" with fp32 and int8) at concurrency 1, policy
# pinned to fp32 vs shadow int8 on 100% of requests, alternating rounds;
# prints each round and the medians. Restores a pinned fp32 policy.
#   bash tests/shadow_overhead.sh [HOST:PORT] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
S=${1:-127.0.0.1:8001}; ROUNDS=${2:-9}; SECS=${3:-3}
OUT=$(mktemp -d)
T="bazel-bin/client/twinctl --server=$S"
B="bazel-bin/client/twinbench --server=$S --model=fashion --concurrency=1 --warmup=0.5 --duration=$SECS --progress=false"
for r in $(seq "$ROUNDS"); do
  $T policy fashion --pinned fp32 --reason "shadow overhead bench" >/dev/null
  $B --json="$OUT/pinned$r.json" >/dev/null
  $T policy fashion --shadow int8 --fraction 1 --baseline fp32 \
    --reason "shadow overhead bench" >/dev/null
  $B --json="$OUT/shadow$r.json" >/dev/null
done
$T policy fashion --pinned fp32 --reason "shadow overhead bench done" >/dev/null
/usr/bin/python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
load = lambda k: [json.load(open(f"{out}/{k}{r}.json"))["steps"][0] for r in range(1, n + 1)]
p, s = load("pinned"), load("shadow")
med = lambda v: sorted(v)[len(v) // 2]
for r in range(n):
    print(f"round {r + 1}: p50 pinned {p[r]['p50_us']:.0f} us, shadow {s[r]['p50_us']:.0f} us")
for name, k in (("p50", "p50_us"), ("p90", "p90_us")):
    a, b = med([x[k] for x in p]), med([x[k] for x in s])
    print(f"median {name}: pinned {a:.0f} us, shadow {b:.0f} us: {100 * (b - a) / a:+.1f}%")
d = med([(y["p50_us"] - x["p50_us"]) / x["p50_us"] for x, y in zip(p, s)])
print(f"median of per-round p50 changes: {100 * d:+.1f}%")
PY
