//! Outbound HTTP: `allowed_outbound_hosts` enforcement and request dispatch.
//!
//! Every guest request passes through [`OutboundHooks::send_request`]
//! (wasmtime-wasi-http's hook). It fails closed with `HttpRequestDenied`,
//! as Spin does, unless an `allowed_outbound_hosts` entry matches scheme,
//! host and port. Allowed requests go:
//!
//! * to `<id>.spin.internal`: straight to that component (private or not),
//!   in process, no socket;
//! * to `self` / `self.alt`: through this app's router, in process;
//! * anywhere else over plain HTTP with hyper. HTTPS is refused with a
//!   clear error: tests point external services at loopback fakes. The
//!   guest's `request-options` timeouts apply as in wasmtime-wasi-http's
//!   `default_send_request` (600 s each when unset): connect (incl. the
//!   HTTP handshake) → `ConnectionTimeout`, first byte and between bytes →
//!   `ConnectionReadTimeout`.
//!
//! The request body is always pumped through [`draining`], so a receiver
//! that answers without reading it (a denied request, a fake that ignores
//! the body, a guest that never reads it) does not leave the sending guest
//! writing into a closed stream.

use crate::server::App;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain (not the bare domain).
    Subdomain(String),
    /// `self` / `self.alt`: this application.
    SelfApp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// No port written: the scheme's default port.
    Default,
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// `None` means `*`.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

/// A component's parsed `allowed_outbound_hosts` (templates already expanded).
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    pub fn parse(entries: &[String]) -> Result<AllowedHosts> {
        let entries = entries
            .iter()
            .map(|e| {
                parse_entry(e)
                    .with_context(|| format!("invalid allowed_outbound_hosts entry {e:?}"))
            })
            .collect::<Result<_>>()?;
        Ok(AllowedHosts { entries })
    }

    /// Whether a request to `scheme://host:port` is allowed.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.entries.iter().any(|e| {
            let scheme_ok = e.scheme.as_deref().is_none_or(|s| s == scheme);
            let host_ok = match &e.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => *h == host,
                HostPattern::Subdomain(domain) => host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                HostPattern::SelfApp => host == "self" || host == "self.alt",
            };
            let port_ok = match e.port {
                PortPattern::Any => true,
                PortPattern::Default => default_port(scheme) == Some(port),
                PortPattern::Range(lo, hi) => (lo..=hi).contains(&port),
            };
            scheme_ok && host_ok && port_ok
        })
    }
}

/// The port an address or `allowed_outbound_hosts` entry without one means.
pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" => Some(6379),
        // Spin's other well-known ports (`spin-outbound-networking-config`).
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "mqtt" => Some(1883),
        _ => None,
    }
}

fn parse_entry(entry: &str) -> Result<AllowedHost> {
    let (scheme, rest) = entry
        .split_once("://")
        .context("an entry needs a scheme, e.g. `https://example.com`")?;
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-') =>
        {
            Some(s.to_ascii_lowercase())
        }
        s => bail!("invalid scheme {s:?}"),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        bail!("paths are not allowed");
    }
    let (host, port) = if let Some(v6_end) = authority.find(']') {
        let host = &authority[..=v6_end];
        (host, authority[v6_end + 1..].strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => PortPattern::Default,
        Some("*") => PortPattern::Any,
        Some(p) => match p.split_once("..") {
            // `a..b` leaves `b` out, as a Rust range does and as Spin reads it.
            Some((lo, hi)) => {
                let (lo, hi): (u16, u16) = (lo.parse()?, hi.parse()?);
                if hi <= lo {
                    bail!("empty port range {lo}..{hi}");
                }
                PortPattern::Range(lo, hi - 1)
            }
            None => {
                let p: u16 = p.parse().context("invalid port")?;
                PortPattern::Range(p, p)
            }
        },
    };
    if port == PortPattern::Default && scheme.is_none() {
        bail!("a `*` scheme needs an explicit port (e.g. `*://example.com:*`)");
    }
    let host = host.to_ascii_lowercase();
    let host = match host.as_str() {
        "" => bail!("missing host"),
        "*" => HostPattern::Any,
        "self" | "self.alt" => HostPattern::SelfApp,
        h => match h.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => {
                HostPattern::Subdomain(domain.to_string())
            }
            _ if h.contains('*') => bail!("`*` is only allowed as a whole host or a leading `*.`"),
            _ => HostPattern::Exact(h.to_string()),
        },
    };
    Ok(AllowedHost { scheme, host, port })
}

