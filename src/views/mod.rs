//! The HTML pages a person sees after clicking a validation link, and their static assets.
//!
//! Two pages exist: success ("your address is verified, return to your Matrix client") and
//! failure (what went wrong and what to do next). Each is either the built-in sailfish
//! template (`templates/page/submit_ok.stpl`, `templates/page/submit_failed.stpl`, sharing
//! `layout_start.stpl` and `layout_end.stpl`) or, when configured, an operator's whole-page
//! replacement (`view.session.onTokenSubmit.success` / `.failure`) with `%PLACEHOLDER%`s.
//!
//! Branding (`view.brand.*`) changes the built-in pages without replacing them: the server
//! name, a logo file that replaces the built-in one, and a CSS file linked after the
//! built-in style sheet.
//!
//! Every operator file is read once by [`Views::load`]; nothing touches the file system
//! while serving. Every value put into a page is HTML-escaped. The pages need no
//! JavaScript and load nothing from other origins: their style sheet, logo and icon are
//! served by [`Views::asset`] below [`STATIC_PATH`] (built-in ones are embedded in the
//! binary from `web/`).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use rust_embed::Embed;
use sailfish::TemplateSimple;
use sailfish::runtime::escape::escape_to_string;

use crate::config::ViewConfig;
use crate::error::StartError;
use crate::util::placeholders;
use crate::util::url::UrlParts;

/// URL path (below the public URL's own path) where assets are served:
/// `"/_matrix/identity/_oxisd/static"`.
pub const STATIC_PATH: &str = "/_matrix/identity/_oxisd/static";

/// `Cache-Control` of the assets built into the binary.
const BUILTIN_CACHE: &str = "public, max-age=86400";
/// `Cache-Control` of the operator's files (`view.brand.logo`, `view.brand.css`).
const OVERRIDE_CACHE: &str = "public, max-age=3600";

/// The built-in assets that [`Views::asset`] serves; nothing else in `web/` is reachable.
const BUILTIN_ASSETS: [&str; 3] = ["style.css", "logo.svg", "favicon.svg"];
/// Asset name of `view.brand.css`.
const CUSTOM_CSS: &str = "custom.css";
/// Logo file types accepted for `view.brand.logo`: extension and content type.
const LOGO_TYPES: [(&str, &str); 6] = [
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
];

/// Texts of the success page (the built-in one and the `%TITLE%`, `%MESSAGE%` and `%HINT%`
/// of a replacement page).
const SUCCESS_TITLE: &str = "Your address is verified";
const SUCCESS_MESSAGE: &str =
    "Thank you. You can now return to your Matrix client to finish what you started there.";
const SUCCESS_HINT: &str = "You can close this page.";

/// The files built into the binary (`web/` at the crate root).
#[derive(Embed)]
#[folder = "web/"]
struct BuiltinAssets;

/// What went wrong, for the failure page. All text is plain (escaped when rendered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Short heading, e.g. "This link has expired".
    pub title: String,
    /// What happened, in a sentence or two.
    pub message: String,
    /// What the person can do next; may be empty (then the page shows no hint).
    pub hint: String,
}

impl Failure {
    /// A failure from its three texts.
    pub fn new(
        title: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Failure {
        Failure {
            title: title.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// A static file to answer with.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Value of the `Content-Type` header, e.g. `text/css; charset=utf-8`.
    pub content_type: String,
    /// The file's bytes.
    pub body: Cow<'static, [u8]>,
    /// Value of the `Cache-Control` header.
    pub cache_control: &'static str,
}

/// An operator's file, read at load.
#[derive(Debug, Clone)]
struct OverrideFile {
    /// Asset name it is served under (below [`STATIC_PATH`]).
    name: String,
    content_type: &'static str,
    body: Vec<u8>,
}

/// What every built-in page shows around its own content; see `layout_start.stpl`.
#[derive(Debug, Clone)]
struct Chrome {
    /// Server name shown on pages.
    name: String,
    /// Host (and port, if any) of the public URL.
    host: String,
    /// URL path prefix of the assets, e.g. `/id/_matrix/identity/_oxisd/static`.
    static_url: String,
    /// URL of the logo (built-in or override).
    logo_url: String,
    /// URL of `custom.css` when `view.brand.css` is set.
    custom_css_url: Option<String>,
}

/// The built-in success page.
#[derive(TemplateSimple)]
#[template(path = "page/submit_ok.stpl", rm_whitespace = true)]
struct SubmitOkPage<'a> {
    page: &'a Chrome,
    kind: &'a str,
    title: &'a str,
    message: &'a str,
    hint: &'a str,
}

/// The built-in remote-session page.
#[derive(TemplateSimple)]
#[template(path = "page/remote.stpl", rm_whitespace = true)]
struct RemotePage<'a> {
    page: &'a Chrome,
    kind: &'a str,
    title: &'a str,
    message: &'a str,
    hint: &'a str,
    action_url: &'a str,
    action_label: &'a str,
}

/// A page of the remote-session workflow: texts and an optional button (link and label).
#[derive(Debug, Clone, Default)]
pub struct RemoteView<'a> {
    /// Heading.
    pub title: &'a str,
    /// What happened.
    pub message: &'a str,
    /// What to do next.
    pub hint: &'a str,
    /// The button's link (http(s) URL of ours), or empty.
    pub action_url: &'a str,
    /// The button's text.
    pub action_label: &'a str,
}

