//! Outbound Postgres: `spin:postgres/postgres@4.0.0` (spin-sdk 5.2's `pg4`).
//!
//! Follows Spin's `crates/factor-outbound-pg` (`spinframework/spin`, the
//! code that serves `postgres@4.0.0` in Spin 3.4 to 4.0), with the same
//! crates, so a guest sees the same values and error texts:
//!
//! * **Address check** ([`ensure_address_allowed`], Spin's
//!   `src/allowed_hosts.rs`): the address is parsed as a
//!   `tokio_postgres::Config` (URL or `key=value` form); every TCP host, with
//!   the port at its index (or the only port), must be allowed by the
//!   component's `allowed_outbound_hosts` as a `postgres` URL (no port means
//!   5432). A denied host is `connection-failed("address postgres://HOST:PORT
//!   is not permitted")`, an unparseable address `connection-failed(<parse
//!   error>)`, a Unix-socket host `connection-failed("Unix sockets are not
//!   supported on WebAssembly")`, and a host Spin's URL check cannot parse
//!   (an IPv6 literal) `other(<error>)`. Nothing is sent to the server before
//!   the check passes.
//! * **Pooling** ([`PgPools`], Spin's `src/client.rs`,
//!   `PooledTokioClientFactory`): one `deadpool_postgres` pool per connection
//!   string for the whole app (up to 16 strings, least recently used dropped
//!   first; Spin keeps them in a 16-entry `moka` cache), each of at most 64
//!   connections, recycled with deadpool's `Clean` method. `open` takes one
//!   connection from the pool and the `connection` resource holds it until
//!   the guest drops it (or the instance ends), so `BEGIN` … `COMMIT` sent as
//!   separate statements is one transaction on one server session, and a
//!   second `open` is a second session. A pool waits without limit for a
//!   free connection (Spin sets no timeouts): an instance holding 64 open
//!   connections to one address blocks on the 65th. Any failure to get a
//!   connection is `connection-failed` with anyhow's `{:?}` rendering of the
//!   error, as Spin formats it.
//! * **Recycling does not roll back.** deadpool's `Clean` recycling runs
//!   `CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *;
//!   SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;`
//!   before handing a pooled connection out again. Session settings are
//!   reset, but a transaction the previous guest left open stays open and
//!   the next guest that gets the connection runs inside it; a connection
//!   left in a *failed* transaction fails that query and is replaced by a new
//!   connection. Guests must end every transaction they begin, on error
//!   paths too.
//! * **Statements** (Spin's `src/client.rs`, `Client for
//!   deadpool_postgres::Object`): `execute` and `query` run one statement
//!   with the extended protocol (so several statements in one string are a
//!   syntax error from the server). Parameters that cannot be converted are
//!   `value-conversion-failed` for `execute` but `bad-parameter` for `query`
//!   (Spin's asymmetry). Server errors are `query-failed(db-error)` with the
//!   SQLSTATE `code`, `severity`, `message`, `detail`, the other fields in
//!   `extras` (`column`, `constraint`, `routine`, `hint`, `table`,
//!   `datatype`, `schema`, `file`, `line`, `where_`, in that order) and the
//!   driver error's `{:?}` text in `as-text`; driver-side failures (a
//!   parameter of the wrong type for its placeholder, a closed connection)
//!   are `query-failed(text)`. A query with no rows returns no columns
//!   either (Spin infers the columns from the first row).
//! * **Types** (Spin's `src/types.rs`, `src/types/convert.rs`,
//!   `src/types/interval.rs`): see [`to_sql_parameter`], [`convert_entry`] and
//!   [`convert_data_type`]. As in Spin, `timestamptz` columns are reported
//!   as `datetime` but decoding their values fails (`query-failed(text)`,
//!   the driver reads them as a naive timestamp, which only `timestamp`
//!   accepts), and an empty range reads as an unbounded one.
//!
//! TLS: Spin connects with TLS unless the address says `sslmode=disable`.
//! This host has no TLS support and connects in plain text whatever the
//! mode; against a server without TLS that is what Spin ends up doing for
//! `prefer` (the default), and `sslmode=require` fails in both ("server does
//! not support TLS"). Against a TLS server, `require` fails here while
//! Spin would use TLS.

