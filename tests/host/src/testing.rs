//! Helpers for tests that need real backing servers, for this crate's tests
//! and other test crates (e.g. the API suite).
//!
//! [`PostgresServer`] runs a throwaway PostgreSQL server (Debian package
//! `postgresql`) on a free loopback port in a temporary directory, with
//! durability off for speed, and stops it and deletes its files on drop.
//!
//! ```no_run
//! use shop_test_host::testing::PostgresServer;
//! let pg = PostgresServer::start()?;
//! let url = pg.create_database("shop")?;   // postgres://postgres@127.0.0.1:PORT/shop
//! // allowed_outbound_hosts entry for it: format!("postgres://{}", pg.host_port())
//! # anyhow::Ok(())
//! ```

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Overrides where `initdb` and `postgres` are looked for.
pub const POSTGRES_BINDIR_ENV: &str = "SHOP_TEST_POSTGRES_BINDIR";

/// A throwaway PostgreSQL server: superuser `postgres`, no password (`trust`
/// authentication), listening on `127.0.0.1` only, `fsync`,
/// `synchronous_commit` and `full_page_writes` off, time zone UTC,
/// `max_connections` 300. The server runs as the `postgres` system user
/// when the caller is root (PostgreSQL refuses to run as root).
///
/// Dropping it shuts the server down (fast shutdown, which ends open
/// sessions) and removes its directory.
pub struct PostgresServer {
    /// `None` while stopped ([`PostgresServer::stop`]).
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    bindir: PathBuf,
    run_as: Option<RunAs>,
}

/// The account the server runs as when we are root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl PostgresServer {
    /// Creates a cluster (a copy of one `initdb` made, see
    /// `cluster_template`) and starts `postgres` on a free
    /// loopback port; returns once it accepts queries. Fails with
    /// installation advice when the server binaries are missing.
    pub fn start() -> Result<PostgresServer> {
        let bindir = find_bindir()?;
        let run_as = run_as()?;
        let mut last_error = None;
        // The port is free when picked but may be taken before the server
        // binds it; a server that exits early is retried on another port.
        for _ in 0..5 {
            let dir = fresh_dir()?;
            match start_in(&bindir, run_as.as_ref(), &dir) {
                Ok(server) => return Ok(server),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt ran"))
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `allowed_outbound_hosts = ["postgres://{{ x }}"]`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// URL of the built-in `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// URL of database `name` on this server (it need not exist yet).
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            bail!("database name {name:?}: use lowercase letters, digits and `_`");
        }
        let url = self.url();
        // Own thread, so this also works from inside an async runtime.
        std::thread::scope(|s| {
            s.spawn(|| {
                BlockingClient::connect(&url)?.batch_execute(&format!("CREATE DATABASE {name}"))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("creating the database panicked"))?
        })
        .with_context(|| format!("creating database {name}"))?;
        Ok(self.database_url(name))
    }

    /// A blocking client on the `postgres` database.
    pub fn client(&self) -> Result<BlockingClient> {
        BlockingClient::connect(&self.url())
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl PostgresServer {
    /// Shuts the server down (fast shutdown: open sessions end with
    /// `57P01 admin_shutdown`) and keeps its data, so that
    /// [`PostgresServer::restart`] brings the same databases back on the
    /// same port. For tests of an app whose database goes away.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            shut_down(&mut child);
        }
    }

    /// Starts the server again after [`PostgresServer::stop`], on the same
    /// port and data directory; returns once it accepts queries.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let child = launch(&self.bindir, self.run_as.as_ref(), &self.dir, self.port)?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until the server answers a query (60 s at most).
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.url();
        loop {
            let child = self.child.as_mut().context("the server is stopped")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!("postgres exited during start-up ({status}); its log:\n{}", self.log());
            }
            let ready = std::thread::scope(|s| {
                // Own thread: the caller may be inside an async runtime.
                s.spawn(|| BlockingClient::connect(&url).and_then(|c| c.query_i64("SELECT 1::int8")))
                    .join()
                    .map_err(|_| anyhow::anyhow!("readiness check panicked"))?
            });
            if ready.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within 60 s ({:#}); its log:\n{}",
                    ready.unwrap_err(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// SIGINT (fast shutdown: ends sessions, no waiting for clients), then
/// SIGKILL after 10 s.
fn shut_down(child: &mut Child) {
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking `tokio_postgres` client with its own runtime (do not use it
/// from inside an async runtime).
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl BlockingClient {
    /// Connects to `url` (plain TCP, no TLS).
    pub fn connect(url: &str) -> Result<BlockingClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .with_context(|| format!("connecting to {url}"))?;
            tokio::spawn(connection);
            anyhow::Ok(client)
        })?;
        Ok(BlockingClient { runtime, client })
    }

    /// Runs one or more statements (simple protocol, no parameters).
    pub fn batch_execute(&self, sql: &str) -> Result<()> {
        Ok(self.runtime.block_on(self.client.batch_execute(sql))?)
    }

    /// Runs a query with parameters.
    pub fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        Ok(self.runtime.block_on(self.client.query(sql, params))?)
    }

    /// The first column of the only row of `sql`, as an `i64` (cast in SQL
    /// when needed, e.g. `SELECT count(*) ...` is already `int8`).
    pub fn query_i64(&self, sql: &str) -> Result<i64> {
        let row = self.runtime.block_on(self.client.query_one(sql, &[]))?;
        Ok(row.try_get(0)?)
    }
}

fn fresh_dir() -> Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shop-pg-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: `apt-get install \
     postgresql`; scripts/test.sh does this when run as root) or point \
     SHOP_TEST_POSTGRES_BINDIR at the directory holding `initdb` and `postgres`";

/// Where `initdb` and `postgres` live: `$SHOP_TEST_POSTGRES_BINDIR`, else
/// the newest `/usr/lib/postgresql/<version>/bin` (Debian), else
/// `pg_config --bindir`, else the PATH (an empty path).
fn find_bindir() -> Result<PathBuf> {
    let has_binaries = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os(POSTGRES_BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        if has_binaries(&dir) {
            return Ok(dir);
        }
        bail!(
            "{POSTGRES_BINDIR_ENV}={} has no `initdb` and `postgres`",
            dir.display()
        );
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_binaries(&dir) {
            return Ok(dir);
        }
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| has_binaries(&dir)))
        .unwrap_or(false);
    if on_path {
        return Ok(PathBuf::new());
    }
    bail!("PostgreSQL server binaries (`initdb`, `postgres`) not found: {INSTALL_HINT}")
}

/// `Some(postgres user)` when running as root, else `None` (run as
/// ourselves).
fn run_as() -> Result<Option<RunAs>> {
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer to static storage or NULL; the
    // fields are copied out at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` \
             user to run it as: {INSTALL_HINT} (the package creates the user)"
        );
    }
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn command(bindir: &Path, program: &str, run_as: Option<&RunAs>, log: &Path) -> Result<Command> {
    let mut cmd = Command::new(bindir.join(program));
    if let Some(user) = run_as {
        // std drops supplementary groups when it changes the uid.
        cmd.uid(user.uid).gid(user.gid);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env_remove("PGDATA")
        .env_remove("PGPORT")
        .env_remove("PGHOST")
        .env("LC_ALL", "C");
    Ok(cmd)
}

/// Give `dir` to the account the server runs as (when we are root).
fn hand_over(dir: &Path, run_as: Option<&RunAs>) -> Result<()> {
    if let Some(user) = run_as {
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))
            .with_context(|| format!("handing {} to the postgres user", dir.display()))?;
    }
    Ok(())
}

