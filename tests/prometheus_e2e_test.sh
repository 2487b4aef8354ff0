#!/usr/bin/env bash
# A real Prometheus (Debian package) on loopback scrapes a real twinserve
# under load; the test reads Prometheus's HTTP API and checks that the
# per-variant request, latency, traffic-share series and the recording rules
# exist with plausible values.
set -uo pipefail
cd "${TEST_SRCDIR}/twinserve"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
fail() { echo "FAIL: $*"; exit 1; }

server/twinserve --address=127.0.0.1:0 --store="$TMP/store" \
  --port_file="$TMP/port" --metrics_address=127.0.0.1:0 \
  --metrics_port_file="$TMP/metrics_port" >"$TMP/server.log" 2>&1 &
SERVER=$!
PROM=""
trap 'kill $SERVER $PROM 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 400); do [ -s "$TMP/port" ] && break; sleep 0.05; done
[ -s "$TMP/port" ] || fail "twinserve did not start: $(cat "$TMP/server.log")"
export TWINSERVE_SERVER="127.0.0.1:$(cat "$TMP/port")"
METRICS="127.0.0.1:$(cat "$TMP/metrics_port")"
T=client/twinctl

$T register m tests/fixtures/add_sub.pt --input a:FP32:-1,4 --input b:FP32:-1,4 \
  --output sum:FP32:-1,4 --output diff:FP32:-1,4 >/dev/null || fail register
$T register-variant m alt tests/fixtures/add_sub.pt >/dev/null || fail variant
$T policy m --weights fp32=1,alt=1 --reason "e2e" >/dev/null || fail policy
/usr/bin/python3 -c "
import numpy as np
np.save('$TMP/a.npy', np.ones((2, 4), np.float32))"

# Prometheus scraping twinserve every second, with our rules.
PROM_PORT=$(free_port)
sed -e "s/localhost:8002/$METRICS/" -e "s/scrape_interval: 5s/scrape_interval: 1s/" \
  -e "s/evaluation_interval: 5s/evaluation_interval: 1s/" \
  deploy/prometheus/prometheus.yml > "$TMP/prometheus.yml"
cp deploy/prometheus/twinserve_rules.yml "$TMP/"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 &
PROM=$!

# Load: 40 requests over ~8 s through the policy (both variants), plus errors.
for i in $(seq 40); do
  $T infer m --input a="$TMP/a.npy" --input b="$TMP/a.npy" >/dev/null || fail infer
  sleep 0.2
done
$T infer m --input a="$TMP/a.npy" >/dev/null 2>&1  # missing input: an error
sleep 4

query() {  # query PROMQL -> prints "labels value" lines
  curl -sfG "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    /usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print(",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"), r["value"][1])'
}
check() {  # check NAME PROMQL PYTHON-CONDITION-ON-v
  local out
  out=$(query "$2")
  echo "$1: $out"
  [ -n "$out" ] || fail "$1: no series"
  echo "$out" | /usr/bin/python3 -c "
import sys
for line in sys.stdin:
    v = float(line.split()[-1])
    assert $3, line" || fail "$1: implausible value"
}

check "up" 'up{job="twinserve"}' 'v == 1'
check "fp32 requests" 'twinserve_requests_total{model="m",variant="fp32",code="OK"}' 'v >= 5'
check "alt requests" 'twinserve_requests_total{model="m",variant="alt",code="OK"}' 'v >= 5'
check "all OK requests" 'sum(twinserve_requests_total{model="m",code="OK"})' 'v == 40'
check "failures by code" 'twinserve_requests_total{model="m",code="INVALID_ARGUMENT"}' 'v == 1'
check "p50 per variant (rule)" 'twinserve:request_duration_seconds:p50{model="m"}' '0 < v < 0.5'
check "traffic share" 'twinserve_traffic_share{model="m"}' 'v == 0.5'
check "model size" 'twinserve_model_size_bytes{model="m"}' 'v > 1000'
check "resident memory" 'process_resident_memory_bytes{job="twinserve"}' 'v > 1e7'
check "queued requests gauge (idle)" 'twinserve_queued_requests{model="m",variant="fp32"}' 'v == 0'
check "executed batch size" 'twinserve_batch_size_count{model="m",variant="fp32"}' 'v >= 5'
check "policy changes" 'twinserve_policy_changes_total{model="m",action="set"}' 'v == 1'
echo "prometheus_e2e_test: ok"
