//! The request body, read only when a route asks for it and never past the
//! route's limit.
//!
//! A component's handler gets the request before its body has arrived. The
//! body stays in the host until a route reads it with its own limit
//! ([`crate::Ctx::body_limited`]): a `Content-Length` over the limit is
//! refused before a byte is read, and a body without one (chunked) is read in
//! chunks and refused as soon as it passes the limit. So a client sending
//! gigabytes costs the shop at most the limit and one chunk of memory, and
//! routes that take no body (every `GET`) never read one.

use crate::error::{ApiError, ErrorCode};
use std::cell::{OnceCell, RefCell};

/// How much is asked of the host per read.
const CHUNK: u64 = 16 * 1024;

/// Reads at most `limit + 1` bytes of a body: the bytes, or the number of
/// bytes seen once it passed the limit.
type Reader = Box<dyn FnOnce(usize) -> Result<Vec<u8>, usize>>;

/// A request body: bytes already in memory (tests, the native build), or a
/// stream still in the host.
pub struct Body {
    unread: RefCell<Option<Reader>>,
    read: OnceCell<Result<Vec<u8>, usize>>,
}

impl Body {
    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        let read = OnceCell::new();
        let _ = read.set(Ok(bytes));
        Body { unread: RefCell::new(None), read }
    }

    /// The body of a request still in the host, read on first use.
    pub fn from_incoming(request: spin_sdk::http::IncomingRequest) -> Body {
        Body { unread: RefCell::new(Some(Box::new(move |limit| read_incoming(request, limit)))), read: OnceCell::new() }
    }

    /// The body, or a 413 when it is longer than `limit` bytes. The first call
    /// reads it (with its limit); later ones see what was read.
    pub fn get(&self, limit: usize, declared_length: Option<&str>) -> Result<&[u8], ApiError> {
        if let Some(declared) = declared_length.and_then(|v| v.trim().parse::<u64>().ok()) {
            if declared > limit as u64 {
                return Err(too_large(format!("request body is {declared} bytes; the limit is {limit}"), limit));
            }
        }
        let read = self.read.get_or_init(|| match self.unread.borrow_mut().take() {
            Some(reader) => reader(limit),
            None => Ok(Vec::new()),
        });
        match read {
            Ok(bytes) if bytes.len() <= limit => Ok(bytes),
            Ok(bytes) => Err(too_large(format!("request body is {} bytes; the limit is {limit}", bytes.len()), limit)),
            Err(seen) => Err(too_large(format!("request body is longer than the limit of {limit} bytes (refused after {seen})"), limit)),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.read.get() {
            Some(Ok(bytes)) => write!(f, "Body({} bytes)", bytes.len()),
            Some(Err(seen)) => write!(f, "Body(over the limit after {seen} bytes)"),
            None => f.write_str("Body(unread)"),
        }
    }
}

pub(crate) fn too_large(message: String, limit: usize) -> ApiError {
    ApiError::of(ErrorCode::PayloadTooLarge, message).with_details(serde_json::json!({ "limit_bytes": limit }))
}

/// Read the body from the host in chunks, stopping once it passes `limit`.
/// A stream that fails part way ends the body there: the parser then sees a
/// truncated document and answers 400.
fn read_incoming(request: spin_sdk::http::IncomingRequest, limit: usize) -> Result<Vec<u8>, usize> {
    let Ok(body) = request.consume() else { return Ok(Vec::new()) };
    let mut bytes = Vec::new();
    {
        let Ok(stream) = body.stream() else { return Ok(Vec::new()) };
        while let Ok(chunk) = stream.blocking_read(CHUNK) {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > limit {
                return Err(bytes.len());
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_within_the_limit_are_the_body() {
        let body = Body::from_bytes(b"{}".to_vec());
        assert_eq!(body.get(10, None).unwrap(), b"{}");
        assert_eq!(body.get(10, Some("2")).unwrap(), b"{}");
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let read = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = read.clone();
        let body = Body {
            unread: RefCell::new(Some(Box::new(move |_| {
                flag.set(true);
                Ok(vec![])
            }))),
            read: OnceCell::new(),
        };
        let e = body.get(100, Some("101")).unwrap_err();
        assert_eq!((e.status, e.code.as_ref()), (413, "payload_too_large"));
        assert!(!read.get(), "nothing was read");
        assert_eq!(body.get(100, Some("bogus")).unwrap(), b"", "an unreadable length is left to the reader");
    }

    #[test]
    fn a_body_passing_the_limit_while_read_is_refused() {
        let body = Body { unread: RefCell::new(Some(Box::new(|limit| Err(limit + 1)))), read: OnceCell::new() };
        let e = body.get(64, None).unwrap_err();
        assert_eq!(e.status, 413);
        assert_eq!(body.get(1 << 20, None).unwrap_err().status, 413, "what was refused stays refused");
        let bytes = Body::from_bytes(vec![b' '; 65]);
        assert_eq!(bytes.get(64, None).unwrap_err().status, 413);
    }
}