// The WIT error carries the server's error fields, so it is large (Spin
// allows the same lint).
#![allow(clippy::result_large_err)]

use crate::bindings::spin::postgres::postgres as v4;
use crate::state::HostState;
use anyhow::{anyhow, Context};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::sync::Mutex;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{NoTls, Row};
use wasmtime::component::Resource;

/// Spin's `CONNECTION_POOL_SIZE`: connections per connection string.
pub const CONNECTION_POOL_SIZE: usize = 64;
/// Spin's `CONNECTION_POOL_CACHE_CAPACITY`: connection strings with a pool.
pub const CONNECTION_POOL_CACHE_CAPACITY: usize = 16;

/// The host side of a guest's `connection` resource: one pooled connection,
/// returned to its pool when the resource is dropped.
pub struct PgConnection {
    client: deadpool_postgres::Object,
}

/// The app's Postgres pools, one per connection string, shared by all
/// components and requests (Spin's `PooledTokioClientFactory`, created once
/// per app).
#[derive(Default)]
pub struct PgPools {
    /// Least recently used first.
    pools: Mutex<Vec<(String, Pool)>>,
}

impl std::fmt::Debug for PgPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("PgPools")
            .field("addresses", &pools.len())
            .finish()
    }
}

impl PgPools {
    /// A connection from the pool for `address`, creating the pool first if
    /// needed (Spin's `PooledTokioClientFactory::get_client`).
    async fn get_client(&self, address: &str) -> anyhow::Result<deadpool_postgres::Object> {
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            match pools.iter().position(|(a, _)| a == address) {
                Some(i) => {
                    let entry = pools.remove(i);
                    let pool = entry.1.clone();
                    pools.push(entry);
                    pool
                }
                None => {
                    let pool = create_connection_pool(address)
                        .context("establishing PostgreSQL connection pool")?;
                    pools.push((address.to_string(), pool.clone()));
                    if pools.len() > CONNECTION_POOL_CACHE_CAPACITY {
                        pools.remove(0);
                    }
                    pool
                }
            }
        };
        Ok(pool.get().await?)
    }
}

/// Spin's `create_connection_pool` (`src/client.rs`), without TLS.
fn create_connection_pool(address: &str) -> anyhow::Result<Pool> {
    let config = address
        .parse::<tokio_postgres::Config>()
        .context("parsing Postgres connection string")?;
    let mgr_config = ManagerConfig {
        recycling_method: RecyclingMethod::Clean,
    };
    let mgr = Manager::from_config(config, NoTls, mgr_config);
    Pool::builder(mgr)
        .max_size(CONNECTION_POOL_SIZE)
        .build()
        .context("building Postgres connection pool")
}

/// Spin's `AllowedHostChecker::ensure_address_allowed`
/// (`src/allowed_hosts.rs`), checking against the component's
/// `allowed_outbound_hosts` as Spin's `OutboundAllowedHosts::check_url`.
fn ensure_address_allowed(
    allowed: &crate::outbound::AllowedHosts,
    component: &str,
    address: &str,
) -> Result<(), v4::Error> {
    let config = address
        .parse::<tokio_postgres::Config>()
        .map_err(|e| v4::Error::ConnectionFailed(e.to_string()))?;
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        match host {
            tokio_postgres::config::Host::Tcp(host) => {
                // The port at the host's index, else the only port.
                let port = ports.get(i).or_else(|| {
                    if ports.len() == 1 {
                        ports.first()
                    } else {
                        None
                    }
                });
                let url = match port {
                    Some(port) => format!("{host}:{port}"),
                    None => host.clone(),
                };
                let (scheme, url_host, url_port) =
                    outbound_url(&url, "postgres").map_err(|e| v4::Error::Other(e.to_string()))?;
                if !allowed.allows(&scheme, &url_host, url_port) {
                    eprintln!(
                        "[{component}] outbound postgres connection to {scheme}://{url_host}:\
                         {url_port} denied: not in allowed_outbound_hosts"
                    );
                    return Err(v4::Error::ConnectionFailed(format!(
                        "address postgres://{url} is not permitted"
                    )));
                }
            }
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => {
                return Err(v4::Error::ConnectionFailed(
                    "Unix sockets are not supported on WebAssembly".to_string(),
                ));
            }
        }
    }
    Ok(())
}

