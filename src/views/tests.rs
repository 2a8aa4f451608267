//! Tests of the pages and assets: escaping, overrides, asset lookup, load errors.
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::config::{BrandConfig, OnTokenSubmitViews, ViewSessionConfig};

const HOSTILE: &str = r#"<script>alert(1)</script> "q" 'a' & co"#;
const HOSTILE_ESCAPED: &str =
    "&lt;script&gt;alert(1)&lt;/script&gt; &quot;q&quot; &#039;a&#039; &amp; co";
const REPLACEMENT: &str = "<!doctype html><title>%TITLE%</title>\
    <link rel=\"stylesheet\" href=\"%STATIC_URL%/style.css\">\
    <p id=n>%SERVER_NAME%</p><p id=h>%SERVER_HOST%</p><p id=m>%MESSAGE%</p>\
    <p id=x>%HINT%</p><p id=u>%UNKNOWN% 100%</p>";

/// A fresh folder for one test's files.
fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oxisd-views-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    path
}

fn views(config: &ViewConfig) -> Views {
    Views::load(config, "example.org", "https://id.example.org").unwrap()
}

fn hostile_failure() -> Failure {
    Failure::new(HOSTILE, HOSTILE, HOSTILE)
}

fn with_name(name: &str) -> ViewConfig {
    ViewConfig {
        brand: BrandConfig {
            name: Some(name.to_owned()),
            ..BrandConfig::default()
        },
        ..ViewConfig::default()
    }
}

fn with_pages(success: PathBuf, failure: PathBuf, name: &str) -> ViewConfig {
    ViewConfig {
        brand: BrandConfig {
            name: Some(name.to_owned()),
            ..BrandConfig::default()
        },
        session: ViewSessionConfig {
            on_token_submit: OnTokenSubmitViews {
                success: Some(success),
                failure: Some(failure),
            },
        },
    }
}

fn assert_escaped(html: &str) {
    assert!(!html.contains("<script>"), "raw tag in:\n{html}");
    assert!(
        html.contains(HOSTILE_ESCAPED),
        "escaped form missing in:\n{html}"
    );
}

