//! What handlers answer ([`Reply`]) and how it becomes an HTTP response: JSON (any
//! `Serialize` value, serialised once, straight from the handler's answer), HTML, a
//! redirect, static bytes or nothing; errors become `{errcode, error}` bodies; every response
//! carries the CORS headers the spec requires. A header value that HTTP cannot carry is a bug:
//! it is logged and the reply becomes a 500, never a response with the header left out.

use http_body_util::Full;
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use serde::Serialize;

use crate::error::Error;

/// A handler's answer.
#[derive(Debug)]
pub enum Reply {
    /// A JSON body (serialised already) with a status.
    Json(u16, Vec<u8>),
    /// An HTML page with a status.
    Html(u16, String),
    /// A 302 redirect to this URL.
    Redirect(String),
    /// Static bytes with a content type and a `Cache-Control` value.
    Static {
        /// MIME type.
        content_type: String,
        /// The bytes.
        body: Vec<u8>,
        /// `Cache-Control` header value.
        cache_control: &'static str,
    },
    /// An empty 200 (CORS preflight).
    Empty,
}

impl Reply {
    /// A 200 JSON reply.
    pub fn ok(value: impl Serialize) -> Reply {
        Reply::json(200, value)
    }

    /// A JSON reply with `status`. A value that does not serialise (a map with keys that are
    /// not strings) is a bug, answered as one.
    pub fn json(status: u16, value: impl Serialize) -> Reply {
        match serde_json::to_vec(&value) {
            Ok(body) => Reply::Json(status, body),
            Err(e) => {
                log::error!("a JSON answer does not serialise: {e}");
                Reply::from(Error::internal("answer does not serialise"))
            }
        }
    }

    /// The status code this reply will have.
    pub fn status(&self) -> u16 {
        match self {
            Reply::Json(s, _) | Reply::Html(s, _) => *s,
            Reply::Redirect(_) => 302,
            Reply::Static { .. } | Reply::Empty => 200,
        }
    }

    /// The `errcode` and `error` of an error reply (a JSON body with a status of 400 or more),
    /// read back from the serialised body (only error replies pay for it).
    pub fn error(&self) -> Option<(String, String)> {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            errcode: String,
            #[serde(default)]
            error: String,
        }
        match self {
            Reply::Json(status, body) if *status >= 400 => {
                serde_json::from_slice::<ErrorBody>(body)
                    .ok()
                    .map(|b| (b.errcode, b.error))
            }
            _ => None,
        }
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Self {
        let body = serde_json::to_vec(&e.body()).unwrap_or_else(|_| b"{}".to_vec());
        Reply::Json(e.status(), body)
    }
}

const CORS: [(HeaderName, &str); 3] = [
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "GET, POST, PUT, DELETE, OPTIONS",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "Origin, X-Requested-With, Content-Type, Accept, Authorization",
    ),
];

/// The HTTP response the transport writes.
pub type Response = hyper::Response<Full<Bytes>>;

/// Builds the response for `reply`; `cors` adds the CORS headers (the public listener's
/// answers), `close` asks the client to close the connection after it (an answer given
/// without reading the request body).
pub fn into_response(reply: Reply, cors: bool, close: bool) -> Response {
    let status = reply.status();
    // Header names are hyper's constants and fixed values static: nothing is parsed or copied
    // for them; only a value built for this reply (a redirect's target, a content type) is
    // checked.
    let mut built: Option<(HeaderName, String)> = None;
    let mut cache_control: Option<&'static str> = None;
    let (body, fixed): (Vec<u8>, &[(HeaderName, &'static str)]) = match reply {
        Reply::Json(_, body) => (body, JSON_HEADERS),
        Reply::Html(_, html) => (html.into_bytes(), HTML_HEADERS),
        Reply::Redirect(url) => {
            built = Some((header::LOCATION, url));
            (Vec::new(), REDIRECT_HEADERS)
        }
        Reply::Static {
            content_type,
            body,
            cache_control: cache,
        } => {
            built = Some((header::CONTENT_TYPE, content_type));
            cache_control = Some(cache);
            (body, STATIC_HEADERS)
        }
        Reply::Empty => (Vec::new(), &[]),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    for (name, value) in fixed {
        map.insert(name.clone(), HeaderValue::from_static(value));
    }
    if let Some(value) = cache_control {
        map.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    if let Some((name, value)) = built {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                map.insert(name, value);
            }
            Err(_) => {
                // A reply we cannot send as built (a redirect without its Location would leave
                // the user on a blank page): a bug, answered as one.
                log::error!("response header {name} has an invalid value {value:?}: answering 500");
                let error = Error::internal(format_args!("invalid {name} header"));
                return into_response(Reply::from(error), cors, close);
            }
        }
    }
    if cors {
        for (name, value) in CORS {
            map.insert(name, HeaderValue::from_static(value));
        }
    }
    if close {
        map.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

const JSON_HEADERS: &[(HeaderName, &str)] = &[(header::CONTENT_TYPE, "application/json")];

const HTML_HEADERS: &[(HeaderName, &str)] = &[
    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    ),
];

const REDIRECT_HEADERS: &[(HeaderName, &str)] = &[
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
];

const STATIC_HEADERS: &[(HeaderName, &str)] = &[(header::X_CONTENT_TYPE_OPTIONS, "nosniff")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_header_is_a_500_not_a_silent_drop() {
        for url in [
            "https://a.example/\r\nX: y",
            "https://a.example/\u{7f}",
            "https://a.example/\u{0}",
        ] {
            let response = into_response(Reply::Redirect(url.into()), true, false);
            assert_eq!(response.status(), 500, "{url:?}");
            assert!(response.headers().get("location").is_none());
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "the error body"
            );
            assert_eq!(response.headers()["access-control-allow-origin"], "*");
        }
        let ok = into_response(
            Reply::Redirect("https://a.example/x?y=%C3%A9".into()),
            false,
            false,
        );
        assert_eq!(ok.status(), 302);
        assert_eq!(ok.headers()["location"], "https://a.example/x?y=%C3%A9");
    }
}
