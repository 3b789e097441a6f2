//! `shop-store-copy`: copies a stopped shop's embedded stores into Postgres
//! and Redis. See `scripts/copy-to-postgres.sh` and README.md, "Moving a
//! running shop to Postgres".

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

const USAGE: &str = "\
usage: shop-store-copy [--from DIR] [--catalog URL] [--users URL] [--orders URL]
                       [--notifications URL] [--carts REDIS_URL] [--carts-file FILE]

Copies each service database named by a flag from DIR/<service>.db (default
DIR: .spin, as in runtime-config.toml) into the empty Postgres database at URL
(postgres://user:password@host:port/db), and with --carts the carts key-value
store from --carts-file (default DIR/carts.db) into the Redis at REDIS_URL.
Each flag may also come from the environment: CATALOG_DATABASE_URL,
USERS_DATABASE_URL, ORDERS_DATABASE_URL, NOTIFICATIONS_DATABASE_URL, CARTS_REDIS_URL.
Stop every instance of the app first.";

fn main() {
    if let Err(e) = run() {
        eprintln!("shop-store-copy: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut from = PathBuf::from(".spin");
    let mut urls: Vec<(&'static str, String)> = Vec::new();
    let mut carts: Option<String> = std::env::var("CARTS_REDIS_URL").ok().filter(|v| !v.is_empty());
    let mut carts_file: Option<PathBuf> = None;
    for s in shop_store_copy::SERVICES {
        if let Ok(url) = std::env::var(s.url_variable.to_ascii_uppercase()) {
            if !url.is_empty() {
                urls.push((s.label, url));
            }
        }
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--from" => from = PathBuf::from(value()?),
            "--carts" => carts = Some(value()?),
            "--carts-file" => carts_file = Some(PathBuf::from(value()?)),
            flag if flag.starts_with("--") && shop_store_copy::service(&flag[2..]).is_some() => {
                let label = shop_store_copy::service(&flag[2..]).expect("checked").label;
                let url = value()?;
                urls.retain(|(l, _)| *l != label);
                urls.push((label, url));
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if urls.is_empty() && carts.is_none() {
        bail!("nothing to copy: name at least one database or --carts\n{USAGE}");
    }
    for (label, url) in &urls {
        let service = shop_store_copy::service(label).expect("known label");
        let file = from.join(format!("{label}.db"));
        let copied = shop_store_copy::copy_database(service, &file, url)?;
        let total: u64 = copied.tables.iter().map(|(_, n)| n).sum();
        println!("{label}: {total} rows from {} into Postgres", file.display());
        for (table, n) in &copied.tables {
            println!("  {table:<24} {n:>8}");
        }
        println!("  then set the Spin variable {} to this URL", service.url_variable);
    }
    if let Some(redis) = carts {
        let file = carts_file.unwrap_or_else(|| from.join("carts.db"));
        let n = shop_store_copy::copy_key_value(&file, "carts", &redis)?;
        println!("carts: {n} keys from {} into Redis", file.display());
        println!("  then use runtime-config.scale.toml with this Redis URL for [key_value_store.carts]");
    }
    Ok(())
}
