//! A Spin-compatible test host on wasmtime.
//!
//! There is no `spin` binary on the development and CI machines, so the
//! project's tests run the real `.wasm` components under this host. It reads
//! `spin.toml` (manifest version 2) and an optional runtime config, and
//! serves HTTP on loopback with Spin's routing, request headers, per-request
//! instances and host interfaces (key-value, also as `wasi:keyvalue`, SQLite,
//! variables, outbound HTTP, Redis and Postgres with `allowed_outbound_hosts`, component
//! dependencies, file mounts).
//! Where it must differ from Spin (e.g. all stores live under one state dir
//! for isolation), the module docs say so.
//!
//! ```no_run
//! use shop_test_host::{HostOptions, RunningHost};
//! let host = RunningHost::start(HostOptions {
//!     manifest: "spin.toml".into(),
//!     runtime_config: None,
//!     state_dir: std::env::temp_dir().join("state"),
//!     variables: Default::default(),
//!     listen: "127.0.0.1:0".parse().unwrap(),
//! })?;
//! println!("{}", host.base_url());
//! # anyhow::Ok(())
//! ```

mod bindings;
mod compile;
mod compose;
mod files;
mod key_value;
mod key_value_redis;
mod loader;
mod manifest;
mod outbound;
mod outbound_redis;
mod postgres;
pub mod redis_server;
mod routing;
mod runtime_config;
mod server;
mod sqlite;
mod state;
mod stdio;
pub mod testing;
mod variables;
mod wasi_keyvalue;

pub use key_value::prepare_in_wal_mode;

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How to start a host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The `spin.toml`; component sources resolve relative to its directory.
    pub manifest: PathBuf,
    /// The runtime config file (`spin up --runtime-config-file`), if any.
    pub runtime_config: Option<PathBuf>,
    /// Where SQLite databases, key-value stores and staged files go.
    pub state_dir: PathBuf,
    /// Variable overrides; they beat `SPIN_VARIABLE_*` and defaults.
    pub variables: HashMap<String, String>,
    /// Address to listen on (tests: `127.0.0.1:0`).
    pub listen: SocketAddr,
}

/// A host serving in the background on its own tokio runtime. Dropping it
/// stops the server and waits for the runtime thread to finish.
pub struct RunningHost {
    addr: SocketAddr,
    state_dir: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningHost {
    /// Loads the app and starts listening; returns once the socket is bound.
    /// Load errors (bad manifest, missing wasm, missing grants or imports)
    /// are returned here.
    pub fn start(opts: HostOptions) -> Result<RunningHost> {
        let listener = std::net::TcpListener::bind(opts.listen)
            .with_context(|| format!("binding {}", opts.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state_dir = opts.state_dir.clone();

        // The runtime is created, used and dropped only on the server
        // thread, so `start` and `drop` also work when called from inside
        // a caller's own tokio runtime (e.g. a `#[tokio::test]`).
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel::<Result<()>>();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("shop-test-host-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(4)
                    .thread_name("shop-test-host")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e.into()));
                        return;
                    }
                };
                let loaded = {
                    let _guard = runtime.enter();
                    loader::load(&opts).and_then(|app| {
                        let listener = tokio::net::TcpListener::from_std(listener)?;
                        Ok((app, listener))
                    })
                };
                let (app, listener) = match loaded {
                    Ok(loaded) => loaded,
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
                let _ = loaded_tx.send(Ok(()));
                runtime.block_on(server::serve(app, listener, shutdown_rx));
                // In-flight guest tasks are abandoned rather than awaited.
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        match loaded_rx.recv() {
            Ok(Ok(())) => Ok(RunningHost {
                addr,
                state_dir,
                shutdown: Some(shutdown),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                anyhow::bail!("the shop-test-host server thread died while loading")
            }
        }
    }

    /// The bound address (the real port when `listen` used port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the SQLite database `label` of this host lives (embedded
    /// stores only; `spin up` puts it at the runtime config's `path`).
    pub fn sqlite_database_path(&self, label: &str) -> PathBuf {
        sqlite::database_path(&self.state_dir, label)
    }

    /// Where the embedded key-value store `label` of this host lives, a file
    /// in Spin's layout (`spin_key_value (store, key, value)`).
    pub fn key_value_path(&self, label: &str) -> PathBuf {
        key_value::store_path(&self.state_dir, label)
    }

    /// What component `id` has printed to stdout so far (`spin up` keeps it
    /// in `.spin/logs/<id>_stdout.txt`; here it is under the state dir).
    pub fn component_stdout(&self, id: &str) -> String {
        std::fs::read_to_string(self.component_log_path(id)).unwrap_or_default()
    }

    /// Where component `id`'s stdout is kept.
    pub fn component_log_path(&self, id: &str) -> PathBuf {
        stdio::log_path(&self.state_dir, id, "stdout")
    }

    /// Blocks until the server stops (it only stops when dropped, so this
    /// is for the binary, which runs until killed).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