/// The built-in failure page.
#[derive(TemplateSimple)]
#[template(path = "page/submit_failed.stpl", rm_whitespace = true)]
struct SubmitFailedPage<'a> {
    page: &'a Chrome,
    kind: &'a str,
    title: &'a str,
    message: &'a str,
    hint: &'a str,
}

/// The web pages and assets, with the operator's branding and replacement pages loaded.
///
/// Built once at start by [`Views::load`]; cheap to share between threads (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct Views {
    chrome: Chrome,
    logo: Option<OverrideFile>,
    css: Option<OverrideFile>,
    success_page: Option<String>,
    failure_page: Option<String>,
}

impl Views {
    /// Loads operator overrides (logo, css, replacement pages) once at start.
    ///
    /// `default_name` is used when `view.brand.name` is unset or blank. `public_url` (e.g.
    /// `https://id.example.org` or `https://example.org/id`, no trailing slash) gives the host
    /// shown on pages and the path prefix of asset links.
    ///
    /// Errors name the config key, e.g. `view.brand.logo: cannot read /x.png: ...`; a logo
    /// whose extension is not png, svg, jpg, jpeg, gif or webp is rejected.
    pub fn load(
        config: &ViewConfig,
        default_name: &str,
        public_url: &str,
    ) -> Result<Views, StartError> {
        let brand = &config.brand;
        let name = brand
            .name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .unwrap_or(default_name)
            .to_owned();
        let (host, path_prefix) = split_public_url(public_url);
        let static_url = format!("{path_prefix}{STATIC_PATH}");

        let logo = match &brand.logo {
            Some(path) => Some(load_logo(path)?),
            None => None,
        };
        let css = match &brand.css {
            Some(path) => Some(OverrideFile {
                name: CUSTOM_CSS.to_owned(),
                content_type: "text/css; charset=utf-8",
                body: read_bytes("view.brand.css", path)?,
            }),
            None => None,
        };
        let pages = &config.session.on_token_submit;
        let success_page = match &pages.success {
            Some(path) => Some(read_text("view.session.onTokenSubmit.success", path)?),
            None => None,
        };
        let failure_page = match &pages.failure {
            Some(path) => Some(read_text("view.session.onTokenSubmit.failure", path)?),
            None => None,
        };

        let logo_name = logo.as_ref().map_or("logo.svg", |logo| logo.name.as_str());
        let chrome = Chrome {
            logo_url: format!("{static_url}/{logo_name}"),
            custom_css_url: css.as_ref().map(|css| format!("{static_url}/{}", css.name)),
            name,
            host,
            static_url,
        };
        log::debug!(
            "views: name {:?}, assets at {}, custom logo: {}, custom css: {}, replacement pages: success {}, failure {}",
            chrome.name,
            chrome.static_url,
            logo.is_some(),
            css.is_some(),
            success_page.is_some(),
            failure_page.is_some()
        );
        Ok(Views {
            chrome,
            logo,
            css,
            success_page,
            failure_page,
        })
    }

    /// The page shown when a validation link worked (HTML, UTF-8).
    pub fn submit_success(&self) -> String {
        if let Some(template) = &self.success_page {
            return self.fill(template, SUCCESS_TITLE, SUCCESS_MESSAGE, SUCCESS_HINT);
        }
        let page = SubmitOkPage {
            page: &self.chrome,
            kind: "ok",
            title: SUCCESS_TITLE,
            message: SUCCESS_MESSAGE,
            hint: SUCCESS_HINT,
        };
        page.render_once().unwrap_or_else(|err| {
            log::error!("views: cannot render the success page: {err}");
            self.fallback(SUCCESS_TITLE, SUCCESS_MESSAGE, SUCCESS_HINT)
        })
    }

    /// A page of the remote-session workflow (HTML, UTF-8). Always the built-in template, with
    /// the branding of `view.brand`.
    pub fn remote_page(&self, view: &RemoteView<'_>, ok: bool) -> String {
        let page = RemotePage {
            page: &self.chrome,
            kind: if ok { "ok" } else { "failed" },
            title: view.title,
            message: view.message,
            hint: view.hint,
            action_url: view.action_url,
            action_label: view.action_label,
        };
        page.render_once().unwrap_or_else(|err| {
            log::error!("views: cannot render a remote-session page: {err}");
            self.fallback(view.title, view.message, view.hint)
        })
    }

    /// The page shown when a validation link did not work (HTML, UTF-8).
    pub fn submit_failure(&self, failure: &Failure) -> String {
        if let Some(template) = &self.failure_page {
            return self.fill(template, &failure.title, &failure.message, &failure.hint);
        }
        let page = SubmitFailedPage {
            page: &self.chrome,
            kind: "failed",
            title: &failure.title,
            message: &failure.message,
            hint: &failure.hint,
        };
        page.render_once().unwrap_or_else(|err| {
            log::error!("views: cannot render the failure page: {err}");
            self.fallback(&failure.title, &failure.message, &failure.hint)
        })
    }

