//! `%NAME%` placeholders in the templates operators write: one scanner for the notification
//! templates (`notify::generator`) and the replacement validation pages (`views`).

/// Copies `template` into `out`, handing each placeholder's name to `value`.
///
/// A placeholder is `%NAME%` with NAME made of ASCII upper-case letters, digits and `_`.
/// `value` either writes the placeholder's value into `out` and returns true, or writes
/// nothing and returns false, and the placeholder stays as written. Any other `%` is copied
/// as it is. The scan is one pass, so a value that itself holds a placeholder is never
/// expanded; after an unknown placeholder the scan goes on at its closing `%`, which may
/// open the next one (`%UNKNOWN%DOMAIN%` keeps `%UNKNOWN` and fills `%DOMAIN%`).
pub fn fill_into(
    template: &str,
    out: &mut String,
    mut value: impl FnMut(&str, &mut String) -> bool,
) {
    let mut rest = template;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        if name_len > 0 && after.as_bytes().get(name_len) == Some(&b'%') {
            let name = &after[..name_len];
            if value(name, out) {
                rest = &after[name_len + 1..];
                continue;
            }
        }
        out.push('%');
        rest = after;
    }
    out.push_str(rest);
}

/// [`fill_into`] a new string.
pub fn fill(template: &str, value: impl FnMut(&str, &mut String) -> bool) -> String {
    let mut out = String::with_capacity(template.len());
    fill_into(template, &mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str, out: &mut String) -> bool {
        match name {
            "A" => out.push('1'),
            "B_2" => out.push_str("%A%"),
            _ => return false,
        }
        true
    }

    #[test]
    fn placeholders_are_filled_once_and_the_rest_is_kept() {
        assert_eq!(fill("x%A%y", known), "x1y");
        assert_eq!(fill("%B_2%", known), "%A%");
        assert_eq!(fill("%a% %% 50% %A", known), "%a% %% 50% %A");
        assert_eq!(fill("%UNKNOWN%A%", known), "%UNKNOWN1");
        assert_eq!(fill("%%A%%", known), "%1%");
        assert_eq!(fill("é%A%日", known), "é1日");
    }
}
