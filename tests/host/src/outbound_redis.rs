//! Outbound Redis: `fermyon:spin/redis@2.0.0`.
//!
//! As in Spin, `open(address)` first checks the address against the
//! component's `allowed_outbound_hosts` (scheme `redis`, host, port; no port
//! means 6379) and refuses with `invalid-address` if no entry matches or the
//! address cannot be parsed. An allowed address gets its own multiplexed
//! async connection (the `redis` crate); a connection failure is `other`.
//! Like Spin's (redis crate 0.32), replies have no time limit, so blocking
//! commands such as `BLPOP` work through `execute`; connecting is bounded by
//! [`CONNECT_TIMEOUT`] (Spin leaves that to the OS) so a test cannot hang on
//! an unroutable address. An
//! instance may hold at most 1024 open connections (`too-many-connections`),
//! Spin's per-instance table size.
//!
//! The commands map onto the `redis` crate's as in Spin's host, including
//! its error mapping: everything the server rejects (`WRONGTYPE`, a
//! non-integer for `incr`, an unknown command) is `other(message)`;
//! `type-error` only comes from `sadd` when the reply itself has an
//! unexpected type. `execute` flattens nested arrays into one list of
//! `redis-result`s (nil, status, int64, binary; doubles and big numbers as
//! their decimal text, booleans as 0/1), and refuses maps, attributes,
//! verbatim strings and push messages with `other`.
//!
//! Only plain `redis://` is supported: `rediss://` (TLS) is refused with
//! `invalid-address` since the host is built without TLS support.

use crate::bindings::fermyon::spin::redis as v2;
use crate::outbound::default_port;
use crate::state::HostState;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig, RedisResult, Value};
use std::time::Duration;
use wasmtime::component::Resource;

/// Spin's per-instance limit on open Redis connections.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long `open` waits for the TCP connection and handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The host side of a guest's `connection` resource.
pub struct RedisConnection {
    conn: MultiplexedConnection,
}

/// `(scheme, host, port)` of an `open` address, parsed as Spin does: as a
/// URL, or as `redis://<address>` when it has no scheme or host. The port
/// defaults to the scheme's well-known port (0: none known). `None` when it
/// cannot be parsed.
fn address_target(address: &str) -> Option<(String, String, u16)> {
    // Spin percent-encodes the userinfo first, so a password with URL
    // delimiters in it does not change where the host appears to be.
    let mut url = address.to_string();
    if let Some(at) = url.find('@') {
        let scheme_end = url.find("://").map(|e| e + 3).unwrap_or(0);
        let path_start = url[scheme_end..]
            .find('/')
            .map(|e| e + scheme_end)
            .unwrap_or(url.len());
        if scheme_end <= at && at < path_start {
            let userinfo = &url[scheme_end..at];
            let encoded: String = userinfo
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            url = format!("{}{encoded}{}", &url[..scheme_end], &url[at..]);
        }
    }
    let parsed = match url::Url::parse(&url) {
        Ok(parsed) if parsed.has_host() => parsed,
        _ => url::Url::parse(&format!("redis://{url}")).ok()?,
    };
    let scheme = parsed.scheme().to_ascii_lowercase();
    let host = parsed.host_str()?.to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let port = parsed.port().or_else(|| default_port(&scheme)).unwrap_or(0);
    Some((scheme, host, port))
}

fn other(e: impl std::fmt::Display) -> v2::Error {
    v2::Error::Other(e.to_string())
}

impl HostState {
    fn redis_conn(
        &self,
        connection: &Resource<RedisConnection>,
    ) -> wasmtime::Result<MultiplexedConnection> {
        Ok(self.table.get(connection)?.conn.clone())
    }
}

/// `execute`'s reply as the flat list the WIT returns.
fn results(value: Value, out: &mut Vec<v2::RedisResult>) -> Result<(), v2::Error> {
    let unsupported = |what: &str| {
        Err(v2::Error::Other(format!(
            "Could not convert Redis response: Redis {what} type is not supported"
        )))
    };
    match value {
        Value::Nil => out.push(v2::RedisResult::Nil),
        Value::Int(v) => out.push(v2::RedisResult::Int64(v)),
        Value::BulkString(bytes) => out.push(v2::RedisResult::Binary(bytes)),
        Value::SimpleString(s) => out.push(v2::RedisResult::Status(s)),
        Value::Okay => out.push(v2::RedisResult::Status("OK".to_string())),
        Value::Array(values) | Value::Set(values) => {
            for value in values {
                results(value, out)?;
            }
        }
        Value::Double(v) => out.push(v2::RedisResult::Binary(v.to_string().into_bytes())),
        Value::Boolean(v) => out.push(v2::RedisResult::Int64(i64::from(v))),
        // Without the crate's `num-bigint` feature this is the decimal text.
        Value::BigNumber(digits) => out.push(v2::RedisResult::Binary(digits)),
        Value::Map(_) => return unsupported("Map"),
        Value::Attribute { .. } => return unsupported("Attribute"),
        Value::VerbatimString { .. } => return unsupported("verbatim string"),
        Value::Push { .. } => return unsupported("Pub/Sub"),
        Value::ServerError(e) => return Err(other(redis::RedisError::from(e))),
        // `Value` is non-exhaustive.
        #[allow(unreachable_patterns)]
        other_value => {
            return Err(v2::Error::Other(format!(
                "Could not convert Redis response: {other_value:?}"
            )))
        }
    }
    Ok(())
}

impl v2::Host for HostState {}

