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

/// Finds the route of [`ROUTES`] for `method` and `path` (without query string).
pub fn route(method: Method, path: &str) -> Result<Matched, Error> {
    route_in(ROUTES, method, path)
}

/// Finds the route of `table` for `method` and `path` (without query string).
pub fn route_in(table: &'static [Route], method: Method, path: &str) -> Result<Matched, Error> {
    let segs = segments(path);
    let mut path_known = false;
    for route in table {
        for &mount in route.mounts {
            let pattern = segments(mount.prefix())
                .into_iter()
                .chain(segments(route.path));
            let pattern: Vec<String> = pattern.collect();
            let Some(params) = match_segments(&pattern, &segs) else {
                continue;
            };
            if route.method == method {
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

fn match_segments(pattern: &[String], segs: &[String]) -> Option<Vec<String>> {
    if pattern.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (p, s) in pattern.iter().zip(segs) {
        if p.starts_with('{') && p.ends_with('}') {
            params.push(s.clone());
        } else if p != s {
            return None;
        }
    }
    Some(params)
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
