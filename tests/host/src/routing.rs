//! Spin's HTTP routing rules.
//!
//! * `"/a/b"` matches exactly `/a/b` (one trailing slash is ignored).
//! * `"/a/..."` matches `/a` and everything below it; the rest of the path
//!   becomes `spin-path-info`.
//! * `":name"` segments (Spin 3) match any single segment and are exposed to
//!   the guest as `spin-path-match-<name>`.
//! * The most specific route wins: an exact route beats any wildcard, a
//!   longer route beats a shorter one, and at the first differing segment a
//!   literal beats a parameter.
//! * Private components (`route = { private = true }`) are not routed at all;
//!   they are only reachable as `http://<id>.spin.internal/...`.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
struct Route {
    component: String,
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

impl Route {
    fn parse(raw: &str, component: &str) -> Result<Route> {
        if !raw.starts_with('/') {
            bail!("route {raw:?} of component `{component}` must start with `/`");
        }
        let (body, wildcard) = match raw.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None if raw == "/..." => ("", true),
            None => (raw, false),
        };
        let mut segments = Vec::new();
        for part in body.split('/').filter(|s| !s.is_empty()) {
            if part == "..." {
                bail!("route {raw:?}: `...` is only allowed as the last segment");
            }
            match part.strip_prefix(':') {
                Some("") => bail!("route {raw:?}: empty parameter name"),
                Some(name) => segments.push(Segment::Param(name.to_string())),
                None => segments.push(Segment::Literal(part.to_string())),
            }
        }
        Ok(Route {
            component: component.to_string(),
            raw: raw.to_string(),
            segments,
            wildcard,
        })
    }

    /// Sort key: larger is more specific.
    fn specificity(&self) -> (bool, usize, Vec<u8>) {
        let ranks = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 2,
                Segment::Param(_) => 1,
            })
            .collect();
        (!self.wildcard, self.segments.len(), ranks)
    }

    /// The route without its `/...` suffix (Spin's `spin-component-route`).
    fn prefix(&self) -> String {
        if self.wildcard {
            self.raw.strip_suffix("/...").unwrap_or("").to_string()
        } else {
            self.raw.clone()
        }
    }

    fn matches(&self, path: &str) -> Option<RouteMatch> {
        // Split keeping byte offsets so the wildcard remainder is the raw
        // rest of the path, exactly as the client sent it.
        let mut params = Vec::new();
        let mut rest = path;
        for segment in &self.segments {
            let trimmed = rest.strip_prefix('/')?;
            let end = trimmed.find('/').unwrap_or(trimmed.len());
            let value = &trimmed[..end];
            match segment {
                Segment::Literal(lit) if lit == value => {}
                Segment::Param(name) if !value.is_empty() => {
                    params.push((name.clone(), value.to_string()));
                }
                _ => return None,
            }
            rest = &trimmed[end..];
        }
        if self.wildcard {
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
        } else if !(rest.is_empty() || rest == "/") {
            return None;
        }
        Some(RouteMatch {
            component: self.component.clone(),
            raw_route: self.raw.clone(),
            component_route: self.prefix(),
            path_info: if self.wildcard {
                rest.to_string()
            } else {
                String::new()
            },
            params,
        })
    }
}

/// The outcome of routing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    /// The route as written in the manifest (`spin-raw-component-route`,
    /// also `spin-matched-route` since the base is always `/`).
    pub raw_route: String,
    /// The route without `/...` (`spin-component-route`).
    pub component_route: String,
    /// The part of the path below a wildcard route (`spin-path-info`).
    pub path_info: String,
    /// `:name` segment values, in route order.
    pub params: Vec<(String, String)>,
}

impl RouteMatch {
    /// The match Spin synthesises for `http://<id>.spin.internal/...`
    /// requests, which bypass the router: the whole path is path info.
    pub fn internal(component: &str, path: &str) -> RouteMatch {
        RouteMatch {
            component: component.to_string(),
            raw_route: "/...".to_string(),
            component_route: String::new(),
            path_info: path.to_string(),
            params: Vec::new(),
        }
    }
}

