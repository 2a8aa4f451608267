//! The config file read in two steps: YAML into a plain tree (`serde_json::Value`), then the
//! tree into the typed config.
//!
//! Why not straight from YAML: serde derives one copy of every config struct's reading code
//! per input format, and the YAML reader's is large; with some seventy structs that was about
//! 0.6 MB of the binary, which must fit 8 MiB on ARM (docs/ARM.md). Reading a tree needs one
//! copy of the YAML reader (for the tree) and small copies for the structs.
//!
//! [`like_yaml`] makes the tree read as YAML would be read (empty values and plain numbers
//! where text is expected), and [`locate`] finds the line and column of a key path in the
//! file, for error messages.

use serde_json::Value;

/// Reads the tree as YAML would be read into the config's types, with the defaults' tree as
/// the guide to which values are text: an empty value (`key:`, null in the tree) is an empty
/// string where the default is text, and a plain number or `true`/`false` is text there too
/// (`token: 1234567890123456`). Where the default is not set (an optional key), null stays
/// "not set". A `snake_case` key the defaults write in camelCase is renamed to it (every key
/// is accepted in both); keys the defaults do not have are left for the reading to refuse.
pub(super) fn like_yaml(tree: &mut Value, defaults: &Value) {
    match (tree, defaults) {
        (Value::Object(map), Value::Object(guide)) => {
            // snake_case keys the defaults write in camelCase take that name.
            let renames: Vec<(String, String)> = map
                .keys()
                .filter(|k| !guide.contains_key(*k) && k.contains('_'))
                .map(|k| (k.clone(), camel_case(k)))
                .filter(|(_, camel)| guide.contains_key(camel) && !map.contains_key(camel))
                .collect();
            for (snake, camel) in renames {
                if let Some(value) = map.remove(&snake) {
                    map.insert(camel, value);
                }
            }
            for (key, value) in map.iter_mut() {
                if let Some(guide) = guide.get(key) {
                    like_yaml(value, guide);
                }
            }
        }
        (Value::Array(items), Value::Array(guide)) => {
            if let Some(first) = guide.first() {
                for item in items {
                    like_yaml(item, first);
                }
            }
        }
        (value @ Value::Null, Value::String(_)) => *value = Value::String(String::new()),
        (value @ (Value::Number(_) | Value::Bool(_)), Value::String(_)) => {
            *value = Value::String(value.to_string());
        }
        _ => {}
    }
}

/// `snake_case` as `camelCase`.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// One step of a key path: a mapping key or a list index.
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// The 1-based line and column of the value at `path` in the YAML `text` (of the key, when
/// it has no value on its line), or of the deepest step found. Block and flow mappings
/// (`key: {a: 1}`) and block lists (`- item`); a guide for the reader, not a YAML parser.
pub(super) fn locate(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    // The block being searched: lines from `from` while indented more than `parent`.
    let (mut from, mut parent): (usize, Option<usize>) = (0, None);
    // The line of the step found last (a flow mapping there holds the next step's key).
    let mut own_line: Option<usize> = None;
    for step in path {
        let mut hit = None;
        for (n, line) in lines.iter().enumerate().skip(from) {
            let content = line.split(" #").next().unwrap_or("");
            if content.trim().is_empty() || content.trim_start().starts_with('#') {
                continue;
            }
            let indent = content.len() - content.trim_start().len();
            let on_own_line = own_line == Some(n);
            if n > from && !on_own_line && parent.is_some_and(|p| indent <= p) {
                break;
            }
            match step {
                Step::Key(key) => {
                    // Block style (`key:`, `- key:`) or inside a flow mapping on this line.
                    let body = content.trim_start().trim_start_matches("- ");
                    let at = indent + (content.trim_start().len() - body.len());
                    if let Some(rest) = body.strip_prefix(key.as_str())
                        && rest.trim_start().starts_with(':')
                        && !on_own_line
                    {
                        hit = Some((n, at, at + key.len()));
                        break;
                    }
                    for pattern in [
                        format!("{{{key}:"),
                        format!(", {key}:"),
                        format!("{{ {key}:"),
                    ] {
                        if let Some(i) = content.find(&pattern) {
                            let k = i + pattern.len() - key.len() - 1;
                            return Some(value_place(content, n, k + key.len()));
                        }
                    }
                }
                Step::Index(i) => {
                    // The i-th `- ` item of a block list (a flow list stays on its key's line).
                    if content.trim_start().starts_with("- ") || content.trim() == "-" {
                        let items_before = lines[from..n]
                            .iter()
                            .filter(|l| {
                                let c = l.split(" #").next().unwrap_or("");
                                c.len() - c.trim_start().len() == indent
                                    && c.trim_start().starts_with('-')
                            })
                            .count();
                        if items_before == *i {
                            hit = Some((n, indent, indent));
                            break;
                        }
                    }
                }
            }
        }
        let Some((n, at, key_end)) = hit else {
            return found;
        };
        found = Some(match step {
            Step::Key(_) => value_place(lines[n], n, key_end),
            Step::Index(_) => (n + 1, at + 3),
        });
        match step {
            Step::Key(_) => {
                own_line = Some(n);
                from = n;
                parent = Some(at);
            }
            // A list item's keys are on its own line (`- key: v`) and the lines below it.
            Step::Index(_) => {
                own_line = None;
                from = n;
                parent = Some(at);
            }
        }
    }
    found
}