/// Per-store outbound hooks: knows which component is sending and the app
/// to dispatch in-process requests to.
pub struct OutboundHooks {
    pub component_id: String,
    pub allowed: Arc<AllowedHosts>,
    pub app: Arc<App>,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, draining(body));
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri
            .port_u16()
            .or_else(|| default_port(&scheme))
            .unwrap_or(0);

        if !self.allowed.allows(&scheme, &host, port) {
            eprintln!(
                "[{}] outbound request to {scheme}://{host}:{port} denied: not in allowed_outbound_hosts",
                self.component_id
            );
            // Dropping the request drops the receiving end of the pump,
            // which keeps draining the guest's body in the background.
            drop(request);
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }

        let app = self.app.clone();
        let caller = self.component_id.clone();
        Box::new(async move {
            let response = if let Some(target) = host.strip_suffix(".spin.internal") {
                app.handle_internal(target, request)
                    .await
                    .map_err(|e| internal_error(&caller, e))?
            } else if host == "self" || host == "self.alt" {
                app.handle_self(request)
                    .await
                    .map_err(|e| internal_error(&caller, e))?
            } else {
                return send_over_network(request, options, scheme, host, port).await;
            };
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

fn internal_error(caller: &str, e: anyhow::Error) -> Error {
    eprintln!("[{caller}] in-process request failed: {e:#}");
    match e.downcast::<Error>() {
        Ok(e) => e,
        Err(e) => Error::InternalError(Some(format!("{e:#}"))),
    }
}

async fn send_over_network(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    scheme: String,
    host: String,
    port: u16,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    if scheme != "http" {
        return Err(Error::InternalError(Some(format!(
            "shop-test-host sends outbound requests over plain http only; {scheme}://{host} \
             is not supported (point the service at a loopback fake)"
        ))));
    }
    let connect_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    // Timeouts as wasmtime-wasi-http's `default_send_request`: the guest's
    // `request-options`, else 600 s each.
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);

    let connect = tokio::net::TcpStream::connect((connect_host, port));
    let stream = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
            _ => Error::Connect(e),
        })?;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    let conn = tokio::spawn(conn);

    // HTTP/1 origin servers expect origin-form (`/path?query`) targets.
    let (mut parts, body) = request.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let sent = tokio::time::timeout(
        first_byte_timeout,
        sender.send_request(http::Request::from_parts(parts, body)),
    )
    .await;
    let response = match sent {
        Ok(response) => response?,
        Err(_) => {
            // Nobody waits for this connection any more.
            conn.abort();
            return Err(Error::ConnectionReadTimeout);
        }
    };
    // Tokio panics on a zero interval; wasmtime clamps it to 1 ns too.
    let between_bytes_timeout = between_bytes_timeout.max(Duration::new(0, 1));
    let response = response.map(|incoming| {
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        TimedBody { incoming, timeout }.boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        match conn.await {
            Ok(Err(e)) if e.is_timeout() => Err(Error::HttpResponseTimeout),
            Ok(result) => result.map_err(Error::from),
            Err(join) => Err(Error::InternalError(Some(join.to_string()))),
        }
    });
    Ok((response, io))
}

/// Default for each `request-options` timeout the guest leaves unset, as in
/// wasmtime-wasi-http's `default_send_request`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A response body that fails with `ConnectionReadTimeout` when no frame
/// arrives within the between-bytes timeout (wasmtime-wasi-http's
/// `IncomingResponseBody`).
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                std::task::ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.incoming.size_hint()
    }
}

/// Re-exposes `body` through a channel fed by a background task. If the
/// consumer goes away early, the task keeps reading `body` to its end, so
/// the guest writing it never sees a closed stream.
pub fn draining(mut body: WasiBody) -> WasiBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Error>>(1);
    tokio::spawn(async move {
        let mut consumer = Some(tx);
        while let Some(frame) = body.frame().await {
            if let Some(tx) = &consumer {
                if tx.send(frame).await.is_err() {
                    consumer = None;
                }
            }
        }
    });
    ChannelBody { rx }.boxed_unsync()
}

struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Error>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn schemes_hosts_and_ports() {
        let h = hosts(&[
            "https://api.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:*",
        ]);
        assert!(h.allows("https", "api.example.com", 443));
        assert!(!h.allows("http", "api.example.com", 80));
        assert!(!h.allows("https", "api.example.com", 8443));
        assert!(h.allows("http", "localhost", 3000));
        assert!(!h.allows("http", "localhost", 3001));
        assert!(h.allows("http", "127.0.0.1", 51234));
        assert!(!h.allows("http", "127.0.0.2", 51234));
    }

    #[test]
    fn wildcards() {
        let h = hosts(&[
            "https://*.example.com",
            "*://*.spin.internal:*",
            "http://self",
        ]);
        assert!(h.allows("https", "a.example.com", 443));
        assert!(!h.allows("https", "example.com", 443));
        assert!(!h.allows("https", "badexample.com", 443));
        assert!(h.allows("http", "cart.spin.internal", 80));
        assert!(h.allows("http", "self.alt", 80));
        assert!(hosts(&["*://*:*"]).allows("ftp", "anything", 21));
        assert!(hosts(&["http://localhost:8000..8010"]).allows("http", "localhost", 8005));
        assert!(!hosts(&["http://localhost:8000..8010"]).allows("http", "localhost", 8010), "the end is left out, as in Spin");
        assert!(hosts(&["http://localhost:8000..8010"]).allows("http", "localhost", 8009));
        assert!(hosts(&["redis://cache"]).allows("redis", "cache", 6379));
        assert!(!hosts(&["redis://cache"]).allows("redis", "cache", 6380));
        assert!(!hosts(&["redis://cache:*"]).allows("http", "cache", 80));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "example.com",
            "http://example.com/path",
            "http://ex*ample.com",
            "*://example.com",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
