#!/usr/bin/env bash
# Runs the independent Python grpcio client test with Debian's python3 (which
# has python3-grpcio), against stubs generated from our own protos.
set -euo pipefail
cd "${TEST_SRCDIR}/twinserve"
export PYTHONPATH="${PWD}/proto:${PYTHONPATH:-}"
exec /usr/bin/python3 -u tests/python_client_test.py
