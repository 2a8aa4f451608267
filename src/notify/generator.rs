//! Renders notification templates: `%NAME%` placeholders (mxisd's names) replaced by values,
//! escaped for where they land.
//!
//! Email templates are complete RFC 5322 messages. The renderer follows the message structure
//! line by line, so a value is made safe for its context:
//! - every value loses its control characters (CR and LF included), so no value can start a
//!   new header, MIME part or line;
//! - in headers: non-ASCII text becomes an RFC 2047 encoded word; in address headers (From,
//!   To, ...) a display name with special characters does too, while addresses stay as they are;
//! - in `text/html` parts: HTML-escaped;
//! - elsewhere (text/plain, SMS): as is.
//!
//! Every placeholder also exists with an `_URL_ENCODED` suffix. Unknown placeholders are left
//! untouched. The output has CRLF line endings.

use sailfish::runtime::escape::escape_to_string;

use crate::crypto::base64;
use crate::threepid::params::url_encode;
use crate::util::placeholders;

/// How a value may be written into an address header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Free text (names, subjects, links, codes).
    Text,
    /// A bare email address (never encoded or quoted).
    Address,
}

/// The values of a message's placeholders.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    vars: Vec<(&'static str, String, ValueKind)>,
}

impl Vars {
    /// Sets a text placeholder.
    pub fn text(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.set(name, value.into(), ValueKind::Text)
    }

    /// Sets an address placeholder.
    pub fn address(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        self.set(name, value.into(), ValueKind::Address)
    }

    fn set(&mut self, name: &'static str, value: String, kind: ValueKind) -> &mut Self {
        let clean: String = value.chars().filter(|c| !c.is_control()).collect();
        self.vars.retain(|(n, _, _)| *n != name);
        self.vars.push((name, clean, kind));
        self
    }

    /// The value of a placeholder, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.lookup(name).map(|(v, _)| v)
    }

    fn lookup(&self, name: &str) -> Option<(&str, ValueKind)> {
        self.vars
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, k)| (v.as_str(), *k))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    AddressHeader,
    OtherHeader,
    Html,
    Text,
}

/// Renders a plain-text template (SMS): values without control characters, nothing escaped.
pub fn render_text(template: &str, vars: &Vars) -> String {
    template
        .lines()
        .map(|l| substitute(l, vars, Context::Text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders an email template into the message to send, with CRLF line endings.
pub fn render_email(template: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut in_top_headers = true;
    let mut in_part_headers = false;
    let mut header_name = String::new();
    let mut top_is_html = false;
    let mut part_is_html = false;
    let mut body_is_html = false;
    for line in template.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let ctx = if in_top_headers || in_part_headers {
            if line.is_empty() {
                if in_top_headers {
                    in_top_headers = false;
                    body_is_html = top_is_html;
                } else {
                    in_part_headers = false;
                    body_is_html = part_is_html;
                }
                Context::Text
            } else {
                if !line.starts_with([' ', '\t']) {
                    header_name = line
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                }
                let is_html = header_name == "content-type"
                    && line.to_ascii_lowercase().contains("text/html");
                if in_top_headers {
                    top_is_html |= is_html;
                } else {
                    part_is_html |= is_html;
                }
                match header_name.as_str() {
                    "from" | "to" | "cc" | "bcc" | "reply-to" | "sender" => Context::AddressHeader,
                    _ => Context::OtherHeader,
                }
            }
        } else if line.starts_with("--") && !line.starts_with("---") {
            // A MIME boundary: part headers follow.
            in_part_headers = true;
            part_is_html = false;
            Context::Text
        } else if body_is_html {
            Context::Html
        } else {
            Context::Text
        };
        out.push_str(&substitute(line, vars, ctx));
        out.push_str("\r\n");
    }
    // The template's final newline already ended the last line.
    if template.ends_with('\n') {
        out.truncate(out.len() - 2);
    }
    out
}

/// Fills the placeholders of one line, each value made safe for `ctx`.
fn substitute(line: &str, vars: &Vars, ctx: Context) -> String {
    placeholders::fill(line, |name, out| match resolve(name, vars, ctx) {
        Some(value) => {
            out.push_str(&value);
            true
        }
        None => false,
    })
}

fn resolve(name: &str, vars: &Vars, ctx: Context) -> Option<String> {
    if let Some(base) = name.strip_suffix("_URL_ENCODED") {
        let (value, _) = vars.lookup(base)?;
        return Some(url_encode(value));
    }
    let (value, kind) = vars.lookup(name)?;
    Some(match ctx {
        Context::Text => value.to_string(),
        Context::Html => {
            // & < > " ' all escaped: safe in element content and in quoted attribute values.
            let mut escaped = String::with_capacity(value.len());
            escape_to_string(value, &mut escaped);
            escaped
        }
        Context::OtherHeader => header_text(value),
        Context::AddressHeader if kind == ValueKind::Address => value.to_string(),
        Context::AddressHeader => header_phrase(value),
    })
}

fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        encoded_words(s)
    }
}

