#!/usr/bin/env bash
# The data-path benchmark (README, "Benchmarks"): builds the components and
# an optimised test host, starts the shop (embedded stores, demo catalog), a
# bare component and the floor for stored reads (the bare component plus one
# key-value read) side by side, and prints one table with every figure as a
# ratio to the bare component in the same run. Not a test: numbers depend on
# the machine.
#
#   scripts/bench.sh                      # full run (about 4 minutes of load)
#   scripts/bench.sh --smoke              # a few seconds; CI runs this
#   scripts/bench.sh --base-url http://127.0.0.1:3000 --bare-url http://127.0.0.1:3001 \
#                    [--floor-url URL] [--shop-pid PID --bare-pid PID --floor-pid PID]   # real `spin up`s
#   scripts/bench.sh --stores postgres    # every database on a throwaway Postgres; carts, the catalog cache
#                                         # and the floor's store on a throwaway Redis
#   extra flags: --duration S --connections N --rounds N --pending N --workers 8,32
#                --only TEXT --variable k=v --page-runs N
#   SHOP_BENCH_KEEP_STATE=1 keeps each host's state directory (/tmp/shop-bench-<name>-<pid>,
#   host.log is its stderr), e.g. with SHOP_TEST_HOST_SQL_TRACE=1 for a statement trace
#
# After the table, the storefront's page budget on the same shop
# (tests/browser/budget.mjs in Debian's headless Chromium: 5 first loads, 1
# with --smoke); `--only "page budget"` runs it alone. It needs chromium and
# Node 20+; the pinned npm packages are installed here when Node is there.
#
# The soak with invariants (README, "The soak with invariants"): a mixed storefront workload
# on the test host with a fake Stripe and a fake Resend, then checks from the
# outside; exits 1 on any violation, listing each.
#   scripts/bench.sh --soak [--duration S] [--connections N]   # 60 s, 32 workers
#   scripts/bench.sh --soak --smoke       # 10 s on the dev-profile build; CI runs this
#   extra flags: --stores postgres --stock N --seed N
set -euo pipefail
cd "$(dirname "$0")/.."

soak=false
for arg in "$@"; do [ "$arg" = "--soak" ] && soak=true; done

if ! $soak && ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing wrk" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "bench: wrk is needed (e.g. sudo apt-get install wrk)" >&2
    exit 1
  fi
fi

# The smoke run reuses the test build (dev profile, already built by the
# test command); a real run needs an optimised host, like Spin's.
profile=bench-host
for arg in "$@"; do [ "$arg" = "--smoke" ] && profile=dev; done

scripts/build-components.sh
dir=$profile; [ "$profile" = dev ] && dir=debug
if $soak; then
  # The soak runs the test host inside its own process, as the API tests do.
  cargo build -q --profile "$profile" -p api-tests --bin soak
  exec "target/$dir/soak" "$@"
fi
cargo build -q --profile "$profile" -p shop-test-host -p api-tests --bin shop-test-host --bin bench
if command -v npm >/dev/null 2>&1 && [ -x "${SHOP_CHROMIUM:-/usr/bin/chromium}" ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
exec "target/$dir/bench" --host-bin "target/$dir/shop-test-host" "$@"
