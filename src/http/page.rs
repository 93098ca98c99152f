//! List queries and cursor pagination for the admin API: `limit` (1–1,000,
//! default 100) and an opaque `cursor` from the previous page's `next_cursor`.
//!
//! A cursor names the list, the filter it was issued for and the last item
//! returned, with a checksum: one that was altered, truncated, or reused with
//! another list or filter is refused (`invalid_cursor`) rather than silently
//! starting somewhere else. Cursors are not secrets and carry no authority.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page, and largest claim of due contacts.
pub const MAX_LIMIT: i64 = 1000;

/// A query string whose rejection is an [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state).await.map(|Query(v)| ApiQuery(v)).map_err(
            |rejection: QueryRejection| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text()),
        )
    }
}

/// `limit` and `cursor`, as given (checked by [`PageQuery::limit`] and [`decode`]).
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        parse_limit(self.limit.as_deref(), DEFAULT_LIMIT)
    }

    /// The cursor, if one was given (`cursor=` is none).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// A `limit`: a whole number 1–[`MAX_LIMIT`] (`limit_too_large` above it,
/// `invalid_limit` otherwise).
pub fn parse_limit(given: Option<&str>, default: i64) -> Result<i64, ApiError> {
    let Some(text) = given else { return Ok(default) };
    let invalid = || {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_limit", format!("limit must be a whole number 1–{MAX_LIMIT}"))
    };
    let n: i64 = text.trim().parse().map_err(|_| invalid())?;
    check_limit(n).map_err(|e| if n < 1 { invalid() } else { e })
}

/// Refuses a limit over [`MAX_LIMIT`] (`limit_too_large`) or under 1 (`invalid_limit`).
pub fn check_limit(n: i64) -> Result<i64, ApiError> {
    if n > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit_too_large",
            format!("limit {n} is over the maximum of {MAX_LIMIT}"),
        ));
    }
    if n < 1 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_limit", format!("limit must be 1–{MAX_LIMIT}")));
    }
    Ok(n)
}

const SEP: char = '\u{1f}';

fn checksum(body: &str) -> String {
    Sha256::digest(body.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A cursor for `list` under `filter`, continuing after `position`.
pub fn encode(list: &str, filter: &str, position: &str) -> String {
    let body = format!("1{SEP}{list}{SEP}{filter}{SEP}{position}");
    let sealed = format!("{body}{SEP}{}", checksum(&body));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

/// The position a cursor of `list` under `filter` continues after.
pub fn decode(list: &str, filter: &str, cursor: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", format!("the cursor {why}; start again without it"))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid("is not valid"))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("is not valid"))?;
    let (body, sum) = text.rsplit_once(SEP).ok_or_else(|| invalid("is not valid"))?;
    if checksum(body) != sum {
        return Err(invalid("was altered"));
    }
    let parts: Vec<&str> = body.split(SEP).collect();
    match parts.as_slice() {
        ["1", l, f, position] if *l == list && *f == filter => Ok((*position).to_owned()),
        ["1", _, _, _] => Err(invalid("belongs to another list or filter")),
        _ => Err(invalid("is not valid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let c = encode("contacts", "k1|pending", "abc");
        assert_eq!(decode("contacts", "k1|pending", &c).unwrap(), "abc");
        assert_eq!(decode("contacts", "k1|", &c).unwrap_err().code, "invalid_cursor");
        assert_eq!(decode("campaigns", "k1|pending", &c).unwrap_err().code, "invalid_cursor");
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&c).unwrap();
        let last = bytes.len() - 8;
        bytes[last] ^= 1;
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(decode("contacts", "k1|pending", &altered).unwrap_err().code, "invalid_cursor");
        for junk in ["", "!!!", "aGVsbG8", &c[..c.len() - 3]] {
            assert_eq!(decode("contacts", "k1|pending", junk).unwrap_err().code, "invalid_cursor", "{junk}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None, 100).unwrap(), 100);
        assert_eq!(parse_limit(Some("1000"), 100).unwrap(), 1000);
        assert_eq!(parse_limit(Some("1001"), 100).unwrap_err().code, "limit_too_large");
        for bad in ["0", "-1", "x", "1.5", ""] {
            assert_eq!(parse_limit(Some(bad), 100).unwrap_err().code, "invalid_limit", "{bad}");
        }
    }
}
