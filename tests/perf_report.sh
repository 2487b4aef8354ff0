#!/usr/bin/env bash
# The Performance figures of the README, measured side by side in one run on
# this machine: twinserve, twinbench and raw LibTorch. Runs that are compared
# alternate (A B A B ...) so that both see the same machine; each figure is
# the median of $REPS runs. Not part of CI (it takes about 15 minutes).
#   bash tests/perf_report.sh            # REPS=5 by default
# Prints each measurement as it goes and a summary with the targets at the
# end; raw outputs stay in $OUT (default /tmp/twinserve-perf).
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
start() {  # start STORE [FLAGS...]: a server in the background at $S
  local store=$1
  shift
  rm -f "$OUT/port"
  $BIN/server/twinserve --address=127.0.0.1:0 --store="$store" \
    --port_file="$OUT/port" --metrics_address=127.0.0.1:0 "$@" \
    >>"$OUT/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do [ -s "$OUT/port" ] && break; sleep 0.1; done
  S="127.0.0.1:$(cat "$OUT/port")"
  until $BIN/client/twinctl --server="$S" health >/dev/null 2>&1; do sleep 0.2; done
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
trap stop EXIT
T() { $BIN/client/twinctl --server="$S" "$@"; }
B() { $BIN/client/twinbench --server="$S" --progress=false "$@"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
anon_mb() { awk '/RssAnon/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }

FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
  grep -E '^(avx2|avx512f|avx512_vnni|avx512_bf16|amx_int8|amx_bf16)$' | tr '\n' ' ')
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; flags: $FLAGS; $(date -u)" |
  tee "$OUT/machine.txt"
start "$OUT/store"

echo "== 1. request path in process, tiny model (784 -> 10 linear)"
T register lin "$FIX/linear.pt" --input x:FP32:-1,784 --output y:FP32:-1,10 >/dev/null
(cd $BIN/server/grpc/request_path_benchmark.runfiles/twinserve &&
  ../../request_path_benchmark --benchmark_repetitions="$REPS" \
    --benchmark_min_time=0.5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json 2>/dev/null) >"$OUT/request_path.json"
$PY - "$OUT/request_path.json" <<'PY' | tee "$OUT/raw.txt"
import json, sys
b = {x["name"]: x for x in json.load(open(sys.argv[1]))["benchmarks"]}
g = lambda n: b[n + "/real_time_median"]
for n in ("BM_RawLibTorch", "BM_Runner", "BM_RequestPath/routed", "BM_RequestPath/pinned"):
    x = g(n)
    print(f"{n}: {x['real_time'] / 1000:.1f} us median, {x['allocs/req']:.0f} allocations/request")
PY

echo "== 2. tiny model, concurrency 1: ModelInfer vs an empty ServerLive, alternating"
for i in $(seq "$REPS"); do
  B --model=lin --concurrency=1 --warmup=1 --duration=3 --server_timings \
    --json="$OUT/t2_infer_$i.json" | tail -2
  B --model=lin --ping --concurrency=1 --warmup=1 --duration=3 \
    --json="$OUT/t2_ping_$i.json" | tail -1
done

echo "== 3. tiny model, concurrency 32: unbatched vs batched (max 32, delay 100 us), alternating"
for i in $(seq "$REPS"); do
  T batching lin --off >/dev/null
  B --model=lin --concurrency=32 --warmup=1 --duration=3 --json="$OUT/t3_off_$i.json" | tail -1
  T batching lin --max-batch 32 --batch-delay-us 100 >/dev/null
  B --model=lin --concurrency=32 --warmup=1 --duration=3 --json="$OUT/t3_on_$i.json" | tail -1
done

echo "== ResNet-18: register, calibrate (32 random images), quantize (static INT8)"
T register resnet "$FIX/resnet18.pt" --input image:FP32:-1,3,224,224 \
  --output logits:FP32:-1,1000 >/dev/null
$PY -c "
import numpy as np; np.save('$OUT/calib.npy', np.random.rand(32, 3, 224, 224).astype(np.float32))"
T calibrate resnet --set calib --input "$OUT/calib.npy" >/dev/null
T quantize resnet >"$OUT/quantize.txt"
T show resnet >"$OUT/resnet.txt"

echo "== 4. ResNet-18 batch 1, concurrency 1: INT8/FP32 through the server and raw"
B --model=resnet --version=fp32 --concurrency=1 --warmup=1 --duration=5 --repeat="$REPS" \
  --json="$OUT/t4_fp32.json" | tail -1
B --model=resnet --version=int8 --concurrency=1 --warmup=1 --duration=5 --repeat="$REPS" \
  --json="$OUT/t4_int8.json" | tail -1
read -r FP32_FILE INT8_FILE < <($PY -c "
import json; m = json.load(open('$OUT/store/models/resnet/manifest.json'))['variants']
print('$OUT/store/models/resnet/' + m['fp32']['file'], '$OUT/store/models/resnet/' + m['int8']['file'])")
# Per-image cost at batch 1 and batch 8: what batching can gain here.
$BIN/tests/raw_latency --a="$FP32_FILE" --b="$INT8_FILE" --runs=$((REPS * 16)) --batch=8 |
  tee "$OUT/t4_raw.txt"

echo "== 5. ResNet-18, concurrency 8: unbatched vs batched (max 8, delay 2 ms), alternating"
for i in $(seq "$REPS"); do
  for v in int8 fp32; do
    T batching resnet --off >/dev/null
    B --model=resnet --version=$v --concurrency=8 --warmup=2 --duration=5 \
      --json="$OUT/t5_${v}_off_$i.json" | tail -1
    T batching resnet --max-batch 8 --batch-delay-us 2000 >/dev/null
    B --model=resnet --version=$v --concurrency=8 --warmup=2 --duration=5 \
      --json="$OUT/t5_${v}_on_$i.json" | tail -1
  done
done

echo "== 6. ResNet-18 INT8, concurrency 8: static configurations (max batch x spread)"
# The sweep the cost model is judged against: every max batch with rows
# kept in one execution (fixed) or spread over every free worker (spread).
for i in $(seq "$REPS"); do
  for split in fixed spread; do
    stop; start "$OUT/store" --batch_policy=$split
    for mb in 2 4 8; do
      T batching resnet --max-batch $mb --batch-delay-us 2000 >/dev/null
      B --model=resnet --version=int8 --concurrency=8 --warmup=2 --duration=5 \
        --json="$OUT/t6_${split}_${mb}_$i.json" | tail -1
    done
  done
done
stop; start "$OUT/store"

echo "== 7. resident memory: FP32 + INT8 loaded vs FP32 alone (fresh processes)"
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

$PY - "$OUT" "$REPS" "$RSS_BOTH" "$RSS_FP32" "$WEIGHTS_MB" <<'PY' | tee "$OUT/summary.txt"
import json, re, statistics, sys
out, reps = sys.argv[1], int(sys.argv[2])
rss_both, rss_fp32, weights = map(float, sys.argv[3:])
step = lambda f: json.load(open(f"{out}/{f}.json"))["steps"][0]
def med(prefix, key):
    return statistics.median(step(f"{prefix}_{i}")[key] for i in range(1, reps + 1))
def ok(cond):
    return "MET" if cond else "NOT MET"
print("\n== Summary: " + open(f"{out}/machine.txt").read().strip())
print(f"(medians of {reps} runs; compared runs alternated)")
p50, ping = med("t2_infer", "p50_us"), med("t2_ping", "p50_us")
stages = [med("t2_infer", k) for k in ("stage_decode_us", "stage_engine_us", "stage_encode_us")]
print(f"1. tiny model, concurrency 1: ModelInfer p50 {p50:.0f} us, empty ServerLive p50 "
      f"{ping:.0f} us: +{p50 - ping:.0f} us (target <= +20: {ok(p50 - ping <= 20)}); "
      f"in the handler: decode {stages[0]:.1f}, engine {stages[1]:.1f}, encode {stages[2]:.1f} us")
on, off = med("t3_on", "infer_per_s"), med("t3_off", "infer_per_s")
print(f"2. tiny model, concurrency 32: batched {on:.0f}/s (avg batch "
      f"{med('t3_on', 'server_batch'):.1f}) vs unbatched {off:.0f}/s = {on / off:.2f}x "
      f"(target >= 0.97: {ok(on / off >= 0.97)})")
f1, i1 = step("t4_fp32"), step("t4_int8")
raw = open(f"{out}/t4_raw.txt").read()
raw_ratio = float(re.search(r"a/b ([\d.]+)x", raw).group(1))
fp32_b8 = float(re.search(r"a_b1/b8 ([\d.]+)x", raw).group(1))
int8_b8 = float(re.search(r"b_b1/b8 ([\d.]+)x", raw).group(1))
e2e = f1["p50_us"] / i1["p50_us"]
print(f"3. ResNet-18 batch 1: FP32/INT8 p50 through the server {f1['p50_us']/1000:.2f}/"
      f"{i1['p50_us']/1000:.2f} ms = {e2e:.2f}x; raw LibTorch {raw_ratio:.2f}x")
print(f"4. raw LibTorch per-image cost, batch 1 / batch 8: INT8 {int8_b8:.2f}x, FP32 {fp32_b8:.2f}x")
for v, raw_b8 in (("int8", int8_b8), ("fp32", fp32_b8)):
    on, off = med(f"t5_{v}_on", "infer_per_s"), med(f"t5_{v}_off", "infer_per_s")
    need = 1.3 if raw_b8 >= 1.4 else 0.97
    print(f"5. ResNet-18 {v.upper()}, concurrency 8: batched {on:.1f}/s (avg batch "
          f"{med(f't5_{v}_on', 'server_batch'):.1f}) vs unbatched {off:.1f}/s = {on / off:.2f}x "
          f"(target >= {need} since raw b1/b8 is {raw_b8:.2f}x: {ok(on / off >= need)})")
static = {f"{s} max {mb}": med(f"t6_{s}_{mb}", "infer_per_s")
          for s in ("fixed", "spread") for mb in (2, 4, 8)}
best = max(static, key=static.get)
auto = med("t5_int8_on", "infer_per_s")
print("6. ResNet-18 INT8, concurrency 8, static configurations: " +
      ", ".join(f"{k} {v:.1f}/s" for k, v in static.items()))
print(f"   cost model {auto:.1f}/s = {auto / static[best]:.2f} of the best static ({best}) "
      f"(target >= 0.90: {ok(auto / static[best] >= 0.90)})")
print(f"7. resident memory: FP32 alone {rss_fp32:.0f} MB, FP32 + INT8 {rss_both:.0f} MB: INT8 adds "
      f"{rss_both - rss_fp32:.0f} MB = {100 * (rss_both - rss_fp32) / weights:.0f}% of FP32's "
      f"{weights:.1f} MB of weights")
PY
