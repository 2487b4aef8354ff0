#!/usr/bin/env bash
# A twinserve fleet on this machine: a real etcd and N replicas on loopback
# sharing one blob folder (README "Cluster"). Ctrl-C stops everything.
#   bash deploy/local_cluster.sh [REPLICAS]     (default 3)
# Replica i listens on 127.0.0.1:(18000+i) (gRPC) and :(19000+i)
# (/metrics); etcd on 127.0.0.1:23790. Talk to any replica, e.g.
#   bazel-bin/client/twinctl --server=127.0.0.1:18001 list
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-3}"
bash deploy/install.sh
bazel build //server:twinserve //client:twinctl
dir="$(mktemp -d /tmp/twinserve-cluster.XXXXXX)"
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; state kept in $dir"
}
trap stop EXIT INT TERM

etcd --name=local --data-dir="$dir/etcd" \
  --listen-client-urls=http://127.0.0.1:23790 \
  --advertise-client-urls=http://127.0.0.1:23790 \
  --listen-peer-urls=http://127.0.0.1:23800 \
  --initial-advertise-peer-urls=http://127.0.0.1:23800 \
  --initial-cluster=local=http://127.0.0.1:23800 \
  --log-outputs="$dir/etcd.log" --logger=zap &
pids+=($!)
for _ in $(seq 1 100); do
  (echo > /dev/tcp/127.0.0.1/23790) 2>/dev/null && break
  sleep 0.1
done

for i in $(seq 1 "$n"); do
  bazel-bin/server/twinserve \
    --address="127.0.0.1:$((18000 + i))" \
    --metrics_address="127.0.0.1:$((19000 + i))" \
    --store="$dir/replica$i" \
    --cluster_etcd=127.0.0.1:23790 \
    --cluster_blobs="$dir/blobs" \
    --cluster_replica_id="replica$i" \
    > "$dir/replica$i.log" 2>&1 &
  pids+=($!)
done
for i in $(seq 1 "$n"); do
  until bazel-bin/client/twinctl --server="127.0.0.1:$((18000 + i))" health \
      > /dev/null 2>&1; do
    sleep 0.2
  done
  echo "replica$i ready: gRPC 127.0.0.1:$((18000 + i)), metrics" \
    "http://127.0.0.1:$((19000 + i))/metrics, log $dir/replica$i.log"
done
echo "etcd 127.0.0.1:23790 (ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:23790" \
  "get --prefix /twinserve/ --keys-only); blobs $dir/blobs"
echo "Ctrl-C stops the fleet."
wait
