#!/usr/bin/env bash
# Measure the cost of a login (Argon2id in a per-request Wasm instance) under
# the test host; prints a Markdown table for the README. Not a test: numbers
# depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-components.sh
cargo run -q -p api-tests --bin bench-login -- "${1:-30}"
