//! Matches a request path against a routing table ([`ROUTES`], or the admin listener's) under
//! each route's mounts: 404
//! `M_UNRECOGNIZED` for an unknown path, 405 `M_UNRECOGNIZED` for a known path with another
//! method. Paths are compared segment by segment after percent-decoding; empty segments (a
//! trailing slash) are ignored.

use super::request::{Method, percent_decode};
use super::routes::{Mount, ROUTES, Route};
use crate::error::{Error, ErrorKind};

/// The route a request goes to, its mount and its decoded path parameters.
pub struct Matched {
    /// The matched row.
    pub route: &'static Route,
    /// The mount the path was under.
    pub mount: Mount,
    /// Decoded `{...}` parameters.
    pub params: Vec<String>,
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect()
}

/// The literal segments of a route's pattern (a mount prefix, then the route's path); they are
/// plain ASCII, so they are compared as they are written, without decoding or copying.
fn pattern_segments(mount: Mount, route: &'static Route) -> impl Iterator<Item = &'static str> {
    mount
        .prefix()
        .split('/')
        .chain(route.path.split('/'))
        .filter(|s| !s.is_empty())
}

/// Finds the route of [`ROUTES`] for `method` and `path` (without query string).
pub fn route(method: Method, path: &str) -> Result<Matched, Error> {
    route_in(ROUTES, method, path)
}

/// Finds the route of `table` for `method` and `path` (without query string). The request's
/// segments are decoded once; the table is walked without allocating.
pub fn route_in(table: &'static [Route], method: Method, path: &str) -> Result<Matched, Error> {
    let segs = segments(path);
    let mut path_known = false;
    for route in table {
        for &mount in route.mounts {
            if !matches(pattern_segments(mount, route), &segs) {
                continue;
            }
            if route.method == method {
                let params = pattern_segments(mount, route)
                    .zip(&segs)
                    .filter(|(p, _)| is_parameter(p))
                    .map(|(_, s)| s.clone())
                    .collect();
                return Ok(Matched {
                    route,
                    mount,
                    params,
                });
            }
            path_known = true;
        }
    }
    if path_known {
        Err(Error::new(
            ErrorKind::MethodNotAllowed,
            "Method not allowed on this endpoint",
        ))
    } else {
        Err(Error::new(ErrorKind::Unrecognized, "Unrecognized request"))
    }
}

fn is_parameter(pattern: &str) -> bool {
    pattern.starts_with('{') && pattern.ends_with('}')
}

/// Whether `pattern` has as many segments as `segs` and its literal ones are equal.
fn matches(mut pattern: impl Iterator<Item = &'static str>, segs: &[String]) -> bool {
    for s in segs {
        match pattern.next() {
            Some(p) if is_parameter(p) || p == s => {}
            _ => return false,
        }
    }
    pattern.next().is_none()
}

/// Every mounted path, for the start-up log.
pub fn mounted_paths() -> Vec<String> {
    ROUTES
        .iter()
        .flat_map(|r| {
            r.mounts
                .iter()
                .map(move |m| format!("{:?} {}{}", r.method, m.prefix(), r.path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_on_both_mounts_with_decoded_params() {
        let m = route(Method::Get, "/_matrix/identity/v2/pubkey/ed25519%3A0").unwrap();
        assert_eq!(
            (m.mount, m.params.as_slice()),
            (Mount::V2, ["ed25519:0".to_string()].as_slice())
        );
        let m = route(Method::Get, "/_matrix/identity/api/v1/pubkey/ed25519:0").unwrap();
        assert_eq!(m.mount, Mount::V1);
        // The fixed path wins over the parameter: isvalid is not a key id.
        let m = route(Method::Get, "/_matrix/identity/v2/pubkey/isvalid").unwrap();
        assert!(m.params.is_empty());
        assert!(route(Method::Get, "/_matrix/identity/v2/").is_ok());
        assert!(route(Method::Get, "/_matrix/identity/api/v1").is_ok());
    }

    #[test]
    fn unknown_paths_and_methods() {
        let e = route(Method::Get, "/_matrix/identity/v2/nope")
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Unrecognized);
        let e = route(Method::Post, "/_matrix/identity/v2").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::MethodNotAllowed);
        let e = route(Method::Get, "/_matrix/identity/v3").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unrecognized);
    }
}
