#!/usr/bin/env bash
# TLS and mutual TLS on the gRPC port, end to end with real certificates
# (openssl): twinctl and twinbench connect with --tls_* flags; plain, no
# client certificate and a certificate from another CA are refused; the
# client certificate's common name is the principal in the audit log; a
# renewed server certificate is served after SIGHUP; mutual TLS alone lets
# the server listen beyond loopback, server-only TLS does not.
set -uo pipefail
cd "${TEST_SRCDIR}/twinserve"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
T=client/twinctl
fails=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else
    echo "FAIL $name"; fails=$((fails + 1))
    [ -n "${out:-}" ] && sed 's/^/     | /' <<<"$out" | head -20
  fi
}

# A CA, a server certificate for 127.0.0.1, a client "alice", and a client
# from a CA the server does not trust.
C="$TMP/certs"; mkdir -p "$C"
ca() {  # ca NAME
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
    -keyout "$C/$1.key" -out "$C/$1.pem" 2>/dev/null
}
leaf() {  # leaf NAME CA [SAN]
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$C/$1.key" \
    -out "$C/$1.csr" 2>/dev/null
  local ext="$C/$1.ext"
  if [ -n "${3:-}" ]; then echo "subjectAltName=$3" >"$ext"; else : >"$ext"; fi
  openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.pem" -CAkey "$C/$2.key" \
    -CAcreateserial -days 2 -extfile "$ext" -out "$C/$1.pem" 2>/dev/null
}
ca ca; ca rogue_ca
leaf server ca "IP:127.0.0.1,DNS:localhost"
leaf renewed ca "IP:127.0.0.1,DNS:localhost"
leaf alice ca
leaf mallory rogue_ca
cp "$C/server.pem" "$C/live.pem"; cp "$C/server.key" "$C/live.key"

start() {  # start DIR FLAGS...: sets PID and PORT
  local dir=$1; shift
  mkdir -p "$dir"
  server/twinserve --store="$dir/store" --port_file="$dir/port" \
    --metrics_address= --shutdown_grace_ms=0 "$@" >"$dir/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
  PORT=$(cat "$dir/port" 2>/dev/null)
}

start "$TMP/m" --address=127.0.0.1:0 --tls_cert="$C/live.pem" \
  --tls_key="$C/live.key" --tls_client_ca="$C/ca.pem"
S="--server=127.0.0.1:$PORT"
ALICE="--tls_ca=$C/ca.pem --tls_cert=$C/alice.pem --tls_key=$C/alice.key"

# shellcheck disable=SC2086
out=$($T health $S $ALICE 2>&1)
check "mutual TLS: twinctl with a client certificate" grep -q "SERVING" <<<"$out"
out=$($T health $S 2>&1)
check "plain text is refused" test $? -ne 0
out=$($T health $S --tls_ca="$C/ca.pem" 2>&1)
check "TLS without a client certificate is refused" test $? -ne 0
out=$($T health $S --tls_ca="$C/ca.pem" --tls_cert="$C/mallory.pem" \
  --tls_key="$C/mallory.key" 2>&1)
check "a certificate from another CA is refused" test $? -ne 0
out=$($T health $S --tls_ca="$C/rogue_ca.pem" --tls_cert="$C/alice.pem" \
  --tls_key="$C/alice.key" 2>&1)
check "a server the client's CA did not sign is refused" test $? -ne 0
out=$($T health $S --tls_ca="$C/missing.pem" 2>&1)
check "a missing CA file is named" grep -q "missing.pem" <<<"$out"

# shellcheck disable=SC2086
out=$($T register lin tests/fixtures/linear.pt --input x:FP32:-1,784 \
  --output y:FP32:-1,10 $S $ALICE 2>&1)
check "register over mutual TLS" grep -q "state: *READY" <<<"$out"
out=$(grep '"action":"RegisterModel"' "$TMP/m/store/audit.log")
check "the certificate's common name is the audited principal" \
  grep -q '"principal":"alice"' <<<"$out"

# shellcheck disable=SC2086
out=$(client/twinbench $S $ALICE --model=lin --duration=0.3 --warmup=0.1 \
  --concurrency=2 --progress=false 2>&1)
check "twinbench over mutual TLS" test $? -eq 0

subject() {
  openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$C/ca.pem" \
    -cert "$C/alice.pem" -key "$C/alice.key" </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null
}
out=$(subject); check "serves its certificate" grep -q "CN *= *server" <<<"$out"
cp "$C/renewed.pem" "$C/live.pem"; cp "$C/renewed.key" "$C/live.key"
sleep 2.5
out=$(subject); check "a changed file alone is not picked up" \
  grep -q "CN *= *server" <<<"$out"
kill -HUP $PID
for _ in $(seq 40); do
  out=$(subject); grep -q "CN *= *renewed" <<<"$out" && break; sleep 0.1
done
check "SIGHUP: the renewed certificate is served" grep -q "CN *= *renewed" <<<"$out"
echo "garbage" >"$C/live.key"; kill -HUP $PID; sleep 1.5
out=$(subject); check "a broken key on SIGHUP keeps the old pair" \
  grep -q "CN *= *renewed" <<<"$out"
check "and says so" grep -q "TLS certificates not reloaded" "$TMP/m/server.log"
# shellcheck disable=SC2086
out=$($T health $S $ALICE 2>&1); check "still serving" grep -q "SERVING" <<<"$out"
kill $PID; wait $PID; check "exit 0 on SIGTERM" test $? -eq 0

# Beyond loopback: mutual TLS authenticates, server-only TLS does not.
start "$TMP/wide" --address=0.0.0.0:0 --tls_cert="$C/server.pem" \
  --tls_key="$C/server.key" --tls_client_ca="$C/ca.pem"
# shellcheck disable=SC2086
out=$($T health --server=127.0.0.1:$PORT $ALICE 2>&1)
check "0.0.0.0 with mutual TLS starts" grep -q "SERVING" <<<"$out"
kill $PID; wait $PID
out=$(server/twinserve --address=0.0.0.0:0 --store="$TMP/w2" \
  --metrics_address= --tls_cert="$C/server.pem" --tls_key="$C/server.key" 2>&1)
check "0.0.0.0 with server-only TLS and no tokens is refused" \
  grep -q "without authentication" <<<"$out"
out=$(server/twinserve --tls_cert="$C/server.pem" --store="$TMP/w3" 2>&1)
check "a certificate without its key is refused" grep -q "tls_key" <<<"$out"

# Server-only TLS with tokens.
echo "ops admin sha256:$(echo -n t0ken | sha256sum | cut -d' ' -f1)" >"$TMP/tokens"
start "$TMP/t" --address=127.0.0.1:0 --tls_cert="$C/server.pem" \
  --tls_key="$C/server.key" --token_file="$TMP/tokens"
out=$($T health --server=127.0.0.1:$PORT --tls_ca="$C/ca.pem" --token=t0ken 2>&1)
check "TLS with a bearer token" grep -q "SERVING" <<<"$out"
out=$($T list --server=127.0.0.1:$PORT --tls_ca="$C/ca.pem" 2>&1)
check "TLS without the token is UNAUTHENTICATED" grep -q "UNAUTHENTICATED" <<<"$out"
kill $PID; wait $PID

echo "tls_e2e_test: $fails failures"
[ $fails -eq 0 ]
