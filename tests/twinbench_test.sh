#!/usr/bin/env bash
# twinbench against a real twinserve: a closed-loop sweep, an open-loop rate,
# the ping floor, .npy inputs, batching's effect on the server split, CSV and
# JSON output, and clear failures.
set -uo pipefail
cd "${TEST_SRCDIR}/twinserve"
# Batching as configured (Triton's way), so that the tiny model batches: the
# adaptive default would not make it wait for company (batcher.h).
TWINSERVE_FLAGS="--batch_policy=fixed --shared_memory"
source tests/shell_test_lib.sh
B="client/twinbench --server=$TWINSERVE_SERVER --progress=false"

client/twinctl register lin tests/fixtures/linear.pt \
  --input x:FP32:-1,784 --output y:FP32:-1,10 >/dev/null
check "registered" test $? -eq 0

out=$($B --model=lin --concurrency=1,4 --warmup=0.3 --duration=1 \
  --csv="$TMP/sweep.csv" --json="$TMP/sweep.json" 2>&1); rc=$?
echo "$out"
check "sweep exits 0" test $rc -eq 0
check "sweep prints one row per level" test "$(grep -cE '^ +(1|4) +-' <<<"$out")" -eq 2
check "CSV and JSON agree and are sane" /usr/bin/python3 - "$TMP" <<'PY'
import csv, json, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(d + "/sweep.csv")))
steps = json.load(open(d + "/sweep.json"))["steps"]
assert [int(r["concurrency"]) for r in rows] == [1, 4], rows
assert len(steps) == 2
for r, s in zip(rows, steps):
    assert int(r["requests"]) > 50 and int(r["errors"]) == 0, r
    assert abs(float(r["req_per_s"]) - s["req_per_s"]) < 1e-3 * s["req_per_s"]
    assert 0 < s["p50_us"] <= s["p90_us"] <= s["p99_us"] <= s["max_us"], s
    assert s["server_compute_us"] > 0 and s["server_batch"] == 1, s
    # The engine's whole request holds its queue and compute time.
    assert s["server_request_us"] >= s["server_queue_us"] + s["server_compute_us"], s
    assert abs(float(r["server_request_us"]) - s["server_request_us"]) < 1e-3 * s["server_request_us"], (r, s)
PY

# Open loop: the achieved rate follows the target.
$B --model=lin --rate=200 --concurrency=64 --warmup=0.3 --duration=2 \
  --json="$TMP/rate.json" >/dev/null 2>&1
check "open loop holds 200 req/s" /usr/bin/python3 -c "
import json; s = json.load(open('$TMP/rate.json'))['steps'][0]
assert 170 < s['req_per_s'] < 230 and s['rate'] == 200, s"

out=$($B --model=lin --ping --concurrency=1 --warmup=0.2 --duration=0.5 2>&1)
check "ping mode measures the empty-call floor" grep -qE '^ +1 +- +[0-9]{3,}' <<<"$out"

# With batching on and 16 clients the server reports batches > 1.
client/twinctl batching lin --max-batch 16 --batch-delay-us 2000 >/dev/null
$B --model=lin --concurrency=16 --warmup=0.3 --duration=1 \
  --json="$TMP/batched.json" >/dev/null 2>&1
check "batching shows in the server split" /usr/bin/python3 -c "
import json; s = json.load(open('$TMP/batched.json'))['steps'][0]
assert s['server_batch'] > 1.5 and s['errors'] == 0, s"

# Inputs from .npy, several rows per request.
/usr/bin/python3 -c "
import numpy as np; np.save('$TMP/x.npy', np.random.rand(64, 784).astype(np.float32))"
$B --model=lin --input="x=$TMP/x.npy" --batch=4 --concurrency=2 --warmup=0.2 \
  --duration=0.5 --json="$TMP/npy.json" >/dev/null 2>&1
check "npy inputs, 4 rows per request" /usr/bin/python3 -c "
import json; d = json.load(open('$TMP/npy.json')); s = d['steps'][0]
assert d['batch'] == 4 and s['errors'] == 0
assert abs(s['infer_per_s'] - 4 * s['req_per_s']) < 1e-6 * s['infer_per_s'], s"

# Inputs through system shared memory: the server reads them in place.
$B --model=lin --input="x=$TMP/x.npy" --batch=4 --shared_memory \
  --concurrency=2 --warmup=0.2 --duration=0.5 --json="$TMP/shm.json" >/dev/null 2>&1
check "shared memory inputs" /usr/bin/python3 -c "
import json; s = json.load(open('$TMP/shm.json'))['steps'][0]
assert s['requests'] > 20 and s['errors'] == 0, s"
check "and their shm objects are removed afterwards" \
  test "$(ls /dev/shm | grep -c "^twinserve_bench_")" -eq 0

out=$($B --model=ghost --concurrency=1 --duration=0.2 2>&1); rc=$?
check "unknown model fails with a message" test $rc -eq 1
check "names the model" grep -q "ModelMetadata(ghost)" <<<"$out"
out=$($B --model=lin --concurrency=0 2>&1); rc=$?
check "bad concurrency is refused" test $rc -eq 1

echo "$fails failed"
exit $((fails > 0))
