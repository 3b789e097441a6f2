#!/usr/bin/env python3
"""Put the embedded key-value files of a runtime config in WAL mode.

Spin keeps one SQLite connection per embedded key-value file for the app's
lifetime and opens the file as it finds it. A new file is in SQLite's
rollback-journal mode, where every write (a cart change) syncs the journal
twice, the file and its directory: about four fsyncs, all under the store's
one lock, so every cart request waits for them. In WAL mode a write is one
append and one fsync, readers never wait for it, and nothing else changes:
the same table (Spin's layout, `spin_key_value (store, key, value)`), the
same durability (Spin's connection keeps `synchronous=FULL`: a write is on
disk before it returns). The mode is stored in the file, so this is needed
once per file, before `spin up` opens it (scripts/run.sh runs it each time;
it is a no-op on a file already in WAL mode).

usage: prepare-kv.py RUNTIME_CONFIG_TOML
Key-value paths in the runtime config are relative to that file (as Spin
reads them); `type = "redis"` stores are skipped.
"""
import os
import re
import sqlite3
import sys

SPIN_TABLE = (
    "CREATE TABLE IF NOT EXISTS spin_key_value ("
    "store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
    "PRIMARY KEY (store, key))"
)


def embedded_stores(config_text):
    """(label, path) of every `[key_value_store.X]` with `type = "spin"`."""
    try:
        import tomllib  # Python 3.11+
        stores = tomllib.loads(config_text).get("key_value_store", {})
        return [(label, s["path"]) for label, s in stores.items() if s.get("type") == "spin" and "path" in s]
    except ModuleNotFoundError:
        found = []
        for m in re.finditer(r"^\[key_value_store\.([A-Za-z0-9_]+)\]\s*\n((?:[^\[].*\n?)*)", config_text, re.M):
            body = m.group(2)
            kind = re.search(r'^type\s*=\s*"([^"]*)"', body, re.M)
            path = re.search(r'^path\s*=\s*"([^"]*)"', body, re.M)
            if kind and path and kind.group(1) == "spin":
                found.append((m.group(1), path.group(1)))
        return found


def to_wal(path):
    """Create or convert one file; answers the journal mode it ends in."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    conn = sqlite3.connect(path, timeout=5)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute(SPIN_TABLE)
        conn.commit()
        return mode
    finally:
        conn.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    config = sys.argv[1]
    base = os.path.dirname(os.path.abspath(config))
    with open(config, encoding="utf-8") as f:
        stores = embedded_stores(f.read())
    for label, rel in stores:
        path = rel if os.path.isabs(rel) else os.path.join(base, rel)
        mode = to_wal(path)
        if mode != "wal":
            # Another process holds the file (a running `spin up`): it keeps
            # working in its current mode; the next start tries again.
            print(f"prepare-kv: {path} stays in {mode} mode (in use?)", file=sys.stderr)


if __name__ == "__main__":
    main()
