//! Strict `application/x-www-form-urlencoded` decoding. Unlike lenient decoders it
//! keeps every field in arrival order (repeats included) and rejects bytes that are
//! not UTF-8 instead of silently replacing them, because the decoded fields feed
//! signature checks and are stored as the event's payload.

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

/// Decoded name/value pairs in the order they were sent.
pub type Fields = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

/// Decodes a form body or a URL query string.
pub fn decode(input: &[u8]) -> Result<Fields, FormError> {
    input
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((decode_component(name)?, decode_component(value)?))
        })
        .collect()
}

fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(bytes)
        .map_err(|_| FormError(format!("form field `{}` is not valid UTF-8", String::from_utf8_lossy(raw))))
}

/// Everything but RFC 3986's unreserved characters is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a query-string or form component.
pub fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// The first value of `name`, if sent.
pub fn first<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The first non-empty value of `name`.
pub fn non_empty<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    first(fields, name).filter(|v| !v.is_empty())
}

/// Every field as a JSON object; a repeated name becomes an array of its values.
pub fn to_json(fields: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (name, value) in fields {
        match map.get_mut(name) {
            None => {
                map.insert(name.clone(), Value::String(value.clone()));
            }
            Some(Value::Array(values)) => values.push(Value::String(value.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value.clone())]);
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_repeats_in_order() {
        let fields = decode(b"To=%2B1415&Caller=a+b&x=1&x=2&empty=&flag").unwrap();
        assert_eq!(
            fields,
            vec![
                ("To".into(), "+1415".into()),
                ("Caller".into(), "a b".into()),
                ("x".into(), "1".into()),
                ("x".into(), "2".into()),
                ("empty".into(), "".into()),
                ("flag".into(), "".into()),
            ]
        );
        assert_eq!(to_json(&fields)["x"], serde_json::json!(["1", "2"]));
        assert_eq!(non_empty(&fields, "empty"), None);
    }

    #[test]
    fn decodes_unicode_and_rejects_invalid_utf8() {
        assert_eq!(decode("n=%C3%A9t%C3%A9".as_bytes()).unwrap()[0].1, "été");
        let err = decode(b"n=%FF%FE").unwrap_err();
        assert!(err.0.contains("not valid UTF-8"), "{err}");
    }
}
