//! What an email template file may be, and how one that is only a body becomes a message.
//!
//! A template is either a complete message (headers, a blank line, the body; as the built-in
//! ones in `templates/email/`) or only a body: plain text, or HTML when it starts with `<`.
//! A body gets the built-in headers (From, To, Date, Message-ID as in the built-in templates)
//! and a subject from the config (`...generators.subject.*`, with placeholders), or else the
//! built-in template's subject. The configured subject also replaces the built-in template's.

use std::path::Path;

use crate::error::StartError;

/// One email template's text as loaded, before rendering.
pub(super) struct Source<'a> {
    /// The operator's file's text, or `None` for the built-in template.
    pub file: Option<&'a str>,
    /// The built-in template (complete message).
    pub builtin: &'a str,
    /// The configured subject, if any.
    pub subject: Option<&'a str>,
    /// The config key of the template, and the operator's file.
    pub key: &'a str,
    pub path: Option<&'a Path>,
    /// The config key of the subject.
    pub subject_key: &'a str,
}

/// The template to render: a complete message with placeholders.
pub(super) fn prepare(source: &Source<'_>) -> Result<String, StartError> {
    let Some(text) = source.file else {
        return Ok(match source.subject {
            Some(subject) => with_subject(source.builtin, subject),
            None => source.builtin.to_string(),
        });
    };
    let file = source
        .path
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let what = format!("{}: {file}", source.key);
    if text.trim().is_empty() {
        return Err(StartError::setting(
            source.key,
            format!("{file}: the template is empty"),
        ));
    }
    let normalised = text.replace("\r\n", "\n");
    let head = normalised.split("\n\n").next().unwrap_or("");
    if !starts_with_headers(head) {
        let subject = source
            .subject
            .map(str::to_string)
            .or_else(|| subject_of(source.builtin))
            .unwrap_or_default();
        return Ok(message_around(text, &subject));
    }
    let names: Vec<String> = head
        .lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
        .collect();
    if !names.iter().any(|n| n == "subject") {
        return Err(StartError::setting(
            source.key,
            format!(
                "{file} starts with headers but has no Subject: header; add one, or start the \
                 file with its text (no headers) and oxisd adds the headers, with the subject of \
                 {}",
                source.subject_key
            ),
        ));
    }
    for header in ["from", "to", "date"] {
        if !names.iter().any(|n| n == header) {
            log::warn!("{what} has no {header}: header; the message is sent without it");
        }
    }
    if source.subject.is_some() {
        log::warn!(
            "{} is set, but {what} is a complete message with its own Subject: header, which is used",
            source.subject_key
        );
    }
    Ok(text.to_string())
}

