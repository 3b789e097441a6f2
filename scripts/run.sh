#!/usr/bin/env bash
# The README's run command: makes local development keys if there are none,
# puts the embedded key-value files in WAL mode, then builds every component
# and starts the app with embedded stores (.spin/*.db) and the demo catalog. Extra arguments go to `spin up`.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v spin >/dev/null || { echo "run: install the Spin CLI first (https://spinframework.dev/install)" >&2; exit 1; }
# Every component with a database imports spin:postgres/postgres@4.0.0,
# which Spin has from 3.4 on (also when every store is embedded).
spin_version=$(spin --version 2>/dev/null | awk '{print $2}')
case "$spin_version" in
  [0-2].*|3.[0-3].*) echo "run: Spin $spin_version is too old; the app needs Spin 3.4 or later" >&2; exit 1 ;;
esac
# `spin up --build` compiles every component for wasm32-wasip2, which a
# plain rustup install lacks.
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
scripts/dev-keys.sh
# Embedded key-value files in WAL mode (one fsync per cart write instead of
# about four; see scripts/prepare-kv.py and README, "Durability").
if command -v python3 >/dev/null; then
  python3 scripts/prepare-kv.py runtime-config.toml
else
  echo "run: python3 not found; key-value files stay in SQLite's rollback-journal mode (slower cart writes)" >&2
fi
exec spin up --build --runtime-config-file runtime-config.toml --variable demo_catalog=true "$@"
