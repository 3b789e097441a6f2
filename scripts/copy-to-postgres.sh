#!/usr/bin/env bash
# Copies a stopped shop's embedded stores into Postgres and Redis, so it can
# restart on them (README.md, "Scaling out" > "Moving a running shop").
#
#   scripts/copy-to-postgres.sh [--from .spin] \
#     --catalog postgres://shop:pw@db:5432/catalog \
#     --users postgres://shop:pw@db:5432/users \
#     --orders postgres://shop:pw@db:5432/orders \
#     --notifications postgres://shop:pw@db:5432/notifications \
#     [--carts redis://redis:6379/0]
#
# Each target database must be empty (it is given the app's schema and
# then every row, in one transaction per database); a database that already
# holds rows is refused, so running it twice changes nothing. Stop every
# instance of the app first. `--help` lists every option.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p shop-store-copy -- "$@"
