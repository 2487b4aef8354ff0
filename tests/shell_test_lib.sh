# Sourced by the shell tests (from the runfiles root): a `check` helper that
# counts failures in $fails (and prints $out when one fails), and a real
# twinserve on an ephemeral loopback port with a fresh store, stopped when the
# test exits. Exports TWINSERVE_SERVER; the server's log is $TMP/server.log.
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
fails=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then
    echo "ok   $name"
  else
    echo "FAIL $name"
    fails=$((fails + 1))
    # Most checks grep $out: show what it was.
    [ -n "${out:-}" ] && sed 's/^/     | /' <<<"$out" | head -40
  fi
}

# shellcheck disable=SC2086  # TWINSERVE_FLAGS: extra flags, word-split
server/twinserve --address=127.0.0.1:0 --store="$TMP/store" \
  --port_file="$TMP/port" --metrics_address= --shutdown_grace_ms=0 \
  ${TWINSERVE_FLAGS:-} \
  >"$TMP/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT
for _ in $(seq 200); do [ -s "$TMP/port" ] && break; sleep 0.05; done
export TWINSERVE_SERVER="127.0.0.1:$(cat "$TMP/port")"