/// `(scheme, host, port)` of an outbound URL as Spin's `OutboundUrl::parse`
/// reads it (`spin-outbound-networking-config`, `allowed_hosts.rs`): as a URL
/// if it has a host, else as `<scheme>://<url>`; no port means the scheme's
/// well-known one. Errors prefer the first attempt's, as Spin's do.
fn outbound_url(url: &str, scheme: &str) -> anyhow::Result<(String, String, u16)> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => parsed,
        first => match (url::Url::parse(&format!("{scheme}://{url}")), first) {
            (Ok(parsed), _) => parsed,
            (_, Err(e)) => return Err(e.into()),
            (Err(e), _) => {
                return Err(anyhow::Error::from(e).context("could not convert into a url"))
            }
        },
    };
    let host = parsed
        .host_str()
        .with_context(|| format!("{url:?} does not have a host component"))?
        .to_string();
    let scheme = parsed.scheme().to_string();
    let port = parsed
        .port()
        .or_else(|| crate::outbound::default_port(&scheme))
        .unwrap_or(0);
    Ok((scheme, host, port))
}

impl HostState {
    fn pg_client(
        &self,
        connection: &Resource<PgConnection>,
    ) -> Result<&deadpool_postgres::Object, v4::Error> {
        self.table
            .get(connection)
            .map(|c| &c.client)
            .map_err(|_| v4::Error::ConnectionFailed("no connection found".into()))
    }
}

impl v4::Host for HostState {}

