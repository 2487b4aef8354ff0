#!/usr/bin/env bash
# The Performance figures of the README, measured side by side in one run on
# this machine: twinserve, twinbench and raw LibTorch, each figure the median
# of $REPS runs. Not part of CI (it takes about 10 minutes).
#   bash tests/perf_report.sh            # REPS=5 by default
# Prints each measurement as it goes and a summary at the end; raw outputs
# stay in $OUT (default /tmp/twinserve-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
OUT=${OUT:-/tmp/twinserve-perf}
rm -rf "$OUT" && mkdir -p "$OUT"
# .bazelrc builds with -O2: the same binaries CI tests.
bazel build //server:twinserve //client:twinctl //client:twinbench \
  //tests:raw_latency //tests/fixtures:models //server/grpc:request_path_benchmark
BIN=bazel-bin
FIX=$BIN/tests/fixtures
PY=/usr/bin/python3

PID=
start() {  # start STORE: a server in the background, $S set to its address
  rm -f "$OUT/port"
  $BIN/server/twinserve --address=127.0.0.1:0 --store="$1" \
    --port_file="$OUT/port" --metrics_address=127.0.0.1:0 \
    >>"$OUT/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do [ -s "$OUT/port" ] && break; sleep 0.1; done
  S="127.0.0.1:$(cat "$OUT/port")"
  until $BIN/client/twinctl --server="$S" health >/dev/null 2>&1; do sleep 0.2; done
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
trap stop EXIT
T() { $BIN/client/twinctl --server="$S" "$@"; }
B() { $BIN/client/twinbench --server="$S" --progress=false --repeat="$REPS" "$@"; }
field() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'][0][sys.argv[2]])" "$1" "$2"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
anon_mb() { awk '/RssAnon/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u)"
start "$OUT/store"

echo "== 1. server overhead, tiny model (784 -> 10 linear), concurrency 1"
T register lin "$FIX/linear.pt" --input x:FP32:-1,784 --output y:FP32:-1,10 >/dev/null
(cd $BIN/server/grpc/request_path_benchmark.runfiles/twinserve &&
  ../../request_path_benchmark --benchmark_repetitions="$REPS" \
    --benchmark_min_time=0.5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json 2>/dev/null) >"$OUT/request_path.json"
$PY - "$OUT/request_path.json" <<'PY' | tee "$OUT/raw.txt"
import json, sys
b = {x["name"]: x for x in json.load(open(sys.argv[1]))["benchmarks"]}
g = lambda n: b[n + "/real_time_median"]
for n in ("BM_RawLibTorch", "BM_Runner", "BM_RequestPath/routed_with_metrics",
          "BM_RequestPath/pinned_no_metrics"):
    x = g(n)
    print(f"{n}: {x['real_time'] / 1000:.1f} us median, {x['allocs/req']:.0f} allocations/request")
print(f"RAW_US={g('BM_RawLibTorch')['real_time'] / 1000:.1f}")
PY
RAW_US=$(sed -n 's/^RAW_US=//p' "$OUT/raw.txt")
B --model=lin --concurrency=1 --warmup=1 --duration=3 --json="$OUT/t1.json"
B --model=lin --ping --concurrency=1 --warmup=1 --duration=3 --json="$OUT/t1_ping.json"
P50=$(field "$OUT/t1.json" p50_us); PING=$(field "$OUT/t1_ping.json" p50_us)

echo "== 2. tiny model throughput at concurrency 32"
B --model=lin --concurrency=32 --warmup=1 --duration=3 --json="$OUT/t2_off.json"
T batching lin --max-batch 32 --batch-delay-us 100 >/dev/null
B --model=lin --concurrency=32 --warmup=1 --duration=3 --json="$OUT/t2_on.json"

echo "== ResNet-18: register, calibrate (32 random images), quantize (static INT8)"
T register resnet "$FIX/resnet18.pt" --input image:FP32:-1,3,224,224 \
  --output logits:FP32:-1,1000 >/dev/null
$PY -c "
import numpy as np; np.save('$OUT/calib.npy', np.random.rand(32, 3, 224, 224).astype(np.float32))"
T calibrate resnet --set calib --input "$OUT/calib.npy" >/dev/null
T quantize resnet >"$OUT/quantize.txt"
T show resnet >"$OUT/resnet.txt"

echo "== 4. INT8/FP32 latency ratio at batch 1, concurrency 1"
B --model=resnet --version=fp32 --concurrency=1 --warmup=1 --duration=5 --json="$OUT/t4_fp32.json"
B --model=resnet --version=int8 --concurrency=1 --warmup=1 --duration=5 --json="$OUT/t4_int8.json"
read -r FP32_FILE INT8_FILE < <($PY -c "
import json; m = json.load(open('$OUT/store/models/resnet/manifest.json'))['variants']
print('$OUT/store/models/resnet/' + m['fp32']['file'], '$OUT/store/models/resnet/' + m['int8']['file'])")
$BIN/tests/raw_latency --a="$FP32_FILE" --b="$INT8_FILE" --runs=$((REPS * 20)) | tee "$OUT/t4_raw.txt"

echo "== 3. ResNet-18 at concurrency 8: INT8 unbatched, INT8 batched, FP32 batched"
B --model=resnet --version=int8 --concurrency=8 --warmup=2 --duration=6 --json="$OUT/t3_int8_off.json"
T batching resnet --max-batch 8 --batch-delay-us 2000 >/dev/null
B --model=resnet --version=int8 --concurrency=8 --warmup=2 --duration=6 --json="$OUT/t3_int8_on.json"
B --model=resnet --version=fp32 --concurrency=8 --warmup=2 --duration=6 --json="$OUT/t3_fp32_on.json"

echo "== 5. resident memory: FP32 + INT8 loaded vs FP32 alone (fresh processes)"
# Same settings in both processes: batched warm-up would hold larger
# activation buffers.
T batching resnet --off >/dev/null
warm() { for v in "$@"; do $BIN/client/twinbench --server="$S" --model=resnet \
  --version="$v" --concurrency=2 --warmup=0 --duration=2 --progress=false >/dev/null; done; }
stop; start "$OUT/store"; warm fp32 int8; RSS_BOTH=$(rss_mb); ANON_BOTH=$(anon_mb)
mkdir -p "$OUT/store_fp32"; stop; start "$OUT/store_fp32"
T register resnet "$FIX/resnet18.pt" --input image:FP32:-1,3,224,224 \
  --output logits:FP32:-1,1000 >/dev/null
stop; start "$OUT/store_fp32"; warm fp32; RSS_FP32=$(rss_mb); ANON_FP32=$(anon_mb)
echo "anonymous memory (heap): FP32 alone $ANON_FP32 MB, FP32 + INT8 $ANON_BOTH MB"
WEIGHTS_MB=$($PY -c "
import re; t = open('$OUT/resnet.txt').read()
print('%.1f' % (int(re.search(r'^fp32 +READY +\d+ +(\d+)', t, re.M).group(1)) / 2**20))")

$PY - "$OUT" "$RAW_US" "$P50" "$PING" "$RSS_BOTH" "$RSS_FP32" "$WEIGHTS_MB" <<'PY'
import json, re, sys
out, raw, p50, ping, rss_both, rss_fp32, weights = sys.argv[1], *map(float, sys.argv[2:])
s = lambda f: json.load(open(f"{out}/{f}.json"))["steps"][0]
print("\n== Summary (medians of the runs above)")
print(f"1. server overhead: p50 {p50:.0f} us end to end - raw forward {raw:.1f} us = "
      f"{p50 - raw:.0f} us (target <= 100); an empty gRPC call through the same "
      f"server: p50 {ping:.0f} us")
on, off = s("t2_on"), s("t2_off")
print(f"2. tiny model, concurrency 32: {on['infer_per_s']:.0f} inferences/s with batching "
      f"(avg batch {on['server_batch']:.1f}), {off['infer_per_s']:.0f} without (target >= 20000)")
i_off, i_on, f_on = s("t3_int8_off"), s("t3_int8_on"), s("t3_fp32_on")
print(f"3. ResNet-18, concurrency 8: INT8 batched {i_on['infer_per_s']:.1f}/s vs unbatched "
      f"{i_off['infer_per_s']:.1f}/s = {i_on['infer_per_s'] / i_off['infer_per_s']:.2f}x (target >= 1.3); "
      f"vs FP32 batched {f_on['infer_per_s']:.1f}/s = {i_on['infer_per_s'] / f_on['infer_per_s']:.2f}x (target >= 3)")
f1, i1 = s("t4_fp32"), s("t4_int8")
raw_ratio = float(re.search(r"a/b ([\d.]+)x", open(f"{out}/t4_raw.txt").read()).group(1))
e2e = f1["p50_us"] / i1["p50_us"]
print(f"4. ResNet-18 batch 1: FP32/INT8 p50 through the server {f1['p50_us']/1000:.2f}/{i1['p50_us']/1000:.2f} ms "
      f"= {e2e:.2f}x; raw LibTorch {raw_ratio:.2f}x; {100 * e2e / raw_ratio:.0f}% of raw (target >= 90%)")
print(f"5. resident memory: FP32 alone {rss_fp32:.0f} MB, FP32 + INT8 {rss_both:.0f} MB: INT8 adds "
      f"{rss_both - rss_fp32:.0f} MB = {100 * (rss_both - rss_fp32) / weights:.0f}% of FP32's "
      f"{weights:.1f} MB of weights (target <= 30%)")
PY
