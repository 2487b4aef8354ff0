#!/usr/bin/env bash
# The twinserve demo: installs what is missing, builds, starts the server on
# the default store ($TWINSERVE_HOME/store, default ~/.twinserve/store),
# registers the bundled Fashion-MNIST model, sends test images over the Open
# Inference Protocol and prints the results, then keeps serving until Ctrl-C.
# DEMO_ONCE=1 stops the server after the demo instead (used by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install.sh
bazel build //server:twinserve //client:twinctl //client:demo

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
echo "== 7. live metrics (Prometheus text format) at http://$METRICS/metrics"
curl -sf "http://$METRICS/metrics" |
  grep -E '^twinserve_(requests_total|traffic_share|drift_top1)' | head -12
echo
if [ "${DEMO_ONCE:-0}" = 1 ]; then
  exit 0
fi
echo "twinserve keeps serving on $ADDR (store $STORE), /metrics on $METRICS; try:"
echo "  bazel-bin/client/twinctl --server=$ADDR list"
echo "Ctrl-C to stop."
wait $SERVER
