#!/usr/bin/env bash
# The README's test command: builds the components, then runs every test —
# unit tests beside the domain code, the test host's own tests, and the
# black-box API suite (against the test host, or SHOP_BASE_URL if set).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-components.sh
cargo test --workspace "$@"