impl v2::HostConnection for HostState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, v2::Error>> {
        let allowed = match address_target(&address) {
            Some((scheme, host, port)) => {
                let allowed = self.hooks.allowed.allows(&scheme, &host, port);
                if !allowed {
                    eprintln!(
                        "[{}] outbound redis connection to {scheme}://{host}:{port} denied: not \
                         in allowed_outbound_hosts",
                        self.component.id
                    );
                }
                allowed
            }
            None => {
                eprintln!(
                    "[{}] outbound redis address {address:?} denied: it cannot be parsed",
                    self.component.id
                );
                false
            }
        };
        if !allowed {
            return Ok(Err(v2::Error::InvalidAddress));
        }
        if self.redis_connections >= MAX_CONNECTIONS {
            return Ok(Err(v2::Error::TooManyConnections));
        }
        let client = match redis::Client::open(address.as_str()) {
            Ok(client) => client,
            Err(e) => {
                eprintln!(
                    "[{}] outbound redis address {address:?} rejected: {e}",
                    self.component.id
                );
                return Ok(Err(v2::Error::InvalidAddress));
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let conn = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(other(e))),
        };
        let handle = self.table.push(RedisConnection { conn })?;
        self.redis_connections += 1;
        Ok(Ok(handle))
    }

    async fn publish(
        &mut self,
        self_: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<()> = conn.publish(&channel, &payload).await;
        Ok(reply.map_err(other))
    }

    async fn get(
        &mut self,
        self_: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<Option<Vec<u8>>> = conn.get(&key).await;
        Ok(reply.map_err(other))
    }

    async fn set(
        &mut self,
        self_: Resource<RedisConnection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<()> = conn.set(&key, &value).await;
        Ok(reply.map_err(other))
    }

    async fn incr(
        &mut self,
        self_: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<i64> = conn.incr(&key, 1).await;
        Ok(reply.map_err(other))
    }

    async fn del(
        &mut self,
        self_: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<u32> = conn.del(&keys).await;
        Ok(reply.map_err(other))
    }

    async fn sadd(
        &mut self,
        self_: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<u32> = conn.sadd(&key, &values).await;
        Ok(reply.map_err(|e| {
            if e.kind() == redis::ErrorKind::UnexpectedReturnType {
                v2::Error::TypeError
            } else {
                other(e)
            }
        }))
    }

    async fn smembers(
        &mut self,
        self_: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<Vec<String>> = conn.smembers(&key).await;
        Ok(reply.map_err(other))
    }

    async fn srem(
        &mut self,
        self_: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let reply: RedisResult<u32> = conn.srem(&key, &values).await;
        Ok(reply.map_err(other))
    }

    async fn execute(
        &mut self,
        self_: Resource<RedisConnection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<v2::RedisResult>, v2::Error>> {
        let mut conn = self.redis_conn(&self_)?;
        let mut cmd = redis::cmd(&command);
        for argument in &arguments {
            match argument {
                v2::RedisParameter::Int64(v) => cmd.arg(*v),
                v2::RedisParameter::Binary(v) => cmd.arg(v.as_slice()),
            };
        }
        let value = match cmd.query_async::<Value>(&mut conn).await {
            Ok(value) => value,
            Err(e) => return Ok(Err(other(e))),
        };
        let mut out = Vec::new();
        Ok(results(value, &mut out).map(|()| out))
    }

    async fn drop(&mut self, rep: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        self.redis_connections = self.redis_connections.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: &str) -> Option<(String, String, u16)> {
        address_target(address)
    }

    #[test]
    fn addresses_parse_like_spin() {
        let t = |s: &str, h: &str, p: u16| Some((s.to_string(), h.to_string(), p));
        assert_eq!(
            target("redis://127.0.0.1:6380"),
            t("redis", "127.0.0.1", 6380)
        );
        assert_eq!(
            target("redis://Cache.Example.com"),
            t("redis", "cache.example.com", 6379)
        );
        assert_eq!(target("redis://cache:7000/2"), t("redis", "cache", 7000));
        assert_eq!(target("localhost:7000"), t("redis", "localhost", 7000));
        assert_eq!(target("cache"), t("redis", "cache", 6379));
        assert_eq!(
            target("redis://:secret@cache:1234"),
            t("redis", "cache", 1234)
        );
        assert_eq!(
            target("redis://u:p@ss@cache:1234"),
            t("redis", "cache", 1234)
        );
        assert_eq!(target("redis://[::1]:1234"), t("redis", "[::1]", 1234));
        assert_eq!(target("rediss://cache"), t("rediss", "cache", 0));
        assert_eq!(target(""), None);
    }

    #[test]
    fn nested_replies_flatten() {
        let mut out = Vec::new();
        results(
            Value::Array(vec![
                Value::BulkString(b"a".to_vec()),
                Value::Nil,
                Value::Array(vec![Value::Int(3), Value::Okay]),
                Value::Boolean(true),
                Value::Double(1.5),
            ]),
            &mut out,
        )
        .unwrap();
        let rendered: Vec<String> = out.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(rendered.len(), 6);
        assert!(matches!(out[1], v2::RedisResult::Nil));
        assert!(matches!(out[2], v2::RedisResult::Int64(3)));
        assert!(matches!(&out[3], v2::RedisResult::Status(s) if s == "OK"));
        assert!(matches!(out[4], v2::RedisResult::Int64(1)));
        assert!(matches!(&out[5], v2::RedisResult::Binary(b) if b == b"1.5"));
        assert!(results(Value::Map(vec![]), &mut Vec::new()).is_err());
    }
}
