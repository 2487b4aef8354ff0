#!/usr/bin/env bash
# Installs every build, test and run dependency of twinserve on Debian 12.
# Idempotent: packages already present are left alone, so a second run is fast.
# Must run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # Build
  bazel-bootstrap bazel-rules-java build-essential clang clang-format git
  libclang-rt-14-dev
  openssl
  # Libraries (headers + shared objects)
  libtorch-dev libgrpc++-dev protobuf-compiler protobuf-compiler-grpc
  libprotobuf-dev libabsl-dev prometheus-cpp-dev googletest libgtest-dev
  libgmock-dev libbenchmark-dev grpc-proto nlohmann-json3-dev zlib1g-dev
  libssl-dev
  # A fair FP32 baseline: OpenBLAS behind libblas.so.3.
  libopenblas0-pthread
  # Fixtures, client-compatibility tests, metrics tests
  python3 python3-torch python3-torchvision python3-grpcio python3-protobuf
  python3-numpy python3-yaml dataset-fashion-mnist prometheus curl
  # Cluster mode: etcd's v3 API protos (built into the server) and a real
  # etcd for the cluster tests and the local-cluster script.
  golang-etcd-server-dev etcd-server etcd-client
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${#missing[@]} missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# OpenBLAS must be what libblas.so.3 resolves to, or LibTorch's FP32 baseline
# runs on the reference BLAS and every INT8 speedup we report is inflated.
blas=$(ls /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 2>/dev/null || true)
if [ -n "$blas" ]; then
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null
fi
echo "install.sh: dependencies present"
