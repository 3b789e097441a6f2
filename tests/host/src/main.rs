//! `shop-test-host`: run a Spin app under the test host, for manual poking.
//!
//! ```text
//! shop-test-host [--manifest spin.toml] [--runtime-config-file runtime-config.toml]
//!                [--listen 127.0.0.1:3000] [--state-dir .spin-test-host]
//!                [--variable k=v ...]
//! ```

use anyhow::{bail, Context, Result};
use shop_test_host::{HostOptions, RunningHost};
use std::collections::HashMap;
use std::path::PathBuf;

const USAGE: &str = "usage: shop-test-host [--manifest spin.toml] [--runtime-config-file FILE] \
[--listen 127.0.0.1:3000] [--state-dir .spin-test-host] [--variable k=v ...]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<HostOptions> {
    let mut opts = HostOptions {
        manifest: PathBuf::from("spin.toml"),
        runtime_config: None,
        state_dir: PathBuf::from(".spin-test-host"),
        variables: HashMap::new(),
        listen: "127.0.0.1:3000".parse()?,
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--manifest" | "-f" => opts.manifest = value()?.into(),
            "--runtime-config-file" => opts.runtime_config = Some(value()?.into()),
            "--listen" => opts.listen = value()?.parse().context("--listen expects HOST:PORT")?,
            "--state-dir" => opts.state_dir = value()?.into(),
            "--variable" => {
                let pair = value()?;
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("--variable expects k=v, got {pair:?}"))?;
                opts.variables.insert(k.to_string(), v.to_string());
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(opts)
}

fn main() -> Result<()> {
    let opts = parse_args(std::env::args().skip(1))?;
    let host = RunningHost::start(opts)?;
    eprintln!("shop-test-host: serving on {}", host.base_url());
    host.wait();
    Ok(())
}
