//! Static files: `static/` is mounted at `/` in this component (see
//! `files` in `spin.toml`) and served for every path no service claims.
//! Written here rather than pulled in as a prebuilt file server so the
//! build needs nothing but crates.
//!
//! Unknown paths under `/api/` get the JSON error envelope like every other
//! API path; other unknown paths get the same envelope with a 404.

use http_kit::conditional::cacheable;
use http_kit::{ApiError, Ctx, HandlerResult, Reply, Service};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

const SERVICE: Service = Service { name: "files" };

#[http_component]
fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, serve_file))
}

fn serve_file(ctx: &Ctx) -> HandlerResult {
    if ctx.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let path = resolve(&ctx.path).ok_or_else(|| ApiError::no_route(&ctx.path))?;
    let body = std::fs::read(&path).map_err(|_| ApiError::no_route(&ctx.path))?;
    let reply = Reply::bytes(200, content_type(&path), body);
    Ok(cacheable(ctx, reply, "public, max-age=300"))
}

/// Map a URL path to a file under the mount, refusing anything that could
/// leave it. `/` and directories map to their `index.html`.
fn resolve(url_path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for seg in url_path.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." || seg.contains('\\') || seg.starts_with('.') {
            return None;
        }
        parts.push(seg);
    }
    if parts.first() == Some(&"api") {
        return None;
    }
    let joined = format!("/{}", parts.join("/"));
    if parts.is_empty() || url_path.ends_with('/') {
        return Some(format!("{}/index.html", joined.trim_end_matches('/')));
    }
    Some(joined)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_the_mount_only() {
        assert_eq!(resolve("/").as_deref(), Some("/index.html"));
        assert_eq!(resolve("/openapi.yaml").as_deref(), Some("/openapi.yaml"));
        assert_eq!(resolve("/docs/").as_deref(), Some("/docs/index.html"));
        assert_eq!(resolve("/../etc/passwd"), None);
        assert_eq!(resolve("/.env"), None);
        assert_eq!(resolve("/api/nothing"), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("/openapi.yaml"), "application/yaml");
        assert_eq!(content_type("/x"), "application/octet-stream");
    }
}
