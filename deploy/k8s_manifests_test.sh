#!/usr/bin/env bash
set -euo pipefail
exec /usr/bin/python3 -u "${TEST_SRCDIR}/twinserve/deploy/k8s_manifests_test.py"
