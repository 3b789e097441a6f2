//! Static files: `static/` is mounted at `/` in this component (see
//! `files` in `spin.toml`) and served for every path no service claims.
//! Written here rather than pulled in as a prebuilt file server so the
//! build needs nothing but crates.
//!
//! Unknown paths under `/api/` get the JSON error envelope like every other
//! API path. The storefront, the admin console and the API docs are
//! single-page apps with their own client-side routes
//! (`/account/verify-email?token=...`, `/checkout/success?session_id=...`,
//! `/admin/orders/...`): a path under one of their sections ([`APP_SHELLS`])
//! with no file behind it and no extension in its last segment gets the
//! HTML shell of its app, so those links work when opened directly. Every
//! other unknown path (`/missing.png`, `/internal/...`) is a 404 in the
//! envelope.

use http_kit::conditional::cacheable;
use http_kit::{ApiError, Ctx, HandlerResult, Reply, Service};
use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

const SERVICE: Service = Service { name: "files" };

#[http_component]
fn handle(req: IncomingRequest) -> anyhow::Result<Response> {
    Ok(http_kit::serve(&SERVICE, req, serve_file))
}

fn serve_file(ctx: &Ctx) -> HandlerResult {
    if ctx.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let path = resolve(&ctx.path, |p| std::path::Path::new(p).is_file()).ok_or_else(|| ApiError::no_route(&ctx.path))?;
    let body = std::fs::read(&path).map_err(|_| ApiError::no_route(&ctx.path))?;
    let kind = content_type(&path);
    let mut reply = Reply::bytes(200, kind, body);
    if kind.starts_with("text/html") {
        let public_url = spin_sdk::variables::get("object_storage_public_url").unwrap_or_default();
        reply = reply.with_header("content-security-policy", &content_security_policy(&public_url));
    }
    Ok(cacheable(ctx, reply, cache_policy(kind)))
}

/// Pages, scripts and styles are revalidated on every use (`no-cache`; the
/// `ETag` makes that a 304 without a body): the storefront's ES modules are
/// not versioned, and a browser caching each for minutes could pair a new
/// module with an old one after a release and fail to load the page. Other
/// files (images, fonts, the OpenAPI text) may be kept five minutes.
fn cache_policy(content_type: &str) -> &'static str {
    if content_type.starts_with("text/html") || content_type.starts_with("text/css") || content_type.contains("javascript") {
        "no-cache"
    } else {
        "public, max-age=300"
    }
}

/// The pages hold the shopper's tokens (localStorage), so they run only
/// their own scripts and styles (no inline ones, no other origin), talk only
/// to this origin, and may not be framed. Images may come from anywhere
/// over https (product image URLs), and from the object storage that holds
/// uploaded product images (`object_storage_public_url`) also when that is
/// plain http (a local MinIO, a test server).
fn content_security_policy(object_storage_public_url: &str) -> String {
    let storage = storage_origin(object_storage_public_url).map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:{storage}; \
connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `http://host[:port]` of an http URL, if it is one whose host and port are
/// plain (letters, digits, dots, dashes, one colon before the port), so
/// nothing from the variable can add to or break the policy. https origins
/// are allowed already.
fn storage_origin(url: &str) -> Option<String> {
    let rest = url.trim().strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (host_ok && port_ok).then(|| format!("http://{authority}"))
}

/// The sections of the single-page apps under `static/` and each one's
/// shell: a path at or under a section that names no file gets the shell.
/// Only these, so a path no app owns stays a 404.
const APP_SHELLS: &[(&str, &str)] = &[
    ("/admin", "/admin/index.html"),
    ("/docs", "/docs/index.html"),
    ("/products", "/index.html"),
    ("/cart", "/index.html"),
    ("/checkout", "/index.html"),
    ("/account", "/index.html"),
];

/// Map a URL path to the file to serve: the file itself when `is_file`
/// says it exists, else the shell of the app section the path is in when
/// the path looks like a page (no extension in its last segment), else none.
/// Never anything outside the mount, and never for `/api/...`.
fn resolve(url_path: &str, is_file: impl Fn(&str) -> bool) -> Option<String> {
    let direct = file_path(url_path)?;
    if is_file(&direct) {
        return Some(direct);
    }
    let last = url_path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return None;
    }
    let trimmed = url_path.trim_end_matches('/');
    APP_SHELLS
        .iter()
        .find(|(prefix, _)| trimmed == *prefix || trimmed.starts_with(&format!("{prefix}/")))
        .map(|(_, shell)| shell.to_string())
        .filter(|shell| is_file(shell))
}