/// The place of the value after the key ending at byte `key_end` of `line` (line `n`, from
/// 0): the first character after the `:` and spaces, or the key itself at the end of a line.
fn value_place(line: &str, n: usize, key_end: usize) -> (usize, usize) {
    let after = &line[key_end.min(line.len())..];
    let after_colon = after.trim_start().strip_prefix(':').unwrap_or(after);
    let value = after_colon.trim_start();
    if value.is_empty() || value.starts_with('#') {
        (n + 1, key_end + 1 - key_len_hint(line, key_end))
    } else {
        (n + 1, line.len() - value.len() + 1)
    }
}

/// The length of the key that ends at `key_end` (letters, digits, `_` and `-`).
fn key_len_hint(line: &str, key_end: usize) -> usize {
    line[..key_end.min(line.len())]
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &str) -> Vec<Step> {
        path.split('.').map(|k| Step::Key(k.to_string())).collect()
    }

    #[test]
    fn values_read_as_yaml_would_be() {
        use crate::config::Config;
        let c = Config::parse(
            "admin:\n  token: 1234567890123456\n  tokenFile:\nserver:\n  name:\n  hostname: true\n  public_url:\n",
        )
        .unwrap();
        assert_eq!(c.admin.token.expose(), "1234567890123456");
        assert_eq!(c.admin.token_file, None);
        assert_eq!(c.server.name, "");
        assert_eq!(c.server.hostname, "true");
        assert_eq!(c.server.public_url, None);
        // Not text where a number is expected: refused, with the place.
        let e = Config::parse("server:\n  port: \"80\"\n").unwrap_err().0;
        assert!(e.starts_with("server.port") && e.contains("line 2"), "{e}");
        assert_eq!(camel_case("public_url"), "publicUrl");
        let c = Config::parse(
            "stores:\n  ldap:\n    connection:\n      start_tls: true\n      page_size: 7\n",
        )
        .unwrap();
        assert!(c.stores.ldap.connection.start_tls);
        assert_eq!(c.stores.ldap.connection.page_size, 7);
    }

    #[test]
    fn places_of_keys() {
        let text = "server:\n  name: id.example.org\n  port: eighty\n# c\nsession:\n  policy:\n    validation:\n      enabled: sometimes\nauth:\n  rateLimit:\n    perUser: {burst: 0, refill: 1}\n";
        assert_eq!(locate(text, &keys("server.port")), Some((3, 9)));
        assert_eq!(locate(text, &keys("server.prot")), Some((1, 1)));
        assert_eq!(
            locate(text, &keys("session.policy.validation.enabled")),
            Some((8, 16))
        );
        assert_eq!(
            locate(text, &keys("auth.rateLimit.perUser.burst")),
            Some((11, 22))
        );
        assert_eq!(
            locate(text, &keys("auth.rateLimit.perUser.refill")),
            Some((11, 33))
        );
        let list = "stores:\n  static:\n    mappings:\n      - medium: email\n        address: a@b.c\n      - medium: fax\n        address: x\n";
        let path = [
            Step::Key("stores".into()),
            Step::Key("static".into()),
            Step::Key("mappings".into()),
            Step::Index(1),
            Step::Key("medium".into()),
        ];
        assert_eq!(locate(list, &path), Some((6, 17)));
    }
}
