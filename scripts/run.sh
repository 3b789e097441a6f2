#!/usr/bin/env bash
# The README's run command: makes local development keys if there are none,
# then builds every component and starts the app with embedded stores
# (.spin/*.db) and the demo catalog. Extra arguments go to `spin up`.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v spin >/dev/null || { echo "run: install the Spin CLI first (https://spinframework.dev/install)" >&2; exit 1; }
scripts/dev-keys.sh
exec spin up --build --runtime-config-file runtime-config.toml --variable demo_catalog=true "$@"
