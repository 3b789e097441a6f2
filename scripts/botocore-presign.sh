#!/usr/bin/env bash
# Print botocore's presigned S3 PUT URL for the JSON inputs on stdin (see
# tests/reference/botocore-presign.py). Makes, on first use, a venv with the
# pinned botocore of tests/reference/botocore-requirements.txt under
# target/ (or $SHOP_BOTOCORE_VENV), so it works on a fresh machine with
# python3 and PyPI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SHOP_BOTOCORE_VENV:-$root/target/botocore-venv}"
requirements="$root/tests/reference/botocore-requirements.txt"
stamp="$venv/.requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
exec "$venv/bin/python" "$root/tests/reference/botocore-presign.py"