impl v4::HostConnection for HostState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, v4::Error>> {
        if let Err(e) = ensure_address_allowed(&self.hooks.allowed, &self.component.id, &address) {
            return Ok(Err(e));
        }
        let stores = self.app_stores.clone();
        let client = match stores.postgres.get_client(&address).await {
            Ok(client) => client,
            // Spin formats the chain with `{e:?}`, which also prints a captured
            // backtrace; the chain alone keeps the logs readable.
            Err(e) => return Ok(Err(v4::Error::ConnectionFailed(format!("{e:#}")))),
        };
        match self.table.push(PgConnection { client }) {
            Ok(handle) => Ok(Ok(handle)),
            Err(_) => Ok(Err(v4::Error::ConnectionFailed(
                "too many connections".into(),
            ))),
        }
    }

    async fn query(
        &mut self,
        self_: Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<v4::RowSet, v4::Error>> {
        let client = match self.pg_client(&self_) {
            Ok(client) => client,
            Err(e) => return Ok(Err(e)),
        };
        Ok(query(client, &statement, &params).await)
    }

    async fn execute(
        &mut self,
        self_: Resource<PgConnection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v4::Error>> {
        let client = match self.pg_client(&self_) {
            Ok(client) => client,
            Err(e) => return Ok(Err(e)),
        };
        Ok(execute(client, &statement, &params).await)
    }

    async fn drop(&mut self, rep: Resource<PgConnection>) -> wasmtime::Result<()> {
        // Dropping the pooled object hands the connection back to its pool.
        self.table.delete(rep)?;
        Ok(())
    }
}

type SqlParam = Box<dyn ToSql + Send + Sync>;

fn sql_params(params: &[v4::ParameterValue]) -> anyhow::Result<Vec<SqlParam>> {
    params.iter().map(to_sql_parameter).collect()
}

fn param_refs(params: &[SqlParam]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Spin's `Client::execute` for `deadpool_postgres::Object`.
async fn execute(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: &[v4::ParameterValue],
) -> Result<u64, v4::Error> {
    let params =
        sql_params(params).map_err(|e| v4::Error::ValueConversionFailed(format!("{e:?}")))?;
    let client: &tokio_postgres::Client = client;
    client
        .execute(statement, &param_refs(&params))
        .await
        .map_err(query_failed)
}

/// Spin's `Client::query` for `deadpool_postgres::Object`.
async fn query(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: &[v4::ParameterValue],
) -> Result<v4::RowSet, v4::Error> {
    let params = sql_params(params).map_err(|e| v4::Error::BadParameter(format!("{e:?}")))?;
    let client: &tokio_postgres::Client = client;
    let rows = client
        .query(statement, &param_refs(&params))
        .await
        .map_err(query_failed)?;
    let Some(first) = rows.first() else {
        return Ok(v4::RowSet {
            columns: vec![],
            rows: vec![],
        });
    };
    let columns = first
        .columns()
        .iter()
        .map(|c| v4::Column {
            name: c.name().to_string(),
            data_type: convert_data_type(c.type_()),
        })
        .collect();
    let rows = rows
        .iter()
        .map(|row| (0..row.len()).map(|i| convert_entry(row, i)).collect())
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| v4::Error::QueryFailed(v4::QueryError::Text(format!("{e:?}"))))?;
    Ok(v4::RowSet { columns, rows })
}

/// Spin's `query_failed`: server errors keep their fields, anything else is
/// text.
fn query_failed(e: tokio_postgres::Error) -> v4::Error {
    let as_text = format!("{e:?}");
    let query_error = match e.as_db_error() {
        None => v4::QueryError::Text(as_text),
        Some(db) => v4::QueryError::DbError(v4::DbError {
            as_text,
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras: db_error_extras(db),
        }),
    };
    v4::Error::QueryFailed(query_error)
}

/// Spin's `pg_extras`: the remaining error fields, named as the driver's
/// accessors (hence `where_`), in Spin's order.
fn db_error_extras(db: &tokio_postgres::error::DbError) -> Vec<(String, String)> {
    let line = db.line().map(|l| l.to_string());
    [
        ("column", db.column()),
        ("constraint", db.constraint()),
        ("routine", db.routine()),
        ("hint", db.hint()),
        ("table", db.table()),
        ("datatype", db.datatype()),
        ("schema", db.schema()),
        ("file", db.file()),
        ("line", line.as_deref()),
        ("where_", db.where_()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name.to_string(), v.to_string())))
    .collect()
}

/// Spin's `convert_data_type` (`src/types.rs`): the column type the guest
/// sees. Types without a WIT case are `other(<Postgres type name>)`.
pub fn convert_data_type(pg_type: &Type) -> v4::DbDataType {
    use v4::DbDataType as D;
    match *pg_type {
        Type::BOOL => D::Boolean,
        Type::BYTEA => D::Binary,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => D::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::UUID => D::Uuid,
        Type::JSONB => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_RANGE => D::RangeInt32,
        Type::INT8_RANGE => D::RangeInt64,
        Type::NUM_RANGE => D::RangeDecimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::NUMERIC_ARRAY => D::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        _ => D::Other(pg_type.name().to_string()),
    }
}

/// `Some(v)` → `ctor(convert(v))`, SQL NULL → `db-null`.
fn entry<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    convert: impl FnOnce(T) -> anyhow::Result<v4::DbValue>,
) -> anyhow::Result<v4::DbValue> {
    match row.try_get::<_, Option<T>>(index)? {
        Some(value) => convert(value),
        None => Ok(v4::DbValue::DbNull),
    }
}

