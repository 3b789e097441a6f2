#!/usr/bin/env bash
# The browser tests (README, "Storefront and admin console"): builds the
# storefront host (tests/api/src/bin/storefront-host.rs), installs the pinned
# npm packages (playwright-core, axe-core) from package-lock.json, and drives
# Debian's Chromium (/usr/bin/chromium, or SHOP_CHROMIUM) headless through
# tests/browser/run.mjs. Needs the components built (scripts/build-components.sh).
# Screenshots go to target/browser-screenshots/; `--screenshots docs/screenshots`
# refreshes the README's. Extra arguments go to run.mjs, e.g. `--only refund`.
set -euo pipefail
cd "$(dirname "$0")/../.."

chromium="${SHOP_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "browser tests: $chromium not found (apt-get install chromium)" >&2
  exit 1
fi
command -v npm >/dev/null 2>&1 || { echo "browser tests: node and npm needed (Node 20+)" >&2; exit 1; }

# The pure modules first (money, error texts, the YAML reader): no browser needed.
node --test tests/browser/unit.test.mjs

cargo build -p api-tests --bin storefront-host
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
SHOP_CHROMIUM="$chromium" SHOP_STOREFRONT_HOST_BIN="$PWD/target/debug/storefront-host" \
  node tests/browser/run.mjs "$@"
