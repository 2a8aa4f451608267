//! Turns the YAML reader's messages about a config file into words for the operator: the key
//! once, what was expected as a person says it ("a number from 0 to 65535", not `u16`), what
//! was found, and the line.

/// The message for a config file that does not read, at key `path` ("server.port"), from the
/// reader's own message `inner`.
pub(super) fn parse_error(path: &str, inner: &str) -> String {
    let (body, place) = split_place(inner);
    // The reader names the key (or its section) first; we name it ourselves.
    let body = strip_key_prefix(body, path);
    let said = if let Some(rest) = body
        .strip_prefix("invalid type: ")
        .or_else(|| body.strip_prefix("invalid value: "))
    {
        match rest.rsplit_once(", expected ") {
            Some((got, expected)) => {
                format!(
                    "expected {}, found {}",
                    expected_words(expected),
                    found_words(got)
                )
            }
            None => rest.to_string(),
        }
    } else if let Some(rest) = body.strip_prefix("unknown field ") {
        unknown_key(rest)
    } else if let Some(rest) = body.strip_prefix("unknown variant ") {
        match rest.split_once(", expected ") {
            Some((got, expected)) => format!(
                "{got} is not one of the values this key takes: {}",
                names(expected)
            ),
            None => body.to_string(),
        }
    } else {
        body.to_string()
    };
    let key = if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    };
    format!("{key}{said}{place}")
}

/// `(message, " (line L, column C)")`, the place taken off the end of the message.
fn split_place(inner: &str) -> (&str, String) {
    if let Some((body, at)) = inner.rsplit_once(" at line ")
        && let Some((line, column)) = at.split_once(" column ")
        && line.bytes().all(|b| b.is_ascii_digit())
        && column.bytes().all(|b| b.is_ascii_digit())
    {
        return (body, format!(" (line {line}, column {column})"));
    }
    (inner, String::new())
}

/// `body` without a leading `key: ` naming `path` or one of its sections.
fn strip_key_prefix<'a>(body: &'a str, path: &str) -> &'a str {
    if let Some((prefix, rest)) = body.split_once(": ")
        && !prefix.is_empty()
        && !prefix.contains(' ')
        && (path == prefix || path.starts_with(&format!("{prefix}.")))
    {
        return rest;
    }
    body
}

/// What a type name of the reader means to a person.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        "u8" => "a number from 0 to 255",
        "u16" => "a number from 0 to 65535",
        "u32" => "a number from 0 to 4294967295",
        "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" => "text",
        "a sequence" => "a list",
        "a map" => "a section of keys",
        "a character" => "one character",
        other if other.starts_with("struct ") => "a section of keys",
        other if other.starts_with("a sequence") => "a list",
        other => return other.to_string(),
    };
    words.to_string()
}

/// What the reader found, as a person says it: `string "x"` is the text "x".
fn found_words(got: &str) -> String {
    let bare = |s: &str| s.trim_matches('`').to_string();
    if let Some(text) = got.strip_prefix("string ") {
        format!("the text {text}")
    } else if let Some(n) = got
        .strip_prefix("integer ")
        .or_else(|| got.strip_prefix("floating point "))
    {
        bare(n)
    } else if let Some(b) = got.strip_prefix("boolean ") {
        bare(b)
    } else {
        match got {
            "sequence" => "a list".into(),
            "map" => "a section of keys".into(),
            "unit value" => "nothing".into(),
            other => other.to_string(),
        }
    }
}

/// "unknown key `x`; the keys here: a, b, c", listing each key once (in camelCase where it
/// also has a snake_case alias).
fn unknown_key(rest: &str) -> String {
    match rest.split_once(", expected one of ") {
        Some((key, expected)) => format!("unknown key {key}; the keys here: {}", names(expected)),
        None => match rest.split_once(", there are no fields") {
            Some((key, _)) => format!("unknown key {key}; this section has no keys"),
            None => format!("unknown key {rest}"),
        },
    }
}

/// A list of `` `a`, `b` `` (or "`a` or `b`") as "a, b", without the snake_case aliases of
/// camelCase names.
fn names(list: &str) -> String {
    let all: Vec<&str> = list
        .split([',', ' '])
        .map(|n| n.trim().trim_matches('`'))
        .filter(|n| !n.is_empty() && *n != "or")
        .collect();
    let camel = |n: &str| {
        let mut out = String::new();
        let mut up = false;
        for c in n.chars() {
            if c == '_' {
                up = true;
            } else if up {
                out.extend(c.to_uppercase());
                up = false;
            } else {
                out.push(c);
            }
        }
        out
    };
    all.iter()
        .filter(|n| !(n.contains('_') && all.contains(&camel(n).as_str())))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_once_in_words_with_the_line() {
        assert_eq!(
            parse_error(
                "server.port",
                "server.port: invalid type: string \"eighty\", expected u16 at line 3 column 9"
            ),
            "server.port: expected a number from 0 to 65535, found the text \"eighty\" (line 3, column 9)"
        );
        assert_eq!(
            parse_error(
                "server.port",
                "server.port: invalid value: integer `99999`, expected u16 at line 2 column 9"
            ),
            "server.port: expected a number from 0 to 65535, found 99999 (line 2, column 9)"
        );
        assert_eq!(
            parse_error(
                "session.policy.validation.enabled",
                "session.policy.validation.enabled: invalid type: string \"sometimes\", expected a boolean at line 4 column 16"
            ),
            "session.policy.validation.enabled: expected true or false, found the text \"sometimes\" (line 4, column 16)"
        );
        assert_eq!(
            parse_error(
                "lookup.maxAddresses",
                "lookup.maxAddresses: invalid type: integer `-1`, expected usize at line 2 column 17"
            ),
            "lookup.maxAddresses: expected a whole number, 0 or more, found -1 (line 2, column 17)"
        );
    }

    #[test]
    fn unknown_keys_list_the_keys_once() {
        assert_eq!(
            parse_error(
                "server.prot",
                "server: unknown field `prot`, expected one of `name`, `hostname`, `publicUrl`, `public_url`, `tls` at line 2 column 3"
            ),
            "server.prot: unknown key `prot`; the keys here: name, hostname, publicUrl, tls (line 2, column 3)"
        );
        // Messages of other shapes are kept, with the key in front once.
        assert_eq!(
            parse_error("a.b", "something else at line 1 column 2"),
            "a.b: something else (line 1, column 2)"
        );
        assert_eq!(parse_error("", "no place"), "no place");
    }
}