/// Spin's `convert_entry` (`src/types.rs`): one column of one row. A value
/// of a type without a WIT case is `unsupported(<its binary wire bytes>)`.
pub fn convert_entry(row: &Row, index: usize) -> anyhow::Result<v4::DbValue> {
    use v4::DbValue as V;
    let ty = row.columns()[index].type_().clone();
    match ty {
        Type::BOOL => entry(row, index, |v| Ok(V::Boolean(v))),
        Type::BYTEA => entry(row, index, |v| Ok(V::Binary(v))),
        Type::FLOAT4 => entry(row, index, |v| Ok(V::Floating32(v))),
        Type::FLOAT8 => entry(row, index, |v| Ok(V::Floating64(v))),
        Type::INT2 => entry(row, index, |v| Ok(V::Int16(v))),
        Type::INT4 => entry(row, index, |v| Ok(V::Int32(v))),
        Type::INT8 => entry(row, index, |v| Ok(V::Int64(v))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => entry(row, index, |v| Ok(V::Str(v))),
        // As in Spin, `timestamptz` is read as a naive timestamp too, which
        // the driver refuses for that type.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            entry(row, index, |v| datetime_pg_to_wit(v).map(V::Datetime))
        }
        Type::DATE => entry(row, index, |v| date_pg_to_wit(v).map(V::Date)),
        Type::TIME => entry(row, index, |v| time_pg_to_wit(v).map(V::Time)),
        Type::UUID => entry(row, index, |v: uuid::Uuid| Ok(V::Uuid(v.to_string()))),
        Type::JSONB => entry(row, index, |v: serde_json::Value| {
            Ok(V::Jsonb(
                serde_json::to_vec(&v).context("invalid JSON from database")?,
            ))
        }),
        Type::NUMERIC => entry(row, index, |v: rust_decimal::Decimal| {
            Ok(V::Decimal(v.to_string()))
        }),
        Type::INT4_RANGE => entry(row, index, |v| Ok(V::RangeInt32(range_pg_to_wit(&v)))),
        Type::INT8_RANGE => entry(row, index, |v| Ok(V::RangeInt64(range_pg_to_wit(&v)))),
        Type::NUM_RANGE => entry(row, index, |v: postgres_range::Range<RangeableDecimal>| {
            Ok(V::RangeDecimal((
                v.lower()
                    .map(|b| (b.value.0.to_string(), bound_kind_pg_to_wit(b.type_))),
                v.upper()
                    .map(|b| (b.value.0.to_string(), bound_kind_pg_to_wit(b.type_))),
            )))
        }),
        Type::INT4_ARRAY => entry(row, index, |v| Ok(V::ArrayInt32(v))),
        Type::INT8_ARRAY => entry(row, index, |v| Ok(V::ArrayInt64(v))),
        Type::NUMERIC_ARRAY => entry(row, index, |v: Vec<Option<rust_decimal::Decimal>>| {
            Ok(V::ArrayDecimal(
                v.into_iter().map(|d| d.map(|d| d.to_string())).collect(),
            ))
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            entry(row, index, |v| Ok(V::ArrayStr(v)))
        }
        Type::INTERVAL => entry(row, index, |v: Interval| Ok(V::Interval(v.0))),
        _ => entry(row, index, |v: Other| Ok(V::Unsupported(v.0))),
    }
}

/// Spin's `to_sql_parameter` (`src/types.rs`): a guest parameter as a
/// driver value. The driver then checks it against the placeholder's type
/// (e.g. `int8(s8)` is Rust `i8`, which only fits Postgres `"char"`;
/// `timestamp(s64)` is a UTC instant, which only fits `timestamptz`).
pub fn to_sql_parameter(value: &v4::ParameterValue) -> anyhow::Result<SqlParam> {
    use v4::ParameterValue as P;
    Ok(match value {
        P::Boolean(v) => Box::new(*v),
        P::Int32(v) => Box::new(*v),
        P::Int64(v) => Box::new(*v),
        P::Int8(v) => Box::new(*v),
        P::Int16(v) => Box::new(*v),
        P::Floating32(v) => Box::new(*v),
        P::Floating64(v) => Box::new(*v),
        P::Str(v) => Box::new(v.clone()),
        P::Binary(v) => Box::new(v.clone()),
        P::Date(v) => Box::new(date_wit_to_pg(v)?),
        P::Time(v) => Box::new(time_wit_to_pg(v)?),
        P::Datetime(v) => Box::new(datetime_wit_to_pg(v)?),
        P::Timestamp(v) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(*v, 0)
                .ok_or_else(|| anyhow!("invalid epoch timestamp {v}"))?,
        ),
        P::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).with_context(|| format!("invalid UUID {v}"))?)
        }
        P::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(v)
                .with_context(|| format!("invalid JSON {}", String::from_utf8_lossy(v)))?,
        ),
        P::Decimal(v) => Box::new(decimal_wit_to_pg(v)?),
        P::RangeInt32(v) => Box::new(range_wit_to_pg(*v)),
        P::RangeInt64(v) => Box::new(range_wit_to_pg(*v)),
        P::RangeDecimal((lower, upper)) => {
            let bound = |b: &Option<(String, v4::RangeBoundKind)>| {
                b.as_ref()
                    .map(|(value, kind)| {
                        decimal_wit_to_pg(value)
                            .map(|d| (RangeableDecimal(d), bound_kind_wit_to_pg(*kind)))
                    })
                    .transpose()
            };
            let lower = bound(lower)?.map(|(v, k)| postgres_range::RangeBound::new(v, k));
            let upper = bound(upper)?.map(|(v, k)| postgres_range::RangeBound::new(v, k));
            Box::new(postgres_range::Range::new(lower, upper))
        }
        P::ArrayInt32(v) => Box::new(v.clone()),
        P::ArrayInt64(v) => Box::new(v.clone()),
        P::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal_wit_to_pg).transpose())
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        P::ArrayStr(v) => Box::new(v.clone()),
        P::Interval(v) => Box::new(Interval(*v)),
        P::DbNull => Box::new(PgNull),
    })
}

