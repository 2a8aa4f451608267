//! What handlers answer ([`Reply`]) and how it becomes an HTTP response: JSON, HTML, a
//! redirect, static bytes or nothing; errors become `{errcode, error}` bodies; every response
//! carries the CORS headers the spec requires.

use std::io::Cursor;

use tiny_http::{Header, Response, StatusCode};

use crate::error::Error;

/// A handler's answer.
#[derive(Debug)]
pub enum Reply {
    /// A JSON body with a status.
    Json(u16, serde_json::Value),
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
    pub fn ok(value: serde_json::Value) -> Reply {
        Reply::Json(200, value)
    }

    /// The status code this reply will have.
    pub fn status(&self) -> u16 {
        match self {
            Reply::Json(s, _) | Reply::Html(s, _) => *s,
            Reply::Redirect(_) => 302,
            Reply::Static { .. } | Reply::Empty => 200,
        }
    }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Self {
        Reply::Json(e.status(), e.body())
    }
}

const CORS: [(&str, &str); 3] = [
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Allow-Methods",
        "GET, POST, PUT, DELETE, OPTIONS",
    ),
    (
        "Access-Control-Allow-Headers",
        "Origin, X-Requested-With, Content-Type, Accept, Authorization",
    ),
];

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Builds the tiny_http response for `reply`.
pub fn into_response(reply: Reply) -> Response<Cursor<Vec<u8>>> {
    let status = reply.status();
    let (body, mut headers): (Vec<u8>, Vec<Option<Header>>) = match reply {
        Reply::Json(_, value) => (
            serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec()),
            vec![header("Content-Type", "application/json")],
        ),
        Reply::Html(_, html) => (
            html.into_bytes(),
            vec![
                header("Content-Type", "text/html; charset=utf-8"),
                header("Cache-Control", "no-store"),
                header("X-Content-Type-Options", "nosniff"),
                header("Referrer-Policy", "no-referrer"),
                header(
                    "Content-Security-Policy",
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                ),
            ],
        ),
        Reply::Redirect(url) => (
            Vec::new(),
            vec![
                header("Location", &url),
                header("Cache-Control", "no-store"),
                header("Referrer-Policy", "no-referrer"),
            ],
        ),
        Reply::Static {
            content_type,
            body,
            cache_control,
        } => (
            body,
            vec![
                header("Content-Type", &content_type),
                header("Cache-Control", cache_control),
                header("X-Content-Type-Options", "nosniff"),
            ],
        ),
        Reply::Empty => (Vec::new(), Vec::new()),
    };
    headers.extend(CORS.iter().map(|(k, v)| header(k, v)));
    let mut response = Response::from_data(body)
        .with_status_code(StatusCode(status))
        .with_chunked_threshold(usize::MAX);
    for h in headers.into_iter().flatten() {
        response.add_header(h);
    }
    response
}