/// Whether `head` (the text before the first blank line) is a block of header lines: each one
/// `Name: value` (a name of letters, digits and dashes) or a folded continuation of one.
fn starts_with_headers(head: &str) -> bool {
    let mut lines = head.lines();
    let header = |l: &str| {
        l.split_once(':').is_some_and(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    };
    lines.next().is_some_and(header) && lines.all(|l| l.starts_with([' ', '\t']) || header(l))
}

/// The value of the Subject header of a complete message (unfolded), if it has one.
fn subject_of(message: &str) -> Option<String> {
    let normalised = message.replace("\r\n", "\n");
    let head = normalised.split("\n\n").next()?;
    let mut subject: Option<String> = None;
    for line in head.lines() {
        match &mut subject {
            Some(s) if line.starts_with([' ', '\t']) => s.push_str(line),
            Some(_) => break,
            None => {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("subject")
                {
                    subject = Some(value.trim().to_string());
                }
            }
        }
    }
    subject
}

/// `message` (complete) with its Subject header replaced by `subject`.
fn with_subject(message: &str, subject: &str) -> String {
    let mut out = String::with_capacity(message.len() + subject.len());
    let mut in_head = true;
    let mut skipping = false;
    for line in message.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if in_head && bare.is_empty() {
            in_head = false;
        }
        if in_head {
            if skipping && line.starts_with([' ', '\t']) {
                continue;
            }
            skipping = false;
            if bare
                .split_once(':')
                .is_some_and(|(name, _)| name.eq_ignore_ascii_case("subject"))
            {
                out.push_str("Subject: ");
                out.push_str(subject);
                out.push_str(&line[bare.len()..]);
                skipping = true;
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// A complete message around the body `body`: the built-in templates' headers, `subject`, and
/// a content type from the body (HTML when it starts with `<`).
fn message_around(body: &str, subject: &str) -> String {
    let kind = if body.trim_start().starts_with('<') {
        "html"
    } else {
        "plain"
    };
    format!(
        "From: %FROM_NAME% <%FROM_EMAIL%>\nTo: %RECIPIENT_ADDRESS%\nSubject: {subject}\n\
         Date: %DATE%\nMessage-ID: %MESSAGE_ID%\nMIME-Version: 1.0\n\
         Content-Type: text/{kind}; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: &str = "From: a\nTo: b\nSubject: Built in for %DOMAIN%\nDate: d\n\nbody\n";

    fn source<'a>(file: Option<&'a str>, subject: Option<&'a str>) -> Source<'a> {
        Source {
            file,
            builtin: BUILTIN,
            subject,
            key: "template.x",
            path: Some(Path::new("f")),
            subject_key: "subject.x",
        }
    }

    #[test]
    fn builtin_templates_are_used_as_they_are_or_with_the_configured_subject() {
        assert_eq!(prepare(&source(None, None)).unwrap(), BUILTIN);
        assert_eq!(
            prepare(&source(None, Some("Hi %DOMAIN%"))).unwrap(),
            "From: a\nTo: b\nSubject: Hi %DOMAIN%\nDate: d\n\nbody\n"
        );
        // A folded subject is replaced whole; the body is untouched.
        let folded = "Subject: one\n two\nTo: b\n\nSubject: in the body\n";
        assert_eq!(
            with_subject(folded, "new"),
            "Subject: new\nTo: b\n\nSubject: in the body\n"
        );
        assert_eq!(subject_of(folded).as_deref(), Some("one two"));
    }

    #[test]
    fn complete_messages_are_kept_and_need_a_subject() {
        let full = "Subject: mine\r\nFrom: a\r\n\r\ntext";
        assert_eq!(prepare(&source(Some(full), None)).unwrap(), full);
        assert_eq!(prepare(&source(Some(full), Some("other"))).unwrap(), full);
        let err = prepare(&source(Some("From: a\nTo: b\n\nbody"), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no Subject: header") && err.contains("subject.x"),
            "{err}"
        );
        assert!(prepare(&source(Some(" \n\n"), None)).is_err());
    }

    #[test]
    fn bodies_get_the_headers_and_a_subject() {
        let text = prepare(&source(
            Some("Hello,\n\nyour code: %VALIDATION_TOKEN%\n"),
            None,
        ))
        .unwrap();
        let (head, body) = text.split_once("\n\n").unwrap();
        assert!(
            head.contains("\nSubject: Built in for %DOMAIN%\n"),
            "{head}"
        );
        assert!(
            head.contains("Content-Type: text/plain; charset=UTF-8"),
            "{head}"
        );
        for h in [
            "From: ",
            "To: %RECIPIENT_ADDRESS%",
            "Date: ",
            "Message-ID: ",
        ] {
            assert!(head.contains(h), "{h} in {head}");
        }
        assert_eq!(body, "Hello,\n\nyour code: %VALIDATION_TOKEN%\n");
        let html = prepare(&source(
            Some("<!DOCTYPE html>\n<p>Hi: <a href=\"%LINK%\">x</a></p>"),
            Some("Yours"),
        ))
        .unwrap();
        assert!(html.contains("\nSubject: Yours\n"), "{html}");
        assert!(
            html.contains("Content-Type: text/html; charset=UTF-8"),
            "{html}"
        );
        // Lines with a colon that are not headers do not make a header block.
        for body in [
            "Hi Alice: here it is",
            "Note:\nsomething\n\nmore",
            "x:y\nplain line",
        ] {
            assert!(
                !starts_with_headers(body.split("\n\n").next().unwrap()),
                "{body}"
            );
        }
    }
}
