//! Checks on text that comes from outside (callbacks, admin requests) before it is
//! stored: both stores must refuse the same input, and PostgreSQL cannot hold a NUL
//! (U+0000) in `text` or `jsonb`.

use serde_json::Value;

/// Any string (or object key) in `value` holds a NUL.
pub fn json_has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// `s` is a single printable token (no whitespace, no control character) of 1 to
/// `max_bytes` bytes: what an identifier that travels in a URL or a key must be.
pub fn is_token(s: &str, max_bytes: usize) -> bool {
    !s.is_empty() && s.len() <= max_bytes && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `s` holds a control character (NUL, newline, escape, …): never right in a name
/// or an identifier.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_anywhere_and_control_characters() {
        assert!(json_has_nul(&serde_json::json!({"a": [1, {"b": "x\u{0}"}]})));
        assert!(json_has_nul(&serde_json::json!({"k\u{0}": 1})));
        assert!(!json_has_nul(&serde_json::json!({"a": ["é", 1.5, null]})));
        assert!(is_token("CA123", 128) && !is_token("", 128) && !is_token("a b", 128) && !is_token("abc", 2));
        assert!(has_control("a\nb") && has_control("\u{1b}[31m") && !has_control("Spring survey – 2026"));
    }
}
