#!/usr/bin/env bash
# The README's test command: builds the components, then runs every test —
# unit tests beside the domain code, the test host's own tests, and the
# black-box API suite (against the test host, or SHOP_BASE_URL if set).
set -euo pipefail
cd "$(dirname "$0")/.."

# Test-host tests run real servers they start themselves: redis-server for
# outbound Redis and the PostgreSQL server binaries (initdb, postgres) for
# outbound Postgres (shop_test_host::testing::PostgresServer).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1 \
    && [ -z "${SHOP_TEST_POSTGRES_BINDIR:-}" ]; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing ${missing[*]}" >&2
    apt-get update -qq
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
      # The tests make their own throwaway clusters: as Debian's
      # postgresql-common documents, turn off the system cluster that the
      # server package would otherwise create and start.
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-common >/dev/null
      sed -i 's/^#* *create_main_cluster *=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test: ${missing[*]} needed (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# The API suite's tests mostly wait (lock timeouts, lapsed holds, slow
# fakes): six at a time keep a 2-core machine busy (README, "Run the tests").
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-6}

# Each part says when it began (seconds since the start), for slow-part hunting.
step() { echo "== test: $* (at ${SECONDS}s)" >&2; }
step "components"
scripts/build-components.sh
step "cargo test --workspace"
cargo test --workspace "$@"

# The black-box suite once more with every service database on a throwaway
# Postgres and the carts and catalog cache on a throwaway Redis
# (tests/api: SHOP_TEST_STORES=postgres). Not against SHOP_BASE_URL, whose
# stores are whatever that app was started with.
# scripts/api-suite.sh runs the binaries `cargo test --workspace` just built.
if [ -z "${SHOP_BASE_URL:-}" ]; then
  step "the black-box suite on Postgres and Redis"
  SHOP_TEST_STORES=postgres scripts/api-suite.sh
fi

# Schemathesis over every operation of static/openapi.yaml, as a customer
# and as an admin, all checks and phases (tests/schemathesis/run.sh;
# README, "Schemathesis"). Against the test host, or skipped against
# SHOP_BASE_URL (it needs the fakes the test host is wired to).
if [ -z "${SHOP_BASE_URL:-}" ]; then
  step "schemathesis"
  tests/schemathesis/run.sh
fi

# The storefront and the admin console in a real headless Chromium
# (tests/browser/run.sh; README, "Storefront and admin console"). Debian's
# chromium package: installed here when running as root, skipped with a
# message otherwise (CI runs as root, so there it always runs).
if [ ! -x "${SHOP_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing chromium for the browser tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test: SKIPPING the browser tests: no ${SHOP_CHROMIUM:-/usr/bin/chromium} (sudo apt-get install chromium, then tests/browser/run.sh)" >&2
  fi
fi
if [ -x "${SHOP_CHROMIUM:-/usr/bin/chromium}" ]; then
  step "browser"
  tests/browser/run.sh
fi
step "done"
