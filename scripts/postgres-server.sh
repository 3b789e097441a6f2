#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server in the foreground, for trying the shop
# or the API suite against Postgres by hand: a fresh cluster in a temporary
# directory, superuser `postgres` without password (trust), loopback only,
# durability off. Ctrl-C (or SIGTERM) stops it and deletes everything.
#
#   scripts/postgres-server.sh [PORT]      # default port: 5433
#
# Prints the URL to use, e.g. postgres://postgres@127.0.0.1:5433/postgres
# (allowed_outbound_hosts entry: "postgres://127.0.0.1:5433"). Tests use
# shop_test_host::testing::PostgresServer instead, which does the same per
# test on a free port. Needs the Debian package `postgresql`.
set -euo pipefail

port="${1:-5433}"
bindir="${SHOP_TEST_POSTGRES_BINDIR:-}"
if [ -z "$bindir" ]; then
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then
  bindir="$(pg_config --bindir)"
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "postgres-server: initdb not found; install the PostgreSQL server (apt-get install postgresql)" >&2
  exit 1
fi

dir="$(mktemp -d /tmp/shop-pg-manual.XXXXXX)"
as_server=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root.
  chown postgres:postgres "$dir"
  as_server=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${as_server[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
  >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
"${as_server[@]}" "$bindir/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
  -c timezone=UTC &
server_pid=$!

for _ in $(seq 1 100); do
  if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
    echo "postgres-server: ready at postgres://postgres@127.0.0.1:$port/postgres (Ctrl-C stops it)" >&2
    wait "$server_pid"
    exit $?
  fi
  kill -0 "$server_pid" 2>/dev/null || { echo "postgres-server: the server exited" >&2; exit 1; }
  sleep 0.1
done
echo "postgres-server: the server did not become ready" >&2
exit 1
