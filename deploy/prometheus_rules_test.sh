#!/usr/bin/env bash
# promtool checks the scrape config and the rules, and unit-tests the rules'
# logic on synthetic series.
set -euo pipefail
cd "${TEST_SRCDIR}/twinserve/deploy/prometheus"
promtool check config prometheus.yml
promtool check rules twinserve_rules.yml
promtool test rules twinserve_rules_test.yml