fn header_phrase(s: &str) -> String {
    const SPECIALS: &[char] = &[
        '(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '.', '"',
    ];
    if s.is_ascii() && !s.contains(SPECIALS) {
        s.to_string()
    } else {
        encoded_words(s)
    }
}

/// RFC 2047 `=?UTF-8?B?...?=` words of at most 75 characters, split on character boundaries.
fn encoded_words(s: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            // Padded standard base64, as RFC 2047 wants.
            let mut b = base64::encode(w.as_bytes());
            while !b.len().is_multiple_of(4) {
                b.push('=');
            }
            format!("=?UTF-8?B?{b}?=")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "From: %FROM_NAME% <%FROM_EMAIL%>\nTo: %RECIPIENT_ADDRESS%\nSubject: Hi from %DOMAIN%\nContent-Type: multipart/alternative; boundary=\"B\"\n\n--B\nContent-Type: text/plain; charset=UTF-8\n\nName: %FROM_NAME% 100%\nLink: %LINK%\n--B\nContent-Type: text/html; charset=UTF-8\n\n<p>%FROM_NAME%</p><a href=\"%LINK%\">go</a> %LINK_URL_ENCODED%\n--B--\n";

    fn vars(name: &str) -> Vars {
        let mut v = Vars::default();
        v.text("FROM_NAME", name)
            .address("FROM_EMAIL", "id@example.org")
            .address("RECIPIENT_ADDRESS", "alice@example.org")
            .text("DOMAIN", "example.org")
            .text("LINK", "https://id.example.org/x?a=1&b=2");
        v
    }

    #[test]
    fn renders_with_crlf_and_context_escaping() {
        let out = render_email(TEMPLATE, &vars("Example <Admins>"));
        assert!(out.contains("\r\nTo: alice@example.org\r\n"), "{out}");
        assert!(
            !out.contains("\n\n") && !out.replace("\r\n", "").contains('\n'),
            "bare LF: {out:?}"
        );
        // Header phrase with specials is encoded, the text part is raw, the HTML part escaped.
        assert!(out.starts_with("From: =?UTF-8?B?"), "{out}");
        assert!(out.contains("Name: Example <Admins> 100%"), "{out}");
        assert!(out.contains("<p>Example &lt;Admins&gt;</p>"), "{out}");
        assert!(
            out.contains("href=\"https://id.example.org/x?a=1&amp;b=2\""),
            "{out}"
        );
        assert!(
            out.contains("https%3A%2F%2Fid.example.org%2Fx%3Fa%3D1%26b%3D2"),
            "{out}"
        );
        assert!(out.ends_with("--B--\r\n"), "{out:?}");
    }

    #[test]
    fn html_parts_escape_quotes_for_attributes() {
        let mut v = vars("O'Neil \"x\" & co");
        v.text("LINK", "https://x.test/\"><script>");
        let out = render_email(TEMPLATE, &v);
        assert!(
            out.contains("<p>O&#039;Neil &quot;x&quot; &amp; co</p>"),
            "{out}"
        );
        assert!(
            out.contains("href=\"https://x.test/&quot;&gt;&lt;script&gt;\""),
            "{out}"
        );
    }

    #[test]
    fn header_injection_is_impossible() {
        let out = render_email(
            TEMPLATE,
            &vars("Evil\r\nBcc: victim@example.org\r\n\r\nbody"),
        );
        let headers = out.split("\r\n\r\n").next().unwrap();
        assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{headers}");
        assert_eq!(headers.lines().count(), 4, "{headers}");
        // The text part keeps the words but on the same line.
        assert!(
            out.contains("Name: EvilBcc: victim@example.orgbody 100%"),
            "{out}"
        );
    }

    #[test]
    fn non_ascii_header_values_are_encoded_words() {
        let mut v = vars("Zoë");
        v.text("DOMAIN", "exämple.org");
        let out = render_email(TEMPLATE, &v);
        let subject = out.lines().find(|l| l.starts_with("Subject:")).unwrap();
        assert!(
            subject.starts_with("Subject: Hi from =?UTF-8?B?"),
            "{subject}"
        );
        let encoded = subject
            .trim_start_matches("Subject: Hi from =?UTF-8?B?")
            .trim_end_matches("?=");
        assert_eq!(base64::decode(encoded).unwrap(), "exämple.org".as_bytes());
        let long = encoded_words(&"é".repeat(100));
        assert!(long.split(' ').all(|w| w.len() <= 75), "{long}");
    }

    #[test]
    fn unknown_placeholders_and_percent_signs_are_kept() {
        let v = vars("x");
        assert_eq!(
            render_text("%UNKNOWN% 50% %DOMAIN%%", &v),
            "%UNKNOWN% 50% example.org%"
        );
        assert_eq!(render_text("%DOMAIN_URL_ENCODED%", &v), "example.org");
    }
}
