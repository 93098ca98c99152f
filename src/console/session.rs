//! The console's login session: a cookie that holds its expiry and a random id,
//! signed (HMAC-SHA-256) with the admin token it was opened with, so that no
//! server state is needed and removing a token from `CALLHOOK_ADMIN_TOKENS` ends
//! every session it opened. `HttpOnly` (no script reads it), `SameSite=Strict`
//! (no other site's page sends it) and `Secure` behind HTTPS. Every form carries
//! a CSRF token derived from the session, checked on every POST.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

pub const COOKIE: &str = "callhook_console";

/// How long a login lasts.
pub const LIFETIME: Duration = Duration::hours(8);

/// A valid session: what forms must echo back.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No session cookie: never logged in, or logged out.
    Missing,
    /// Altered, or signed with a token no longer configured.
    Invalid,
    Expired,
}

fn mac(token: &Secret, data: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The cookie value of a session opened with `token` at `now`.
pub fn issue(token: &Secret, now: DateTime<Utc>) -> String {
    let expires = (now + LIFETIME).timestamp();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let signature = mac(token, &format!("session|{expires}|{id}"));
    format!("{expires}.{id}.{signature}")
}

/// Checks a cookie value against every configured token.
pub fn check(tokens: &[Secret], value: Option<&str>, now: DateTime<Utc>) -> Result<Session, Rejected> {
    let value = value.filter(|v| !v.is_empty()).ok_or(Rejected::Missing)?;
    let mut parts = value.splitn(3, '.');
    let (Some(expires), Some(id), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Rejected::Invalid);
    };
    let token = tokens
        .iter()
        .find(|t| bool::from(mac(t, &format!("session|{expires}|{id}")).as_bytes().ct_eq(signature.as_bytes())))
        .ok_or(Rejected::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| Rejected::Invalid)?;
    if now.timestamp() >= expires {
        return Err(Rejected::Expired);
    }
    Ok(Session { csrf: mac(token, &format!("csrf|{id}")) })
}

/// Whether a form's CSRF token is this session's.
pub fn csrf_matches(session: &Session, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|s| bool::from(s.as_bytes().ct_eq(session.csrf.as_bytes())))
}

/// Whether `token` is one of the admin tokens.
pub fn token_matches(tokens: &[Secret], token: &str) -> Option<Secret> {
    tokens.iter().find(|t| !token.is_empty() && bool::from(t.expose().as_bytes().ct_eq(token.as_bytes()))).cloned()
}

/// The `Set-Cookie` value opening (or, with `None`, ending) a session.
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => {
            format!("{COOKIE}={v}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LIFETIME.num_seconds())
        }
        None => format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(header: Option<&str>) -> Option<&str> {
    header?.split(';').map(str::trim).find_map(|pair| pair.strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_with_its_token() {
        let (a, b) = (Secret::new("token-a"), Secret::new("token-b"));
        let now = Utc::now();
        let cookie = issue(&a, now);
        let session = check(&[b.clone(), a.clone()], Some(&cookie), now).unwrap();
        let (only_a, only_b) = ([a], [b]);
        assert!(csrf_matches(&session, Some(&session.csrf)));
        assert!(!csrf_matches(&session, Some("forged")) && !csrf_matches(&session, None));
        assert_eq!(check(&only_b, Some(&cookie), now).unwrap_err(), Rejected::Invalid, "token removed");
        assert_eq!(check(&only_a, Some(&cookie), now + LIFETIME).unwrap_err(), Rejected::Expired);
        assert_eq!(check(&only_a, None, now).unwrap_err(), Rejected::Missing);
        // Moving the expiry breaks the signature.
        let (_, rest) = cookie.split_once('.').unwrap();
        let later = format!("{}.{rest}", (now + Duration::days(365)).timestamp());
        assert_eq!(check(&only_a, Some(&later), now).unwrap_err(), Rejected::Invalid);
        for junk in ["", "x", "1.2", "a.b.c", "..", "9999999999999999999999.x.y"] {
            assert!(check(&only_a, Some(junk), now).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others_and_is_strict() {
        assert_eq!(cookie_value(Some("a=1; callhook_console=v.w.x; b=2")), Some("v.w.x"));
        assert_eq!(cookie_value(Some("callhook_consolex=1")), None);
        let set = set_cookie(Some("v"), true);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure"));
        assert!(set_cookie(None, false).contains("Max-Age=0"));
    }
}
