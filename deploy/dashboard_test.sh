#!/usr/bin/env bash
set -euo pipefail
cd "${TEST_SRCDIR}/twinserve/deploy"
exec /usr/bin/python3 dashboard_test.py grafana/twinserve_dashboard.json \
  prometheus/twinserve_rules.yml