/// Map a URL path to a file under the mount, refusing anything that could
/// leave it. `/` and directories map to their `index.html`.
fn file_path(url_path: &str) -> Option<String> {
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
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Found in review: pages and modules cached for five minutes each could
    /// pair a new module with an old one after a release.
    #[test]
    fn pages_scripts_and_styles_are_revalidated_and_images_kept_a_while() {
        for path in ["index.html", "assets/store.js", "assets/shop.css"] {
            assert_eq!(cache_policy(content_type(path)), "no-cache", "{path}");
        }
        assert_eq!(cache_policy(content_type("assets/logo.svg")), "public, max-age=300");
    }

    #[test]
    fn an_http_object_storage_may_serve_images_and_nothing_else_gets_into_the_policy() {
        let base = content_security_policy("");
        assert!(base.contains("img-src 'self' data: https:;"), "{base}");
        assert_eq!(content_security_policy("https://cdn.example.com/bucket"), base, "https is allowed already");
        let local = content_security_policy("http://127.0.0.1:9000/shop-images");
        assert!(local.contains("img-src 'self' data: https: http://127.0.0.1:9000;"), "{local}");
        assert!(content_security_policy("http://minio.local/b").contains(" http://minio.local;"));
        for hostile in ["http://a.com; script-src *", "http://a.com:80;x", "http://'self'", "http://", "http://a.com:", "http://a b", "ftp://x", "http://a.com:123456"] {
            assert_eq!(content_security_policy(hostile), base, "{hostile:?}");
        }
    }

    proptest! {
        /// Whatever the path, the file served (if any) is inside the mount:
        /// absolute, no `.`/`..`/hidden segment, no backslash, never `/api`.
        #[test]
        fn any_path_maps_inside_the_mount_or_nowhere(path in prop_oneof![".{0,40}", "(/([.]{1,3}|api|docs|admin|cart|[a-z.%\\\\]{1,6})){0,6}/?"]) {
            for mapped in [file_path(&path), resolve(&path, |_| true), resolve(&path, |p| p.ends_with("index.html"))].into_iter().flatten() {
                prop_assert!(mapped.starts_with('/'));
                prop_assert!(mapped.split('/').skip(1).all(|seg| !seg.is_empty() && !seg.starts_with('.') && !seg.contains('\\')), "{}", mapped);
                prop_assert!(!mapped.starts_with("/api/") && mapped != "/api");
                let _ = content_type(&mapped);
            }
        }
    }

    #[test]
    fn maps_inside_the_mount_only() {
        assert_eq!(file_path("/").as_deref(), Some("/index.html"));
        assert_eq!(file_path("/openapi.yaml").as_deref(), Some("/openapi.yaml"));
        assert_eq!(file_path("/docs/").as_deref(), Some("/docs/index.html"));
        assert_eq!(file_path("/../etc/passwd"), None);
        assert_eq!(file_path("/.env"), None);
        assert_eq!(file_path("/api/nothing"), None);
    }

    /// The files of a `static/` like the real one.
    fn mount(path: &str) -> bool {
        ["/index.html", "/app.js", "/openapi.yaml", "/admin/index.html", "/admin/admin.js", "/docs/index.html"].contains(&path)
    }

    #[test]
    fn existing_files_are_served_as_they_are() {
        assert_eq!(resolve("/", mount).as_deref(), Some("/index.html"));
        assert_eq!(resolve("/app.js", mount).as_deref(), Some("/app.js"));
        assert_eq!(resolve("/admin/", mount).as_deref(), Some("/admin/index.html"));
        assert_eq!(resolve("/admin/admin.js", mount).as_deref(), Some("/admin/admin.js"));
        assert_eq!(resolve("/docs/", mount).as_deref(), Some("/docs/index.html"));
    }

    #[test]
    fn client_side_routes_get_their_apps_shell() {
        for storefront in ["/account/verify-email", "/account/reset-password", "/checkout/success", "/checkout/cancelled", "/products/abc", "/cart", "/account", "/account/orders/7c9e6679"] {
            assert_eq!(resolve(storefront, mount).as_deref(), Some("/index.html"), "{storefront}");
        }
        for admin in ["/admin", "/admin/orders", "/admin/orders/7c9e6679-7425-40de-944b-e07fc1f90ae7", "/admin/products/"] {
            assert_eq!(resolve(admin, mount).as_deref(), Some("/admin/index.html"), "{admin}");
        }
        assert_eq!(resolve("/docs", mount).as_deref(), Some("/docs/index.html"));
        assert_eq!(resolve("/docs/catalog", mount).as_deref(), Some("/docs/index.html"));
    }

    #[test]
    fn missing_files_and_api_paths_are_not_found() {
        assert_eq!(resolve("/missing.png", mount), None, "a file-looking path is a real 404");
        assert_eq!(resolve("/admin/missing.js", mount), None);
        assert_eq!(resolve("/api/nothing", mount), None, "the API keeps its JSON 404");
        assert_eq!(resolve("/api", mount), None);
        assert_eq!(resolve("/../etc/passwd", mount), None);
        assert_eq!(resolve("/.git/config", mount), None);
        assert_eq!(resolve("/account/.hidden", mount), None);
    }

    #[test]
    fn paths_no_app_owns_are_not_found() {
        for path in ["/internal/notifications/deliver", "/administrator", "/cartography", "/nothing", "/products-old"] {
            assert_eq!(resolve(path, mount), None, "{path}");
        }
    }

    #[test]
    fn no_shell_when_the_app_is_missing() {
        let bare = |p: &str| p == "/openapi.yaml";
        assert_eq!(resolve("/checkout/success", bare), None);
        assert_eq!(resolve("/admin/orders", bare), None);
    }

    #[test]
    fn the_policy_allows_no_inline_code_or_framing() {
        for policy in [content_security_policy(""), content_security_policy("http://127.0.0.1:9000/b")] {
            assert!(policy.contains("script-src 'self';"));
            assert!(!policy.contains("unsafe-inline"));
            assert!(policy.contains("frame-ancestors 'none'"));
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("/openapi.yaml"), "application/yaml");
        assert_eq!(content_type("/x"), "application/octet-stream");
    }
}
