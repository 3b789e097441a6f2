//! The `GET /api/<service>/health` answer shared by every service.

use crate::{ApiError, Ctx, HandlerResult, Reply};
use serde_json::{json, Value};

/// One dependency's state in a health report.
pub struct Check {
    pub name: &'static str,
    pub result: Result<Value, String>,
}

/// A 200 report when every check passed, else a 503 naming the failures.
/// Health answers are never cached.
pub fn report(ctx: &Ctx, service: &str, checks: Vec<Check>) -> HandlerResult {
    if ctx.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let mut body = serde_json::Map::new();
    let mut failed = Vec::new();
    for check in checks {
        match check.result {
            Ok(v) => {
                body.insert(check.name.to_string(), v);
            }
            Err(msg) => {
                body.insert(check.name.to_string(), json!({ "status": "unavailable" }));
                let shown = without_credentials(&msg);
                if shown != msg {
                    println!("{}", json!({ "level": "error", "service": service, "health_check": check.name, "problem": msg }));
                }
                failed.push(json!({ "check": check.name, "problem": shown }));
            }
        }
    }
    if failed.is_empty() {
        body.insert("status".into(), json!("ok"));
        body.insert("service".into(), json!(service));
        Ok(Reply::ok(&Value::Object(body)).with_header("cache-control", "no-store"))
    } else {
        Err(ApiError::unavailable("not_ready", format!("{service} is not ready"))
            .with_details(json!({ "service": service, "failed": failed, "checks": body }))
            .with_header("retry-after", "1"))
    }
}

/// `text` with the credentials of every URL in it (`scheme://user:password@`)
/// replaced by `***`. A health answer is public, and an error can quote a
/// whole connection string: Spin refuses a Postgres host the app may not
/// reach with `address <url> is not permitted` (found in review: a
/// mistyped `postgres_host` showed the database password to anyone). The
/// full text goes to the log.
///
/// Everything up to the last `@` before the next whitespace or quote goes,
/// not only up to the first `/`: a password is often generated with `/`,
/// `?` or `#` in it and pasted unencoded (found in review: then nothing was
/// left out). A URL with an `@` in its path loses a little more than its
/// credentials, which is harmless.
pub fn without_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(|c: char| matches!(c, '"' | '\'') || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***");
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// A database check: reachable, and its schema is current.
pub fn database_check(
    label: &'static str,
    status: Result<storage::migrations::SchemaStatus, storage::DbError>,
) -> Check {
    let result = match status {
        Ok(s) if s.is_current() => Ok(json!({ "status": "ok", "schema_version": s.current })),
        Ok(s) if !s.modified.is_empty() => Err(format!("migrations {:?} were edited after they were applied", s.modified)),
        Ok(s) => Err(format!("schema at version {}, expected {}", s.current, s.latest)),
        Err(e) => Err(format!("unreachable: {e}")),
    };
    Check { name: label, result }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn credentials_in_urls_are_left_out() {
        assert_eq!(
            without_credentials("database unavailable: address postgres://shop:S3cret@db:5432/users is not permitted"),
            "database unavailable: address postgres://***@db:5432/users is not permitted"
        );
        assert_eq!(without_credentials("redis_address is \"redis://:pw@r:6379\""), "redis_address is \"redis://***@r:6379\"");
        assert_eq!(
            without_credentials("address postgres://shop:ab/cd?e#f@db:5432/users is not permitted"),
            "address postgres://***@db:5432/users is not permitted",
            "a password with / ? # pasted unencoded"
        );
        assert_eq!(without_credentials("a https://example.com/a@b url"), "a https://***@b url", "more than the credentials may go: harmless");
        assert_eq!(without_credentials("no url here"), "no url here");
        assert_eq!(without_credentials("x://"), "x://");
    }
}

