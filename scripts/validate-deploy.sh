#!/usr/bin/env bash
# Validates deploy/ (SpinKube manifests, Grafana dashboard, alert rules) and
# .github/workflows/ against real schemas: deploy/validate.py, with the
# pinned tools of deploy/requirements.txt in a venv (SHOP_OPS_VENV, default
# /tmp/shop-ci-venv, the venv .ci/run makes). Needs ../shared/spinkube/ beside
# the repository (the SpinApp CRD schema). Extra arguments go to validate.py
# (--self-test also checks that deliberate breaks are reported).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SHOP_OPS_VENV:-/tmp/shop-ci-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r deploy/requirements.txt
exec "$venv/bin/python" deploy/validate.py "$@"