    /// A static asset by file name ("style.css", "logo.svg", "favicon.svg", "custom.css" when
    /// `view.brand.css` is set, and "logo" + the override's extension when `view.brand.logo`
    /// is set). None for anything else, including any name with '/' or "..".
    pub fn asset(&self, name: &str) -> Option<Asset> {
        if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
            return None;
        }
        // The operator's files first: a `logo.svg` override replaces the built-in one.
        for file in [&self.logo, &self.css].into_iter().flatten() {
            if file.name == name {
                return Some(Asset {
                    content_type: file.content_type.to_owned(),
                    body: Cow::Owned(file.body.clone()),
                    cache_control: OVERRIDE_CACHE,
                });
            }
        }
        if !BUILTIN_ASSETS.contains(&name) {
            return None;
        }
        let file = BuiltinAssets::get(name)?;
        let mime = file.metadata.mimetype();
        let content_type = if mime.starts_with("text/") && !mime.contains("charset") {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_owned()
        };
        Some(Asset {
            content_type,
            body: file.data,
            cache_control: BUILTIN_CACHE,
        })
    }

    /// Renders a replacement page: each known `%PLACEHOLDER%` becomes its HTML-escaped value.
    ///
    /// One pass over the operator's template, so a value that itself contains a placeholder
    /// (a title of `%MESSAGE%`, say) is shown as is, never expanded.
    fn fill(&self, template: &str, title: &str, message: &str, hint: &str) -> String {
        let values: [(&str, &str); 7] = [
            ("SERVER_NAME", &self.chrome.name),
            ("SERVER_HOST", &self.chrome.host),
            ("TITLE", title),
            ("MESSAGE", message),
            ("HINT", hint),
            ("STATIC_URL", &self.chrome.static_url),
            ("LOGO_URL", &self.chrome.logo_url),
        ];
        let mut out = String::with_capacity(template.len() + 256);
        placeholders::fill_into(template, &mut out, |name, out| {
            match values.iter().find(|(key, _)| *key == name) {
                Some((_, value)) => {
                    escape_to_string(value, out);
                    true
                }
                None => false,
            }
        });
        out
    }

    /// A bare page, used only if a built-in template fails to render (it should not).
    fn fallback(&self, title: &str, message: &str, hint: &str) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
        );
        escape_to_string(title, &mut out);
        out.push_str("</title>\n</head>\n<body>\n<main>\n<h1>");
        escape_to_string(title, &mut out);
        out.push_str("</h1>\n<p>");
        escape_to_string(message, &mut out);
        out.push_str("</p>\n<p>");
        escape_to_string(hint, &mut out);
        out.push_str("</p>\n<p>");
        escape_to_string(&self.chrome.name, &mut out);
        out.push_str(" (");
        escape_to_string(&self.chrome.host, &mut out);
        out.push_str(")</p>\n</main>\n</body>\n</html>\n");
        out
    }
}

/// Splits a public URL into the host shown on pages and the path prefix of links.
///
/// `https://example.org:8443/id/` gives `("example.org:8443", "/id")`; a URL without a path
/// gives an empty prefix. Any user info, query or fragment is dropped. (The URL is
/// `server.publicUrl`, which validation made an `http://` or `https://` one.)
fn split_public_url(public_url: &str) -> (String, String) {
    let parts = UrlParts::split(public_url.trim());
    (
        parts.host_port().to_owned(),
        parts.path.trim_end_matches('/').to_owned(),
    )
}

/// Checks the extension of `view.brand.logo`, then reads it.
fn load_logo(path: &Path) -> Result<OverrideFile, StartError> {
    const KEY: &str = "view.brand.logo";
    let ext = path
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let Some((ext, content_type)) = LOGO_TYPES.iter().find(|(known, _)| *known == ext) else {
        return Err(StartError::setting(
            KEY,
            format!(
                "{}: unsupported image type (use a .png, .svg, .jpg, .jpeg, .gif or .webp file)",
                path.display()
            ),
        ));
    };
    Ok(OverrideFile {
        name: format!("logo.{ext}"),
        content_type,
        body: read_bytes(KEY, path)?,
    })
}

/// Reads an operator's file; the error names the config key.
fn read_bytes(key: &str, path: &Path) -> Result<Vec<u8>, StartError> {
    fs::read(path).map_err(|err| cannot_read(key, path, err))
}

/// Reads an operator's UTF-8 text file; the error names the config key.
fn read_text(key: &str, path: &Path) -> Result<String, StartError> {
    fs::read_to_string(path).map_err(|err| cannot_read(key, path, err))
}

fn cannot_read(key: &str, path: &Path, err: std::io::Error) -> StartError {
    StartError::setting(key, format!("cannot read {}: {err}", path.display()))
}

#[cfg(test)]
mod tests;
