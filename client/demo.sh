#!/usr/bin/env bash
# The twinserve demo: installs what is missing, builds, starts the server on
# the default store ($TWINSERVE_HOME/store, default ~/.twinserve/store),
# registers the bundled Fashion-MNIST model, sends test images over the Open
# Inference Protocol and prints the results, then keeps serving until Ctrl-C.
# DEMO_ONCE=1 stops the server after the demo instead (used by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install.sh
bazel build //server:twinserve //client:twinctl //client:demo //client:twinbench

ADDR="127.0.0.1:${TWINSERVE_PORT:-8001}"
METRICS="127.0.0.1:${TWINSERVE_METRICS_PORT:-8002}"
STORE="${TWINSERVE_HOME:-$HOME/.twinserve}/store"
bazel-bin/server/twinserve --address="$ADDR" --metrics_address="$METRICS" \
  --store="$STORE" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT

bazel-bin/client/demo --server="$ADDR"

echo
echo "== 6. the model as the operator sees it"
bazel-bin/client/twinctl --server="$ADDR" show fashion
echo
bazel-bin/client/twinctl --server="$ADDR" history fashion
echo
echo "== 7. load test with twinbench: FP32 vs INT8 side by side, INT8 also"
echo "   with dynamic batching (up to 8 rows, no added queue delay)"
bench() {
  bazel-bin/client/twinbench --server="$ADDR" --model=fashion --version="$1" \
    --concurrency=1,8 --warmup=0.5 --duration=2 --progress=false | tail -n +2
}
bench fp32
bench int8 | tail -n 2
bazel-bin/client/twinctl --server="$ADDR" batching fashion --variant int8 \
  --max-batch 8 --batch-delay-us 0 >/dev/null
bench int8 | tail -n 2
bazel-bin/client/twinctl --server="$ADDR" batching fashion --variant int8 \
  --clear >/dev/null
echo
echo "== 8. live metrics (Prometheus text format) at http://$METRICS/metrics"
curl -sf "http://$METRICS/metrics" |
  grep -E '^twinserve_(requests_total|traffic_share|drift_top1)' | head -12
echo
echo "== 9. quantize at registration, in one call: the model, 512 calibration"
echo "   images and the 10,000 test images in one RegisterModel stream; the"
echo "   server answers when FP32 serves, quantizes (recipe search), and starts"
echo "   a guarded rollout of the INT8 variant in the write that publishes it"
DATA=/usr/share/datasets/fashion-mnist
bazel-bin/client/twinctl --server="$ADDR" register fashion-1call \
  tests/fixtures/fashion_cnn.pt --replace \
  --input image:FP32:-1,1,28,28 --output logits:FP32:-1,10 \
  --calibrate-idx "$DATA/train-images-idx3-ubyte.gz" \
  --calibrate-labels "$DATA/train-labels-idx1-ubyte.gz" --limit 512 \
  --eval-idx "$DATA/t10k-images-idx3-ubyte.gz" \
  --eval-labels "$DATA/t10k-labels-idx1-ubyte.gz" \
  --quantize --rollout --steps 10,50,100 --min-requests 100 --wait
bazel-bin/client/twinctl --server="$ADDR" report fashion-1call --brief
bazel-bin/client/twinctl --server="$ADDR" history fashion-1call | tail -n 2
echo
if [ "${DEMO_ONCE:-0}" = 1 ]; then
  exit 0
fi
echo "twinserve keeps serving on $ADDR (store $STORE), /metrics on $METRICS; try:"
echo "  bazel-bin/client/twinctl --server=$ADDR list"
echo "Ctrl-C to stop."
wait $SERVER
