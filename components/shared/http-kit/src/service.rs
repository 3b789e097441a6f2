//! The request pipeline every component runs (see the crate docs).

use crate::body::Body;
use crate::cors::CorsPolicy;
use crate::log::RequestLog;
use crate::query::Query;
use crate::request::Ctx;
use crate::request_id;
use crate::response::Reply;
use crate::trace::TraceContext;
use crate::HandlerResult;
use spin_sdk::http::{IncomingRequest, Method, Response};
use std::time::Instant;

/// Identifies the component in logs.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
}

impl Service {
    /// The API's services refuse a query parameter sent empty (`?q=`):
    /// the description says what each one takes, and an empty value is none
    /// of those. (The `files` service reads no query at all: see [`serve`].)
    fn refuses_empty_parameters(&self, method: &str) -> bool {
        // Reads only: the API takes query parameters on reads (and the
        // unsubscribe link); another method on a route is answered by the
        // router (405 where it is not allowed), whatever its query.
        matches!(method, "GET" | "HEAD")
    }
}

/// Run one request through the shared pipeline and the component's router.
/// The body stays in the host until a route reads it ([`Ctx::body_limited`]).
pub fn serve(service: &Service, req: IncomingRequest, route: impl FnOnce(&Ctx) -> HandlerResult) -> Response {
    let started = Instant::now();
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let request_id = request_id::accept_incoming(header(&headers, "x-request-id")).unwrap_or_else(request_id::generate);
    let raw_method = method_name(&req.method());
    let is_head = raw_method == "HEAD";
    let path_with_query = req.path_with_query().unwrap_or_else(|| "/".to_string());
    let (path, raw_query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (path_with_query, String::new()),
    };
    let trace = TraceContext::for_request(header(&headers, "traceparent"), header(&headers, "tracestate"));
    trace.clone().install();
    let origin = header(&headers, "origin").map(str::to_string);
    let preflight = raw_method == "OPTIONS" && header(&headers, "access-control-request-method").is_some();

    let outcome: HandlerResult = if raw_method == "OPTIONS" {
        Ok(Reply::no_content())
    } else {
        // The files service serves pages and reads no parameter: links to them
        // may carry anything (a tracker's doubled `utm_source`), and a page
        // must still load (found in review: a 400 in the error envelope).
        let parsed = if service.name == "files" {
            Ok(Query::default())
        } else {
            Query::parse(&raw_query).and_then(|q| if service.refuses_empty_parameters(&raw_method) { q.refuse_empty().map(|()| q) } else { Ok(q) })
        };
        match parsed {
            Err(e) => Err(e),
            Ok(query) => {
                let ctx = Ctx {
                    method: if is_head { "GET".to_string() } else { raw_method.clone() },
                    path: crate::request::decode_path(&path),
                    query,
                    headers,
                    body: Body::from_incoming(req),
                    request_id: request_id.clone(),
                };
                route(&ctx)
            }
        }
    };

    let (mut reply, internal) = match outcome {
        Ok(reply) => (reply, None),
        Err(err) => {
            let mut reply = Reply::json(err.status, &err.envelope(&request_id));
            reply.headers.extend(err.headers.iter().cloned());
            (reply, err.internal)
        }
    };
    if is_head {
        reply.body.clear();
    }
    reply.headers.push(("x-request-id".into(), request_id.clone()));
    // Every answer is what its Content-Type says: a browser must not sniff
    // an upload or a JSON body into HTML or script.
    reply.headers.push(("x-content-type-options".into(), "nosniff".into()));
    // The CORS headers depend on the request's Origin, so every answer says
    // so, also one to a request without Origin: a shared cache must not
    // give a browser a copy stored for a request that had none.
    // A public answer (cacheable for 30 s) differs from an admin's for the
    // same URL: a shared cache must key on the token too (found in review).
    reply.headers.push(("vary".into(), "origin, authorization".into()));
    if origin.is_some() {
        let policy = CorsPolicy::parse(&spin_sdk::variables::get("cors_allowed_origins").unwrap_or_default());
        for (k, v) in policy.response_headers(origin.as_deref(), preflight) {
            reply.headers.push((k.to_string(), v));
        }
    }

    RequestLog {
        service: service.name,
        request_id: &request_id,
        trace: Some((trace.trace_id.as_str(), trace.span_id.as_str())),
        method: &raw_method,
        path: &path,
        status: reply.status,
        duration_ms: started.elapsed().as_millis(),
        internal_error: internal.as_deref(),
    }
    .emit();

    let mut builder = Response::builder();
    builder.status(reply.status);
    for (k, v) in reply.headers {
        builder.header(k, v);
    }
    builder.body(reply.body).build()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(s) => s.to_ascii_uppercase(),
    }
}