#[test]
fn success_page_with_default_name() {
    let html = views(&ViewConfig::default()).submit_success();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains(SUCCESS_TITLE));
    assert!(html.contains("Matrix client"));
    assert!(html.contains(
        "You are on <strong class=\"brand-name\">example.org</strong> \
         <span class=\"brand-host\">(id.example.org)</span>"
    ));
    assert!(html.contains("href=\"/_matrix/identity/_oxisd/static/style.css\""));
    assert!(html.contains("src=\"/_matrix/identity/_oxisd/static/logo.svg\""));
    assert!(html.contains("href=\"/_matrix/identity/_oxisd/static/favicon.svg\""));
    assert!(!html.contains("custom.css"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn failure_page_with_custom_name() {
    let views = views(&with_name("  Acme IDs "));
    let html = views.submit_failure(&Failure::new(
        "This link has expired",
        "The link in your email is no longer valid.",
        "Go back to your Matrix client and ask for a new email.",
    ));
    assert!(html.contains("<strong class=\"brand-name\">Acme IDs</strong>"));
    assert!(html.contains("(id.example.org)"));
    assert!(html.contains("<h1>This link has expired</h1>"));
    assert!(html.contains("The link in your email is no longer valid."));
    assert!(html.contains("What to do next"));
    assert!(html.contains("ask for a new email"));
    assert!(html.contains("card-failed"));

    let success = views.submit_success();
    assert!(success.contains("Acme IDs"));
    assert!(success.contains("card-ok"));
}

#[test]
fn failure_page_without_hint_has_no_hint_box() {
    let html = views(&ViewConfig::default()).submit_failure(&Failure::new("Oops", "Bad.", ""));
    assert!(!html.contains("What to do next"));
}

#[test]
fn blank_name_falls_back_to_default() {
    let html = views(&with_name("   ")).submit_success();
    assert!(html.contains("<strong class=\"brand-name\">example.org</strong>"));
}

#[test]
fn builtin_pages_escape_hostile_input() {
    let views = views(&with_name(HOSTILE));
    assert_escaped(&views.submit_success());
    let html = views.submit_failure(&hostile_failure());
    assert_escaped(&html);
    // Name, title (twice: <title> and <h1>), message and hint are all escaped.
    assert!(html.matches(HOSTILE_ESCAPED).count() >= 5, "{html}");
}

#[test]
fn replacement_pages_escape_hostile_input() {
    let dir = temp_dir();
    let ok = write(&dir, "ok.html", REPLACEMENT.as_bytes());
    let failed = write(&dir, "failed.html", REPLACEMENT.as_bytes());
    let views = Views::load(
        &with_pages(ok, failed, HOSTILE),
        "x",
        "https://example.org/id",
    )
    .unwrap();

    let html = views.submit_failure(&hostile_failure());
    assert_escaped(&html);
    assert!(html.contains(&format!("<title>{HOSTILE_ESCAPED}</title>")));
    assert!(html.contains(&format!("<p id=n>{HOSTILE_ESCAPED}</p>")));
    assert!(html.contains(&format!("<p id=m>{HOSTILE_ESCAPED}</p>")));
    assert!(html.contains(&format!("<p id=x>{HOSTILE_ESCAPED}</p>")));
    assert!(html.contains("<p id=h>example.org</p>"));
    assert!(html.contains("href=\"/id/_matrix/identity/_oxisd/static/style.css\""));
    // Unknown placeholders and lone percent signs stay as they are.
    assert!(html.contains("<p id=u>%UNKNOWN% 100%</p>"));

    let html = views.submit_success();
    assert_escaped(&html);
    assert!(html.contains(&format!("<title>{SUCCESS_TITLE}</title>")));
    assert!(html.contains(&format!("<p id=x>{SUCCESS_HINT}</p>")));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn replacement_values_are_not_expanded_again() {
    let dir = temp_dir();
    let page = write(&dir, "page.html", b"[%TITLE%][%MESSAGE%]");
    let views = Views::load(&with_pages(page.clone(), page, "n"), "x", "https://h").unwrap();
    let html = views.submit_failure(&Failure::new("%MESSAGE%", "m", ""));
    assert_eq!(html, "[%MESSAGE%][m]");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn builtin_assets() {
    let views = views(&ViewConfig::default());
    let css = views.asset("style.css").unwrap();
    assert_eq!(css.content_type, "text/css; charset=utf-8");
    assert_eq!(css.cache_control, "public, max-age=86400");
    assert!(
        std::str::from_utf8(&css.body)
            .unwrap()
            .contains("prefers-color-scheme")
    );
    for name in ["logo.svg", "favicon.svg"] {
        let svg = views.asset(name).unwrap();
        assert_eq!(svg.content_type, "image/svg+xml");
        assert_eq!(svg.cache_control, "public, max-age=86400");
        assert!(svg.body.starts_with(b"<svg"));
    }
}

#[test]
fn unknown_and_traversal_assets() {
    let views = views(&ViewConfig::default());
    for name in [
        "",
        "nope.css",
        "custom.css",
        "logo.png",
        "../Cargo.toml",
        "..",
        "../web/style.css",
        "./style.css",
        "/style.css",
        "web/style.css",
        "..\\Cargo.toml",
        "style.css/",
    ] {
        assert!(views.asset(name).is_none(), "{name:?} was served");
    }
}

#[test]
fn custom_css_and_logo() {
    let dir = temp_dir();
    let css = write(&dir, "brand.css", b"body { color: red }");
    let logo = write(&dir, "Brand.PNG", b"\x89PNG fake");
    let config = ViewConfig {
        brand: BrandConfig {
            name: None,
            logo: Some(logo),
            css: Some(css),
        },
        ..ViewConfig::default()
    };
    let views = views(&config);

    let asset = views.asset("custom.css").unwrap();
    assert_eq!(asset.content_type, "text/css; charset=utf-8");
    assert_eq!(asset.cache_control, "public, max-age=3600");
    assert_eq!(&*asset.body, b"body { color: red }");

    let asset = views.asset("logo.png").unwrap();
    assert_eq!(asset.content_type, "image/png");
    assert_eq!(asset.cache_control, "public, max-age=3600");
    assert_eq!(&*asset.body, b"\x89PNG fake");

    let html = views.submit_failure(&Failure::new("t", "m", "h"));
    assert!(
        html.contains(
            "<link rel=\"stylesheet\" href=\"/_matrix/identity/_oxisd/static/custom.css\">"
        )
    );
    assert!(html.contains("src=\"/_matrix/identity/_oxisd/static/logo.png\""));
    assert!(!html.contains("logo.svg"));
    // The custom style sheet comes after the built-in one, so it wins.
    let builtin = html.find("/style.css").unwrap();
    let custom = html.find("/custom.css").unwrap();
    assert!(builtin < custom);
    // Files are read once, at load.
    fs::remove_dir_all(dir).unwrap();
    assert!(views.asset("custom.css").is_some());
    assert!(views.asset("style.css").is_some());
}

#[test]
fn svg_logo_override_replaces_builtin() {
    let dir = temp_dir();
    let logo = write(&dir, "mark.svg", b"<svg id=\"custom\"/>");
    let config = ViewConfig {
        brand: BrandConfig {
            logo: Some(logo),
            ..BrandConfig::default()
        },
        ..ViewConfig::default()
    };
    let asset = views(&config).asset("logo.svg").unwrap();
    assert_eq!(&*asset.body, b"<svg id=\"custom\"/>");
    assert_eq!(asset.content_type, "image/svg+xml");
    assert_eq!(asset.cache_control, "public, max-age=3600");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn load_errors_name_the_key() {
    let missing = PathBuf::from("/nonexistent/oxisd/file");
    let cases: [(&str, ViewConfig); 5] = [
        (
            "view.brand.logo: cannot read /nonexistent/oxisd/file.png: ",
            ViewConfig {
                brand: BrandConfig {
                    logo: Some(missing.with_extension("png")),
                    ..BrandConfig::default()
                },
                ..ViewConfig::default()
            },
        ),
        (
            "view.brand.logo: /nonexistent/oxisd/file.bmp: unsupported image type",
            ViewConfig {
                brand: BrandConfig {
                    logo: Some(missing.with_extension("bmp")),
                    ..BrandConfig::default()
                },
                ..ViewConfig::default()
            },
        ),
        (
            "view.brand.css: cannot read /nonexistent/oxisd/file: ",
            ViewConfig {
                brand: BrandConfig {
                    css: Some(missing.clone()),
                    ..BrandConfig::default()
                },
                ..ViewConfig::default()
            },
        ),
        (
            "view.session.onTokenSubmit.success: cannot read /nonexistent/oxisd/file: ",
            ViewConfig {
                session: ViewSessionConfig {
                    on_token_submit: OnTokenSubmitViews {
                        success: Some(missing.clone()),
                        failure: None,
                    },
                },
                ..ViewConfig::default()
            },
        ),
        (
            "view.session.onTokenSubmit.failure: cannot read /nonexistent/oxisd/file: ",
            ViewConfig {
                session: ViewSessionConfig {
                    on_token_submit: OnTokenSubmitViews {
                        success: None,
                        failure: Some(missing.clone()),
                    },
                },
                ..ViewConfig::default()
            },
        ),
    ];
    for (expected, config) in cases {
        let err = Views::load(&config, "n", "https://h")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(expected),
            "{err:?} does not start with {expected:?}"
        );
    }

    // A logo without an extension is rejected too, before it is read.
    let config = ViewConfig {
        brand: BrandConfig {
            logo: Some(missing),
            ..BrandConfig::default()
        },
        ..ViewConfig::default()
    };
    let err = Views::load(&config, "n", "https://h")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported image type"), "{err}");
}

#[test]
fn asset_urls_follow_the_public_url_path() {
    let views = Views::load(
        &ViewConfig::default(),
        "example.org",
        "https://example.org/id",
    )
    .unwrap();
    let html = views.submit_success();
    assert!(html.contains("href=\"/id/_matrix/identity/_oxisd/static/style.css\""));
    assert!(html.contains("src=\"/id/_matrix/identity/_oxisd/static/logo.svg\""));
    assert!(html.contains("(example.org)"));
}

#[test]
fn views_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Views>();
}

#[test]
fn public_url_parts() {
    let cases = [
        ("https://id.example.org", "id.example.org", ""),
        ("https://example.org/id", "example.org", "/id"),
        ("https://example.org/id/", "example.org", "/id"),
        (
            "https://example.org:8443/a/b?x=1#f",
            "example.org:8443",
            "/a/b",
        ),
        ("http://u:p@[::1]:8090/", "[::1]:8090", ""),
    ];
    for (url, host, prefix) in cases {
        assert_eq!(
            split_public_url(url),
            (host.to_owned(), prefix.to_owned()),
            "{url}"
        );
    }
}