fn start_in(bindir: &Path, run_as: Option<&RunAs>, dir: &Path) -> Result<PostgresServer> {
    hand_over(dir, run_as)?;
    let data = dir.join("data");
    let template = cluster_template(bindir, run_as)?;
    // `cp -a` keeps the owner (the postgres user when we are root) and
    // the 0700 mode postgres insists on.
    let copy = Command::new("cp")
        .arg("-a")
        .arg(&template)
        .arg(&data)
        .status()
        .context("running cp")?;
    if !copy.success() {
        bail!("copying the cluster template {} failed ({copy})", template.display());
    }

    let port = free_port()?;
    let child = launch(bindir, run_as, dir, port)?;
    let mut server = PostgresServer {
        child: Some(child),
        port,
        dir: dir.to_path_buf(),
        bindir: bindir.to_path_buf(),
        run_as: run_as.copied(),
    };
    // On failure the caller removes the directory; Drop stops the server.
    server.wait_ready()?;
    Ok(server)
}

/// A freshly `initdb`-made cluster to copy (copying is about three times
/// cheaper than `initdb`, and a test run starts a server per test), one
/// per machine, PostgreSQL binaries and owner, kept in the temporary
/// directory across runs. It is made under another name and renamed into
/// place, so a concurrent or interrupted maker never leaves half of one.
fn cluster_template(bindir: &Path, run_as: Option<&RunAs>) -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bindir.hash(&mut hasher);
    let owner = run_as.map_or_else(|| unsafe { libc::geteuid() }, |r| r.uid);
    let root = std::env::temp_dir().join(format!("shop-pg-template-{owner}-{:016x}", hasher.finish()));
    let template = root.join("data");
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let making = fresh_dir()?;
    hand_over(&making, run_as)?;
    let made = init_cluster(bindir, run_as, &making.join("data"), &making.join("initdb.log"));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&making);
        return Err(e);
    }
    let _ = std::fs::remove_file(making.join("initdb.log"));
    // Another maker may have won the race: its template is as good.
    if std::fs::rename(&making, &root).is_err() {
        let _ = std::fs::remove_dir_all(&making);
    }
    if !template.join("PG_VERSION").is_file() {
        bail!("no cluster template at {}", template.display());
    }
    Ok(template)
}

/// `initdb` a cluster into `data`, its output to `log`.
fn init_cluster(bindir: &Path, run_as: Option<&RunAs>, data: &Path, log: &Path) -> Result<()> {
    let initdb = command(bindir, "initdb", run_as, log)?
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .status()
        .with_context(|| format!("running {}", bindir.join("initdb").display()))?;
    if !initdb.success() {
        bail!(
            "initdb failed ({initdb}); its output:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    Ok(())
}

/// Starts `postgres` on the cluster in `dir` (made by `initdb`).
fn launch(bindir: &Path, run_as: Option<&RunAs>, dir: &Path, port: u16) -> Result<Child> {
    command(bindir, "postgres", run_as, &dir.join("postgres.log"))?
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .arg("-k")
        .arg(dir)
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        .args(["-c", "timezone=UTC", "-c", "logging_collector=off"])
        .spawn()
        .with_context(|| format!("starting {}", bindir.join("postgres").display()))
}
