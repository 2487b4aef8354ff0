#!/usr/bin/env bash
# Runs a Python grpcio test (default: the independent client test) with
# Debian's python3 (which has python3-grpcio), against stubs generated from
# our own protos.
set -euo pipefail
cd "${TEST_SRCDIR}/twinserve"
export PYTHONPATH="${PWD}/proto:${PYTHONPATH:-}"
exec /usr/bin/python3 -u "${1:-tests/python_client_test.py}"
