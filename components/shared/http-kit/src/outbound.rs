//! Outbound HTTP with connect, first-byte and between-bytes timeouts, for
//! every call to a third party (Stripe, Resend), so one that hangs cannot
//! hold up the request that made the call. Written on the raw `wasi:http`
//! bindings because the SDK's `send` cannot set request options. Every call
//! carries the request's `traceparent` (and `tracestate`), see [`crate::trace`].

/// A third party's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Send `method url` with these headers and body. `Err` for anything that
/// is not an answer (refused, timed out, reset), with the reason.
pub fn send_with_timeouts(method: &str, url: &str, headers: &[(&str, String)], body: Option<&[u8]>, timeout_ms: u64) -> Result<Answer, String> {
    use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("not a URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut fields: Vec<(String, Vec<u8>)> = headers.iter().map(|(k, v)| (k.to_string(), v.clone().into_bytes())).collect();
    // The request's trace goes along (crate::trace), unless the caller set its own.
    if let Some(trace) = crate::trace::current() {
        for (name, value) in trace.outbound_headers() {
            if !fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                fields.push((name.to_string(), value.into_bytes()));
            }
        }
    }
    let request = types::OutgoingRequest::new(types::Fields::from_list(&fields).map_err(|e| format!("headers: {e:?}"))?);
    let method = match method {
        "GET" => types::Method::Get,
        "POST" => types::Method::Post,
        "DELETE" => types::Method::Delete,
        other => return Err(format!("method {other} is not used here")),
    };
    request.set_method(&method).map_err(|_| "method refused")?;
    let scheme = if scheme.eq_ignore_ascii_case("https") { types::Scheme::Https } else { types::Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|_| "scheme refused")?;
    request.set_authority(Some(authority)).map_err(|_| "authority refused")?;
    request.set_path_with_query(Some(path)).map_err(|_| "path refused")?;
    let outgoing = request.body().map_err(|_| "no request body")?;
    let options = types::RequestOptions::new();
    let ns = timeout_ms.saturating_mul(1_000_000);
    // A host that does not support an option keeps its default; that is fine.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    let pending = outgoing_handler::handle(request, Some(options)).map_err(|e| format!("{e:?}"))?;
    {
        let stream = outgoing.write().map_err(|_| "request body stream")?;
        for chunk in body.unwrap_or(&[]).chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| format!("writing the body: {e:?}"))?;
        }
    }
    types::OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        _ => return Err("no response".into()),
    };
    let status = response.status();
    let retry_after = response.headers().get(&"retry-after".to_string()).first().map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response.consume().map_err(|_| "no response body")?;
    let mut bytes = Vec::new();
    {
        let stream = incoming.stream().map_err(|_| "response body stream")?;
        // Ends with `closed` at the end of the body (or on an error; the
        // status has already been read either way).
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            bytes.extend(chunk);
        }
    }
    Ok(Answer { status, retry_after, body: bytes })
}