/// The public routes of an app, most specific first.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the router from `(route, component)` pairs. A route declared
    /// twice goes to the last component that declares it, in the first
    /// one's place (Spin warns and does the same: its routes are an
    /// `IndexMap` keyed by the route, test `duplicate_routes_last_one_wins`).
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Router> {
        let mut parsed: Vec<Route> = Vec::new();
        for (raw, component) in routes {
            let route = Route::parse(raw, component)?;
            if let Some(existing) = parsed
                .iter_mut()
                .find(|r| r.segments == route.segments && r.wildcard == route.wildcard)
            {
                eprintln!(
                    "shop-test-host: warning: route {raw:?} of `{component}` duplicates {:?} of `{}`; \
                     only `{component}` will be used",
                    existing.raw, existing.component
                );
                *existing = route;
                continue;
            }
            parsed.push(route);
        }
        // Stable sort keeps manifest order among equally specific routes.
        parsed.sort_by_key(|route| std::cmp::Reverse(route.specificity()));
        Ok(Router { routes: parsed })
    }

    /// Routes a request path (without query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        self.routes.iter().find_map(|r| r.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new([
            ("/api/products/...", "wild"),
            ("/api/products/featured", "exact"),
            ("/api/...", "short"),
            ("/api/products/deep/...", "deep"),
            ("/items/:id/detail", "param"),
            ("/items/special/detail", "literal"),
            ("/", "root"),
        ])
        .unwrap()
    }

    fn component(path: &str) -> Option<String> {
        router().route(path).map(|m| m.component)
    }

    #[test]
    fn exact_beats_wildcard_and_longer_prefix_wins() {
        assert_eq!(
            component("/api/products/featured").as_deref(),
            Some("exact")
        );
        assert_eq!(
            component("/api/products/featured/x").as_deref(),
            Some("wild")
        );
        assert_eq!(component("/api/products/deep/1").as_deref(), Some("deep"));
        assert_eq!(component("/api/other").as_deref(), Some("short"));
        assert_eq!(component("/").as_deref(), Some("root"));
        assert_eq!(component("/nowhere"), None);
    }

    #[test]
    fn wildcard_matches_its_own_prefix_but_not_longer_names() {
        let m = router().route("/api/products").unwrap();
        assert_eq!((m.component.as_str(), m.path_info.as_str()), ("wild", ""));
        let m = router().route("/api/products/42/x").unwrap();
        assert_eq!(m.path_info, "/42/x");
        assert_eq!(m.component_route, "/api/products");
        assert_eq!(m.raw_route, "/api/products/...");
        assert_eq!(component("/api/productsX").as_deref(), Some("short"));
    }

    #[test]
    fn params_and_literals() {
        let m = router().route("/items/7/detail").unwrap();
        assert_eq!(m.component, "param");
        assert_eq!(m.params, vec![("id".to_string(), "7".to_string())]);
        assert_eq!(
            component("/items/special/detail").as_deref(),
            Some("literal")
        );
        assert_eq!(component("/items//detail"), None);
    }

    #[test]
    fn a_route_declared_twice_goes_to_the_last_component_as_in_spin() {
        let r = Router::new([("/foo", "first"), ("/foo", "second"), ("/...", "rest")]).unwrap();
        assert_eq!(r.route("/foo").map(|m| m.component).as_deref(), Some("second"));
    }

    #[test]
    fn trailing_slash_on_exact_route_is_ignored() {
        assert_eq!(
            component("/api/products/featured/").as_deref(),
            Some("exact")
        );
        let r = Router::new([("/health", "h")]).unwrap();
        assert_eq!(
            r.route("/health/").map(|m| m.component).as_deref(),
            Some("h")
        );
    }
}
