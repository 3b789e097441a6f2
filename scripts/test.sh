#!/usr/bin/env bash
# The README's test command: builds the components, then runs every test —
# unit tests beside the domain code, the test host's own tests, and the
# black-box API suite (against the test host, or SHOP_BASE_URL if set).
set -euo pipefail
cd "$(dirname "$0")/.."

# The Redis publishing tests run a real redis-server (Debian: redis-server).
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing redis-server" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "test: redis-server is needed (e.g. sudo apt-get install redis-server)" >&2
    exit 1
  fi
fi

scripts/build-components.sh
cargo test --workspace "$@"
