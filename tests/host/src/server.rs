//! The loaded application and the HTTP side: routing a request to a
//! component, setting Spin's request headers, and running it in a fresh
//! instance.

use crate::compile;
use crate::outbound::{AllowedHosts, OutboundHooks};
use crate::routing::{RouteMatch, Router};
use crate::state::{AppStores, ComponentConfig, HostState};
use crate::stdio::PrefixedOutput;
use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpView};

/// A component ready to serve: pre-instantiated once, instantiated per request.
pub struct LoadedComponent {
    pub pre: ProxyPre<HostState>,
    pub config: Arc<ComponentConfig>,
    pub allowed_hosts: Arc<AllowedHosts>,
}

/// A loaded Spin application.
pub struct App {
    pub components: HashMap<String, LoadedComponent>,
    pub router: Router,
    pub stores: Arc<AppStores>,
}

/// Client address reported for in-process (`self`, `*.spin.internal`) requests.
const IN_PROCESS_CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

fn text_response(status: u16, text: impl Into<String>) -> http::Response<WasiBody> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from(text.into()))
                .map_err(|e: Infallible| match e {})
                .boxed_unsync(),
        )
        .expect("static response parts are valid")
}

impl App {
    /// A request from the listening socket.
    pub async fn handle_external(
        self: Arc<Self>,
        req: http::Request<hyper::body::Incoming>,
        client: SocketAddr,
    ) -> http::Response<WasiBody> {
        let Some(route) = self.router.route(req.uri().path()) else {
            return text_response(404, "Not Found");
        };
        let id = route.component.clone();
        match self.dispatch(route, req, client).await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("[{id}] request failed: {e:#}");
                text_response(
                    500,
                    format!("shop-test-host: component `{id}` failed: {e:#}"),
                )
            }
        }
    }

    /// An outbound request to `http://self` / `http://self.alt`: routed like
    /// an external one, but in process.
    pub async fn handle_self(
        self: Arc<Self>,
        req: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>> {
        match self.router.route(req.uri().path()) {
            None => Ok(text_response(404, "Not Found")),
            Some(route) => self.dispatch(route, req, IN_PROCESS_CLIENT).await,
        }
    }

    /// An outbound request to `http://<id>.spin.internal`: goes to that
    /// component directly, whatever its route (private included).
    pub async fn handle_internal(
        self: Arc<Self>,
        id: &str,
        req: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>> {
        if !self.components.contains_key(id) {
            eprintln!("shop-test-host: no component `{id}` for {id}.spin.internal");
            return Err(wasmtime_wasi_http::Error::DestinationNotFound.into());
        }
        let route = RouteMatch::internal(id, req.uri().path());
        self.dispatch(route, req, IN_PROCESS_CLIENT).await
    }

    /// Runs one request in a fresh instance of the routed component.
    async fn dispatch<B>(
        self: Arc<Self>,
        route: RouteMatch,
        req: http::Request<B>,
        client: SocketAddr,
    ) -> Result<http::Response<WasiBody>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let component = self
            .components
            .get(&route.component)
            .with_context(|| format!("no loaded component `{}`", route.component))?;
        let config = component.config.clone();

        let (mut parts, body) = req.into_parts();
        let host = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "localhost".to_string());
        if !parts.headers.contains_key(http::header::HOST) {
            parts.headers.insert(http::header::HOST, host.parse()?);
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let full_url = format!("http://{host}{path_and_query}");
        set_spin_headers(&mut parts.headers, &route, &full_url, client)?;
        let req = http::Request::from_parts(parts, body);

        let mut wasi = WasiCtxBuilder::new();
        let log = |stream: &str| Some(crate::stdio::log_path(&self.stores.state_dir, &config.id, stream));
        wasi.stdout(PrefixedOutput::new(&config.id, log("stdout")))
            .stderr(PrefixedOutput::new(&config.id, log("stderr")));
        for (key, value) in &config.environment {
            wasi.env(key, value);
        }
        if let Some(dir) = &config.files_dir {
            wasi.preopened_dir(dir, "/", FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("mounting {}", dir.display()))?;
        }
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks {
                component_id: config.id.clone(),
                allowed: component.allowed_hosts.clone(),
                app: self.clone(),
            },
            component: config.clone(),
            app_stores: self.stores.clone(),
            redis_connections: 0,
        };
        let mut store = Store::new(compile::engine(), state);
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let outparam = store.data_mut().http().new_response_outparam(sender)?;

        // The guest keeps running after it has sent the response head (to
        // stream the body), so it runs in its own task.
        let pre = component.pre.clone();
        let id = config.id.clone();
        let task = tokio::spawn(async move {
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            }
            .await;
            if let Err(e) = &result {
                eprintln!("[{id}] guest error: {e:?}");
            }
            result
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Ok(text_response(
                500,
                format!("component `{}` answered with error {code:?}", config.id),
            )),
            Err(_) => {
                let e = match task.await {
                    Ok(Ok(())) => anyhow!("the guest returned without setting a response"),
                    Ok(Err(e)) => e.into(),
                    Err(join) => join.into(),
                };
                Err(e)
            }
        }
    }
}

/// Spin's request headers, appended after the client's as Spin does
/// (`spin-trigger-http`'s `prepare_request_headers` lists the client's
/// fields, then its own; the request's header map is then extended, which
/// appends): a client that sends a `spin-*` field of its own is not
/// overwritten, so the component sees that value first and Spin's last.
/// Only the `spin-*` names (the legacy ones are for Wagi components).
fn set_spin_headers(
    headers: &mut http::HeaderMap,
    route: &RouteMatch,
    full_url: &str,
    client: SocketAddr,
) -> Result<()> {
    let mut values = vec![
        ("spin-path-info".to_string(), route.path_info.clone()),
        ("spin-full-url".to_string(), full_url.to_string()),
        ("spin-matched-route".to_string(), route.raw_route.clone()),
        ("spin-base-path".to_string(), "/".to_string()),
        (
            "spin-raw-component-route".to_string(),
            route.raw_route.clone(),
        ),
        (
            "spin-component-route".to_string(),
            route.component_route.clone(),
        ),
        ("spin-client-addr".to_string(), client.to_string()),
    ];
    for (name, value) in &route.params {
        let header = format!(
            "spin-path-match-{}",
            name.to_ascii_lowercase().replace('_', "-")
        );
        values.push((header, value.clone()));
    }
    for (name, value) in values {
        headers.append(
            http::HeaderName::try_from(name.as_str())
                .with_context(|| format!("header name {name:?}"))?,
            value
                .parse()
                .with_context(|| format!("header {name}: {value:?}"))?,
        );
    }
    Ok(())
}

/// Accepts connections until `shutdown` fires.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        eprintln!("shop-test-host: accept failed: {e}");
                        continue;
                    }
                };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle_external(req, client).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}