fn decimal_wit_to_pg(value: &str) -> anyhow::Result<rust_decimal::Decimal> {
    rust_decimal::Decimal::from_str_exact(value).with_context(|| format!("invalid decimal {value}"))
}

fn date_wit_to_pg(&(y, mon, d): &(i32, u8, u8)) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(y, mon.into(), d.into())
        .ok_or_else(|| anyhow!("invalid date y={y}, m={mon}, d={d}"))
}

fn time_wit_to_pg(&(h, min, s, ns): &(u8, u8, u8, u32)) -> anyhow::Result<chrono::NaiveTime> {
    chrono::NaiveTime::from_hms_nano_opt(h.into(), min.into(), s.into(), ns)
        .ok_or_else(|| anyhow!("invalid time {h}:{min}:{s}:{ns}"))
}

fn datetime_wit_to_pg(
    &(y, mon, d, h, min, s, ns): &(i32, u8, u8, u8, u8, u8, u32),
) -> anyhow::Result<chrono::NaiveDateTime> {
    Ok(chrono::NaiveDateTime::new(
        date_wit_to_pg(&(y, mon, d))?,
        time_wit_to_pg(&(h, min, s, ns))?,
    ))
}

fn date_pg_to_wit(value: chrono::NaiveDate) -> anyhow::Result<(i32, u8, u8)> {
    use chrono::Datelike;
    Ok((
        value.year(),
        value.month().try_into()?,
        value.day().try_into()?,
    ))
}

fn time_pg_to_wit(value: chrono::NaiveTime) -> anyhow::Result<(u8, u8, u8, u32)> {
    use chrono::Timelike;
    Ok((
        value.hour().try_into()?,
        value.minute().try_into()?,
        value.second().try_into()?,
        value.nanosecond(),
    ))
}

