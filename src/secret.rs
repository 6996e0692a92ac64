//! Secrets the tool holds (the admin token) and their removal from everything it writes.
//!
//! A `Secret` never prints: its `Debug` and `Display` show `<redacted>`, so an inventory or a client can
//! be logged or formatted without leaking it. That is not enough on its own: a server may echo the
//! `Authorization` header back in an error body, which then travels into messages, the journal, webhook
//! posts and the report. So every secret's value is also registered process-wide when it is made, and the
//! few places where text leaves the process (the output macros, `Journal::append`, the webhook payload,
//! the report writer) pass it through `redact` or `redact_json` first.
//!
//! A leaf below every other module: `output` and `journal` use it, and it uses nothing of the product.

use std::borrow::Cow;
use std::sync::RwLock;

use serde_json::Value;

/// What a secret's value is replaced with wherever it would be written.
pub const REDACTED: &str = "<redacted>";

/// Every registered secret's value in each form it could be written in (as is, escaped inside a JSON
/// string, escaped for HTML, both), longest first so a longer form is replaced before a part of it.
static FORMS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// A value that must never be printed; its text is only reachable through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Holds `value` and registers it, so `redact` removes it from any text written from now on.
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// The value itself, for the one place that must send it (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

fn register(value: &str) {
    if value.is_empty() {
        return;
    }
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(value)
        .to_string();
    let mut forms = FORMS.write().unwrap_or_else(|e| e.into_inner());
    for form in [html(value), html(&json), json, value.to_string()] {
        if !forms.contains(&form) {
            forms.push(form);
        }
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// What the report's HTML escaping makes of a text (docs/REPORT.md: `&`, `<`, `>`, `"` and `'`).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `text` with every registered secret replaced by `<redacted>`; borrowed when there is none in it.
pub fn redact(text: &str) -> Cow<'_, str> {
    replace_all(text, REDACTED)
}

/// `redact` for an HTML page: the mark is escaped as the page's text is, so it shows as `<redacted>`.
pub fn redact_html(text: &str) -> Cow<'_, str> {
    replace_all(text, "&lt;redacted&gt;")
}

fn replace_all<'a>(text: &'a str, mark: &str) -> Cow<'a, str> {
    let forms = FORMS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for form in forms.iter() {
        if out.contains(form.as_str()) {
            out = Cow::Owned(out.replace(form.as_str(), mark));
        }
    }
    out
}

/// True once any secret is registered: writers that would copy every line to redact it skip the copy
/// when there is nothing to look for.
pub fn any() -> bool {
    !FORMS.read().unwrap_or_else(|e| e.into_inner()).is_empty()
}

/// Redacts every string (and key) of a JSON value in place, before it is serialized: the serialized
/// text would carry the secret escaped, where a search for its plain value might miss it.
pub fn redact_json(v: &mut Value) {
    if !any() {
        return;
    }
    match v {
        Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let Some(mut item) = map.remove(&k) else {
                    continue;
                };
                redact_json(&mut item);
                map.insert(redact(&k).into_owned(), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_and_its_value_is_removed_from_text() {
        let s = Secret::new("tok-unit-7f3a\"<&>");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "tok-unit-7f3a\"<&>");
        assert_eq!(
            redact("Bearer tok-unit-7f3a\"<&> echoed"),
            "Bearer <redacted> echoed"
        );
        // As JSON and HTML would write it.
        assert_eq!(
            redact(r#"{"h":"tok-unit-7f3a\"<&>"}"#),
            r#"{"h":"<redacted>"}"#
        );
        assert_eq!(
            redact_html("<p title=\"tok-unit-7f3a&quot;&lt;&amp;&gt;\">tok-unit-7f3a&quot;&lt;&amp;&gt;</p>"),
            "<p title=\"&lt;redacted&gt;\">&lt;redacted&gt;</p>"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        let mut v = serde_json::json!({
            "error": "GET: HTTP 500: Bearer tok-unit-7f3a\"<&>",
            "tok-unit-7f3a\"<&>": [1, "x tok-unit-7f3a\"<&>"],
        });
        redact_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains("tok-unit-7f3a"), "{text}");
        assert_eq!(v["error"], "GET: HTTP 500: Bearer <redacted>");
        assert_eq!(v[REDACTED][1], "x <redacted>");
    }
}
