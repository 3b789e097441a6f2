//! W3C Trace Context (`traceparent`, `tracestate`) for the one request an
//! instance serves, so a request can be followed from the caller through
//! this app to Stripe and Resend (and into Spin's own OpenTelemetry spans).
//!
//! An incoming valid `traceparent` keeps its trace id; otherwise the request
//! starts a trace of its own. Either way the request gets a fresh span id,
//! which is logged with the trace id in its JSON log line and sent as the
//! parent id of every outbound call it makes ([`crate::outbound`], the
//! in-process nudge), so the log line stands for this request's span. Spin,
//! when it exports traces (`OTEL_EXPORTER_OTLP_ENDPOINT`), puts its own
//! outbound span in `traceparent` instead, in the same trace.
//!
//! A WASI 0.2 component instance serves exactly one request, so the context
//! is kept in a thread-local set by [`crate::serve`].

use std::cell::RefCell;

/// One request's place in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, never all zeros.
    pub trace_id: String,
    /// This request's span: 16 lowercase hex digits, never all zeros.
    pub span_id: String,
    /// The caller's span, when it sent a valid `traceparent`.
    pub parent_id: Option<String>,
    /// Trace flags (`01`: sampled), kept from the caller; `00` for a new trace.
    pub flags: String,
    /// The caller's `tracestate`, passed on unchanged (only with its `traceparent`).
    pub tracestate: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

impl TraceContext {
    /// The context for a request with these `traceparent` / `tracestate` headers.
    pub fn for_request(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        let span_id = random_hex::<8>();
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, parent_id, flags)) => TraceContext {
                trace_id,
                span_id,
                parent_id: Some(parent_id),
                flags,
                tracestate: tracestate.map(str::trim).filter(|s| !s.is_empty() && s.len() <= 512 && s.is_ascii()).map(str::to_string),
            },
            None => TraceContext { trace_id: random_hex::<16>(), span_id, parent_id: None, flags: "00".into(), tracestate: None },
        }
    }

    /// The `traceparent` of a call this request makes: same trace, this
    /// request's span as the parent.
    pub fn outbound_traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }

    /// The headers to add to an outbound call.
    pub fn outbound_headers(&self) -> Vec<(&'static str, String)> {
        headers(&self.outbound_traceparent(), self.tracestate.as_deref())
    }

    /// Make this the current request's context.
    pub fn install(self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self));
    }
}

/// The `traceparent` and (if any) `tracestate` headers of a call made in
/// this context: the current request's, or one a stored event was recorded in.
pub fn headers(traceparent: &str, tracestate: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("traceparent", traceparent.to_string())];
    if let Some(state) = tracestate {
        headers.push(("tracestate", state.to_string()));
    }
    headers
}

/// The current request's context (none outside [`crate::serve`]).
pub fn current() -> Option<TraceContext> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Parse a `traceparent`: (trace id, parent id, flags). Version `00` must be
/// exactly 55 characters; a later version may carry more after a `-`, as
/// the spec allows. Version `ff`, uppercase hex and all-zero ids are invalid.
pub fn parse_traceparent(raw: &str) -> Option<(String, String, String)> {
    let raw = raw.trim();
    let b = raw.as_bytes();
    // Only ASCII can be valid, and the slices below need it: a character of
    // several bytes across a boundary would panic (a trapped instance).
    if !raw.is_ascii() || b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let (version, trace_id, parent_id, flags) = (&raw[0..2], &raw[3..35], &raw[36..52], &raw[53..55]);
    if !hex(version) || version == "ff" || !hex(trace_id) || !hex(parent_id) || !hex(flags) {
        return None;
    }
    if (version == "00" && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    if trace_id.bytes().all(|c| c == b'0') || parent_id.bytes().all(|c| c == b'0') {
        return None;
    }
    Some((trace_id.to_string(), parent_id.to_string(), flags.to_string()))
}

/// `N` random bytes as hex, never all zeros (randomness is a host
/// guarantee; without it, the clock rather than a failed request).
pub(crate) fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8.min(N)].copy_from_slice(&clock::unix_millis().to_le_bytes()[..8.min(N)]);
    }
    if bytes.iter().all(|b| *b == 0) {
        bytes[N - 1] = 1;
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_valid_and_refuses_malformed_traceparents() {
        assert_eq!(
            parse_traceparent(VALID),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736".into(), "00f067aa0ba902b7".into(), "01".into()))
        );
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
            // A character of several bytes across the flags' boundary.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u{e9}",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u{fffd}",
            "\u{e9}0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn keeps_the_callers_trace_with_a_span_of_its_own() {
        let t = TraceContext::for_request(Some(VALID), Some("congo=t61rcWkgMzE"));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(t.span_id, "00f067aa0ba902b7");
        let out = t.outbound_traceparent();
        assert_eq!(parse_traceparent(&out), Some((t.trace_id.clone(), t.span_id.clone(), "01".into())));
        assert_eq!(t.outbound_headers()[1], ("tracestate", "congo=t61rcWkgMzE".to_string()));
    }

    #[test]
    fn starts_a_trace_without_a_valid_traceparent() {
        let t = TraceContext::for_request(Some("garbage"), Some("ignored=1"));
        assert_eq!(t.trace_id.len(), 32);
        assert_eq!(t.parent_id, None);
        assert_eq!(t.tracestate, None);
        assert!(parse_traceparent(&t.outbound_traceparent()).is_some());
        assert_ne!(TraceContext::for_request(None, None).trace_id, t.trace_id);
    }
}