fn datetime_pg_to_wit(
    value: chrono::NaiveDateTime,
) -> anyhow::Result<(i32, u8, u8, u8, u8, u8, u32)> {
    let (y, mon, d) = date_pg_to_wit(value.date())?;
    let (h, min, s, ns) = time_pg_to_wit(value.time())?;
    Ok((y, mon, d, h, min, s, ns))
}

type WitRange<T> = (
    Option<(T, v4::RangeBoundKind)>,
    Option<(T, v4::RangeBoundKind)>,
);

fn range_pg_to_wit<T: Copy + PartialOrd + postgres_range::Normalizable>(
    value: &postgres_range::Range<T>,
) -> WitRange<T> {
    (
        value
            .lower()
            .map(|b| (b.value, bound_kind_pg_to_wit(b.type_))),
        value
            .upper()
            .map(|b| (b.value, bound_kind_pg_to_wit(b.type_))),
    )
}

/// A WIT range as a driver range; `postgres_range` normalises integer
/// bounds to `[lower, upper)` as Postgres does.
fn range_wit_to_pg<T: PartialOrd + postgres_range::Normalizable>(
    (lower, upper): WitRange<T>,
) -> postgres_range::Range<T> {
    postgres_range::Range::new(
        lower.map(|(v, k)| postgres_range::RangeBound::new(v, bound_kind_wit_to_pg(k))),
        upper.map(|(v, k)| postgres_range::RangeBound::new(v, bound_kind_wit_to_pg(k))),
    )
}

fn bound_kind_wit_to_pg(kind: v4::RangeBoundKind) -> postgres_range::BoundType {
    match kind {
        v4::RangeBoundKind::Inclusive => postgres_range::BoundType::Inclusive,
        v4::RangeBoundKind::Exclusive => postgres_range::BoundType::Exclusive,
    }
}

fn bound_kind_pg_to_wit(kind: postgres_range::BoundType) -> v4::RangeBoundKind {
    match kind {
        postgres_range::BoundType::Inclusive => v4::RangeBoundKind::Inclusive,
        postgres_range::BoundType::Exclusive => v4::RangeBoundKind::Exclusive,
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A `numeric` range bound (Spin's `RangeableDecimal`): decimals are not
/// discrete, so their bounds are left as they are.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct RangeableDecimal(rust_decimal::Decimal);

impl postgres_range::Normalizable for RangeableDecimal {
    fn normalize<S: postgres_range::BoundSided>(
        bound: postgres_range::RangeBound<S, Self>,
    ) -> postgres_range::RangeBound<S, Self> {
        bound
    }
}

impl<'a> FromSql<'a> for RangeableDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        rust_decimal::Decimal::from_sql(ty, raw).map(RangeableDecimal)
    }

    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as FromSql>::accepts(ty)
    }
}

