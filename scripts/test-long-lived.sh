#!/usr/bin/env bash
# The black-box suite, whole, N times in a row (default 2) against ONE
# long-lived app: the app is started once, on a fresh state directory, and
# every test binary of every round runs against it through SHOP_BASE_URL, as
# against a real `spin up` (README, "Running the tests against real Spin").
# What this catches that per-test apps cannot: ids from a fake that repeat
# across runs, data an earlier run left that a later one trips over, and
# anything that only goes wrong once an app has been up for a while.
#
#   scripts/test-long-lived.sh [--rounds N] [--port P]
#   SHOP_BASE_URL=http://127.0.0.1:3000 scripts/test-long-lived.sh   # an app you started
#     (start it with the variables `cargo run -q -p api-tests --bin suite-variables` prints)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=2
port=3077
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--port P]" >&2; exit 2 ;;
  esac
done

host_pid=
state=
cleanup() {
  # `|| true`: under `set -e` a failing last command of an && list would
  # end the script with its status (the killed host's 143) instead of ours.
  if [ -n "$host_pid" ]; then kill "$host_pid" 2>/dev/null || true; wait "$host_pid" 2>/dev/null || true; fi
  if [ -n "$state" ]; then rm -rf "$state"; fi
  return 0
}
trap cleanup EXIT

if [ -z "${SHOP_BASE_URL:-}" ]; then
  scripts/build-components.sh
  # The build the README's test command makes (scripts/api-suite.sh says why
  # not a narrower one): the host binary, suite-variables and the suite.
  cargo test -q --workspace --no-run
  state=$(mktemp -d /tmp/shop-long-lived.XXXXXX)
  # A key pair of its own, handed to the app and the suite alike.
  pem=$(openssl genpkey -algorithm ed25519)
  SPIN_VARIABLE_JWT_PRIVATE_KEY=$(printf '%s\n' "$pem" | openssl pkey -outform DER | base64 | tr -d '\n')
  SPIN_VARIABLE_JWT_PUBLIC_KEY=$(printf '%s\n' "$pem" | openssl pkey -pubout -outform DER | base64 | tr -d '\n')
  export SPIN_VARIABLE_JWT_PRIVATE_KEY SPIN_VARIABLE_JWT_PUBLIC_KEY
  mapfile -t variables < <(target/debug/suite-variables)
  target/debug/shop-test-host --runtime-config-file runtime-config.toml --state-dir "$state" \
    --listen "127.0.0.1:$port" "${variables[@]}" >"$state/host.log" 2>&1 &
  host_pid=$!
  export SHOP_BASE_URL="http://127.0.0.1:$port"
  ready=false
  for _ in $(seq 1 120); do
    curl -fsS --max-time 5 "$SHOP_BASE_URL/health" >/dev/null 2>&1 && { ready=true; break; }
    kill -0 "$host_pid" 2>/dev/null || { echo "long-lived: the app did not start:" >&2; tail -n 30 "$state/host.log" >&2; exit 1; }
    sleep 0.5
  done
  $ready || { echo "long-lived: /health never answered 200:" >&2; tail -n 30 "$state/host.log" >&2; exit 1; }
fi

for round in $(seq 1 "$rounds"); do
  echo "== long-lived: round $round of $rounds against $SHOP_BASE_URL" >&2
  started=$(date +%s)
  if ! scripts/api-suite.sh -q; then
    echo "long-lived: round $round failed" >&2
    [ -n "$state" ] && { echo "app log (last 40 lines):" >&2; tail -n 40 "$state/host.log" >&2; }
    exit 1
  fi
  echo "== long-lived: round $round passed in $(( $(date +%s) - started ))s" >&2
done
