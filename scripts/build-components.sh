#!/usr/bin/env bash
# Build every Spin component (and the test host's fixture components) for
# wasm32-wasip2 into target/wasm32-wasip2/release/, where spin.toml expects
# them. `spin build` runs the same cargo commands one component at a time;
# this does them in one cargo invocation, which is faster.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

components=(catalog catalog-contract users users-contract cart cart-contract orders orders-contract payments notifications notifications-contract files health metrics)
fixtures=(fixture-probe fixture-greeter fixture-greeter-client fixture-bare fixture-kv-read fixture-pg-probe)

args=()
for p in "${components[@]}" "${fixtures[@]}"; do args+=(-p "$p"); done
cargo build --release --target wasm32-wasip2 "${args[@]}"