impl ToSql for RangeableDecimal {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

/// `interval` in its binary form: microseconds, days, months (Spin's
/// `src/types/interval.rs`).
#[derive(Debug)]
struct Interval(v4::Interval);

impl ToSql for Interval {
    fn to_sql(&self, _ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        use bytes::BufMut;
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("unexpected binary format for Postgres INTERVAL".into());
        }
        let micros = i64::from_be_bytes(raw[0..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..16].try_into()?);
        Ok(Interval(v4::Interval {
            micros,
            days,
            months,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// `db-null`: SQL NULL for a placeholder of any type.
#[derive(Debug)]
struct PgNull;

impl ToSql for PgNull {
    fn to_sql(&self, _ty: &Type, _out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A value of a type the WIT has no case for: its raw binary wire bytes.
struct Other(Vec<u8>);

impl<'a> FromSql<'a> for Other {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Other(raw.to_vec()))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> crate::outbound::AllowedHosts {
        crate::outbound::AllowedHosts::parse(
            &entries.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn check(entries: &[&str], address: &str) -> Result<(), String> {
        ensure_address_allowed(&allowed(entries), "test", address).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn addresses_are_checked_like_spin() {
        let db = ["postgres://db.internal:5433"];
        assert_eq!(check(&db, "postgres://u:p@db.internal:5433/shop"), Ok(()));
        assert_eq!(
            check(&db, "host=db.internal port=5433 user=u dbname=shop"),
            Ok(())
        );
        let denied = check(&db, "postgres://u:p@db.internal:5434/shop").unwrap_err();
        assert!(
            denied.contains("ConnectionFailed")
                && denied.contains("address postgres://db.internal:5434 is not permitted"),
            "{denied}"
        );
        // No port: 5432, on both sides.
        assert_eq!(check(&["postgres://db"], "postgres://db/shop"), Ok(()));
        assert_eq!(check(&["postgres://db"], "host=db"), Ok(()));
        assert!(check(&["postgres://db"], "postgres://db:5433/shop").is_err());
        assert_eq!(
            check(&["postgres://db:*"], "postgres://db:6000/shop"),
            Ok(())
        );
        // Every host of a multi-host address must be allowed.
        assert_eq!(
            check(
                &["postgres://a:1", "postgres://b:2"],
                "postgres://a:1,b:2/x"
            ),
            Ok(())
        );
        assert!(check(&["postgres://a:1"], "postgres://a:1,b:2/x").is_err());
        // Another scheme's grant does not cover postgres.
        assert!(check(&["redis://db.internal:5433"], "postgres://db.internal:5433").is_err());
        assert!(check(&[], "postgres://db.internal:5433").is_err());
        let unix = check(&["*://*:*"], "host=/var/run/postgresql").unwrap_err();
        assert!(
            unix.contains("Unix sockets are not supported on WebAssembly"),
            "{unix}"
        );
        let bad = check(&["*://*:*"], "postgres://db:notaport/x").unwrap_err();
        assert!(
            bad.contains("ConnectionFailed") && bad.contains("invalid"),
            "{bad}"
        );
        // Spin's URL check cannot read an IPv6 literal followed by a port.
        let v6 = check(&["*://*:*"], "postgres://[::1]:5432/x").unwrap_err();
        assert!(
            v6.contains("Other(\"relative URL without a base\")"),
            "{v6}"
        );
    }

    #[test]
    fn parameters_convert_like_spin() {
        use v4::ParameterValue as P;
        assert!(to_sql_parameter(&P::Uuid("not-a-uuid".into())).is_err());
        assert!(to_sql_parameter(&P::Decimal("1.2.3".into())).is_err());
        assert!(to_sql_parameter(&P::Jsonb(b"{".to_vec())).is_err());
        assert!(to_sql_parameter(&P::Date((2024, 2, 30))).is_err());
        assert!(to_sql_parameter(&P::Time((24, 0, 0, 0))).is_err());
        assert!(to_sql_parameter(&P::Timestamp(i64::MAX)).is_err());
        assert!(to_sql_parameter(&P::Decimal("-12.50".into())).is_ok());
        assert!(to_sql_parameter(&P::ArrayDecimal(vec![Some("1".into()), None])).is_ok());
    }

    #[test]
    fn integer_ranges_normalise_to_half_open() {
        use v4::RangeBoundKind::{Exclusive, Inclusive};
        let r = range_wit_to_pg((Some((1i32, Exclusive)), Some((10, Inclusive))));
        assert_eq!(
            range_pg_to_wit(&r),
            (Some((2, Inclusive)), Some((11, Exclusive)))
        );
        let empty = range_wit_to_pg((Some((5i64, Inclusive)), Some((5, Exclusive))));
        assert!(empty.is_empty());
        assert_eq!(range_pg_to_wit(&empty), (None, None));
    }
}
