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
                failed.push(json!({ "check": check.name, "problem": msg }));
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
