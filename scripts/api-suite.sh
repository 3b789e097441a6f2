#!/usr/bin/env bash
# The black-box suite (tests/api) from the build `cargo test --workspace`
# makes, run the way `cargo test` runs it: each test binary in turn, from
# the package's directory.
#
# Why not `cargo test -p api-tests`: a narrower package selection unifies
# dependency features differently (shop-test-host's dev-dependencies drop
# out), so cargo builds wasmtime and the test host a second time, almost
# two minutes on CI. Here the binaries are the ones `cargo test --workspace`
# built (it builds them again only if a source changed).
#
#   scripts/api-suite.sh [ARGS]   ARGS go to every test binary, e.g. a name
#                                 filter, --test-threads 1, -q
# Every binary runs even after one fails (like `cargo test --no-fail-fast`);
# the exit status is 1 if any failed, and the failed ones are listed.
# The environment decides the stores (SHOP_TEST_STORES) or the app
# (SHOP_BASE_URL), as for `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# As scripts/test.sh: six tests at a time unless told otherwise.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-6}

# Built first, into a file: a build that fails stops here (set -e), instead
# of leaving the binaries that did build to run as if that were the suite.
artifacts=$(mktemp)
trap 'rm -f "$artifacts"' EXIT
cargo test --workspace --no-run --message-format=json-render-diagnostics -q >"$artifacts"
mapfile -t binaries < <(
    python3 -c '
import json, sys
# The test harnesses of package api-tests (its lib, its bins, its tests/*.rs),
# in the order cargo runs them.
order = {"lib": 0, "bin": 1, "test": 2}
found = []
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    if m["package_id"].rsplit("#", 1)[-1].split("@")[0] != "api-tests":
        continue
    kind = m["target"]["kind"][0]
    found.append((order.get(kind, 3), m["target"]["name"], m["executable"]))
for _, _, exe in sorted(found):
    print(exe)
' <"$artifacts"
)
if [ ${#binaries[@]} -eq 0 ]; then
  echo "api-suite: cargo built no test binary of tests/api" >&2
  exit 1
fi

# Each binary's output is also kept, so that the failures can be shown
# again at the very end: on CI only the tail of the log may be seen, and a
# failure's panic message is otherwise buried under the binaries after it.
logs=$(mktemp -d)
trap 'rm -f "$artifacts"; rm -rf "$logs"' EXIT
failed=()
cd tests/api
for bin in "${binaries[@]}"; do
  name=$(basename "$bin")
  echo "     Running $name" >&2
  "$bin" "$@" 2>&1 | tee "$logs/$name" || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
  for name in "${failed[@]}"; do
    # libtest's report: from "failures:" on, without the app's log lines.
    echo "---- api-suite: $name failed; its failures again:" >&2
    sed -n '/^failures:$/,$p' "$logs/$name" | grep -v '^\[[a-z_-]*\] ' | tail -n 150 >&2 || true
  done
  echo "api-suite: failed: ${failed[*]}" >&2
  exit 1
fi
