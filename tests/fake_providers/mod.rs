//! Local fakes of the providers' call APIs (SPEC §9), for the REST clients of
//! `callhook::providers::api` and the reconciler built on them.
//!
//! Each fake is a real HTTP server on 127.0.0.1 that serves one provider's call
//! resource at the provider's own path, checks credentials as the provider does
//! (basic auth, a Telnyx API key, a Vonage RS256 application JWT verified against the
//! application's public key) and answers with the provider's documented JSON: the
//! fixtures of `tests/fixtures/provider_api/<provider>/` (one per call status, and
//! `401.json`, `404.json`, `429.json`, `500.json`, `503.json`, Telnyx `422.json`).
//! What the fake answers for a call is programmed per call id; a call nobody
//! programmed is unknown to the provider. Every request is recorded.
//!
//! ```ignore
//! let (base_url, fake) = FakeProvider::start(Provider::Twilio).await;
//! fake.set_call("CA…", Behaviour::Fixture("completed"));
//! let api = fake.client();                 // configured with the fake's credentials
//! let snapshot = api.fetch_call("CA…").await?;
//! assert_eq!(fake.requests().len(), 1);
//! ```
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use callhook::domain::Provider;
use callhook::providers::api::{
    CallApi, PlivoApi, PlivoApiConfig, TelnyxApi, TelnyxApiConfig, TwilioApi, TwilioApiConfig, VonageApi,
    VonageApiConfig,
};
use callhook::secret::Secret;

pub const TWILIO_ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_AUTH_TOKEN: &str = "twilio-test-auth-token";
pub const TWILIO_API_KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
pub const TWILIO_API_KEY_SECRET: &str = "twilio-test-api-key-secret";
pub const SIGNALWIRE_PROJECT_ID: &str = "b3877c40-da60-4998-90ad-b792e98472af";
pub const SIGNALWIRE_API_TOKEN: &str = "PTsignalwire-test-api-token";
pub const TELNYX_API_KEY: &str = "KEY0123456789ABCDEF_test-telnyx-key";
pub const VONAGE_APPLICATION_ID: &str = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab";
pub const PLIVO_AUTH_ID: &str = "MAZJYTY4NMQXMTI5ZTGZND";
pub const PLIVO_AUTH_TOKEN: &str = "plivo-test-auth-token";

/// The call id each provider's fixtures are written for; the fake answers with the
/// id it was asked for in its place.
pub fn fixture_call_id(provider: Provider) -> &'static str {
    match provider {
        Provider::Twilio => "CAfedcba9876543210fedcba9876543210",
        Provider::SignalWire => "b3877c40-da60-4998-90ad-b792e98472ca",
        Provider::Telnyx => "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg",
        Provider::Vonage => "63f61863-4a51-4f6b-86e1-46edebcf9356",
        Provider::Plivo => "34a17f97-b594-4018-9615-75b11f427b32",
    }
}

pub fn fixtures_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provider_api")
}

/// `tests/fixtures/provider_api/<provider>/<name>.json`.
pub fn fixture(provider: Provider, name: &str) -> Value {
    let path = fixtures_root().join(provider.as_str()).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture as the fake serves it for `call_id`.
pub fn fixture_for(provider: Provider, name: &str, call_id: &str) -> Value {
    let mut value = fixture(provider, name);
    substitute(&mut value, fixture_call_id(provider), call_id);
    value
}

/// The Vonage test application's private key (PKCS#8 PEM, as Vonage issues them).
pub fn vonage_private_key() -> String {
    read_key("test-only-private.pem")
}

/// The same key as PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub fn vonage_private_key_pkcs1() -> String {
    read_key("test-only-private-pkcs1.pem")
}

/// A key of some other application.
pub fn vonage_other_private_key() -> String {
    read_key("test-only-other-private.pem")
}

fn read_key(name: &str) -> String {
    let path = fixtures_root().join("vonage/keys").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the fake answers for one call id.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with the fixture `<name>.json`, the call id replaced by the one asked
    /// for. Plivo: `live-*` fixtures are served to `?status=live` only and the
    /// records (`cdr-*`) without it; the other request gets Plivo's 404.
    Fixture(&'static str),
    /// This status with the provider's documented error body (`<status>.json`).
    Error(u16),
    /// 429 with the provider's body and, when given, this `Retry-After` value.
    RateLimited { retry_after: Option<String> },
    /// Answers only after ten minutes (a client gives up first).
    Hang,
    /// 200 with an HTML maintenance page.
    Html,
    /// Anything else, verbatim.
    Raw { status: u16, content_type: &'static str, body: String },
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub accept: Option<String>,
    pub authorization: Option<String>,
    /// Decoded basic-auth user and password.
    pub basic: Option<(String, String)>,
    /// Vonage: the JWT's header and claims, when its signature verified.
    pub jwt: Option<(Value, Value)>,
    /// The call id the path named.
    pub call_id: Option<String>,
    /// Whether the credentials were accepted.
    pub authorized: bool,
}

struct Inner {
    provider: Provider,
    base_url: Mutex<String>,
    calls: Mutex<HashMap<String, Behaviour>>,
    requests: Mutex<Vec<Recorded>>,
}

/// A running fake; cheap to clone.
#[derive(Clone)]
pub struct FakeHandle {
    inner: Arc<Inner>,
}

pub struct FakeProvider;

impl FakeProvider {
    /// Starts the fake of `provider` on a free local port: (base URL, handle). The
    /// base URL is what the client's config takes (for SignalWire the space URL).
    pub async fn start(provider: Provider) -> (String, FakeHandle) {
        let inner = Arc::new(Inner {
            provider,
            base_url: Mutex::new(String::new()),
            calls: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let base_url = format!("http://{}", listener.local_addr().expect("local address"));
        *inner.base_url.lock().unwrap() = base_url.clone();
        let app = Router::new().fallback(serve).with_state(inner.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake provider server");
        });
        (base_url, FakeHandle { inner })
    }
}

impl FakeHandle {
    pub fn provider(&self) -> Provider {
        self.inner.provider
    }

    pub fn base_url(&self) -> String {
        self.inner.base_url.lock().unwrap().clone()
    }

    /// Programs the answer for `call_id` (replacing any earlier one).
    pub fn set_call(&self, call_id: &str, behaviour: Behaviour) {
        self.inner.calls.lock().unwrap().insert(call_id.to_owned(), behaviour);
    }

    /// Forgets `call_id`: the provider no longer knows it.
    pub fn forget_call(&self, call_id: &str) {
        self.inner.calls.lock().unwrap().remove(call_id);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// The requests that named `call_id`.
    pub fn requests_for(&self, call_id: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.call_id.as_deref() == Some(call_id)).collect()
    }

    pub fn clear_requests(&self) {
        self.inner.requests.lock().unwrap().clear();
    }

    /// A client of this fake with the right credentials and a 5 s timeout.
    pub fn client(&self) -> Arc<dyn CallApi> {
        self.client_with_timeout(Duration::from_secs(5))
    }

    pub fn client_with_timeout(&self, timeout: Duration) -> Arc<dyn CallApi> {
        client_for(self.provider(), &self.base_url(), timeout)
    }
}

/// Twilio with the account's auth token.
pub fn twilio_config(base_url: &str) -> TwilioApiConfig {
    let mut config = TwilioApiConfig::twilio(TWILIO_ACCOUNT_SID, Secret::new(TWILIO_AUTH_TOKEN));
    config.base_url = base_url.to_owned();
    config
}

pub fn signalwire_config(base_url: &str) -> TwilioApiConfig {
    TwilioApiConfig::signalwire(base_url, SIGNALWIRE_PROJECT_ID, Secret::new(SIGNALWIRE_API_TOKEN))
}

pub fn telnyx_config(base_url: &str) -> TelnyxApiConfig {
    let mut config = TelnyxApiConfig::new(Secret::new(TELNYX_API_KEY));
    config.base_url = base_url.to_owned();
    config
}

pub fn vonage_config(base_url: &str) -> VonageApiConfig {
    let mut config = VonageApiConfig::new(VONAGE_APPLICATION_ID, Secret::new(vonage_private_key()));
    config.base_url = base_url.to_owned();
    config
}

pub fn plivo_config(base_url: &str) -> PlivoApiConfig {
    let mut config = PlivoApiConfig::new(PLIVO_AUTH_ID, Secret::new(PLIVO_AUTH_TOKEN));
    config.base_url = base_url.to_owned();
    config
}

/// A client of `provider` at `base_url` with the fakes' credentials.
pub fn client_for(provider: Provider, base_url: &str, timeout: Duration) -> Arc<dyn CallApi> {
    match provider {
        Provider::Twilio => Arc::new(TwilioApi::new(TwilioApiConfig { timeout, ..twilio_config(base_url) }).unwrap()),
        Provider::SignalWire => {
            Arc::new(TwilioApi::new(TwilioApiConfig { timeout, ..signalwire_config(base_url) }).unwrap())
        }
        Provider::Telnyx => Arc::new(TelnyxApi::new(TelnyxApiConfig { timeout, ..telnyx_config(base_url) }).unwrap()),
        Provider::Vonage => Arc::new(VonageApi::new(VonageApiConfig { timeout, ..vonage_config(base_url) }).unwrap()),
        Provider::Plivo => Arc::new(PlivoApi::new(PlivoApiConfig { timeout, ..plivo_config(base_url) }).unwrap()),
    }
}

/// Where a request points.
struct Route {
    call_id: String,
    /// The account the path names (Twilio, SignalWire, Plivo).
    account: Option<String>,
    /// Plivo `?status=live`.
    live: bool,
}

fn decode(segment: &str) -> Option<String> {
    let decoded = percent_decode_str(segment).decode_utf8().ok()?.into_owned();
    (!decoded.is_empty() && !decoded.contains('/')).then_some(decoded)
}

/// The provider's call resource path, or `None` (the provider's 404).
fn route(provider: Provider, path: &str, query: Option<&str>) -> Option<Route> {
    match provider {
        Provider::Twilio | Provider::SignalWire => {
            let path = if provider == Provider::SignalWire { path.strip_prefix("/api/laml")? } else { path };
            let rest = path.strip_prefix("/2010-04-01/Accounts/")?;
            let (account, rest) = rest.split_once("/Calls/")?;
            let sid = rest.strip_suffix(".json")?;
            Some(Route { call_id: decode(sid)?, account: Some(decode(account)?), live: false })
        }
        Provider::Telnyx => {
            let id = path.strip_prefix("/v2/calls/")?;
            Some(Route { call_id: decode(id)?, account: None, live: false })
        }
        Provider::Vonage => {
            let id = path.strip_prefix("/v1/calls/")?;
            Some(Route { call_id: decode(id)?, account: None, live: false })
        }
        Provider::Plivo => {
            let rest = path.strip_prefix("/v1/Account/")?;
            let (account, rest) = rest.split_once("/Call/")?;
            let uuid = rest.strip_suffix('/')?;
            let live = query.is_some_and(|q| q.split('&').any(|pair| pair == "status=live"));
            Some(Route { call_id: decode(uuid)?, account: Some(decode(account)?), live })
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// The DER of the Vonage test application's public key (PKCS#1).
fn vonage_public_key_der() -> Vec<u8> {
    let pem = read_key("test-only-public-pkcs1.pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    BASE64.decode(body).expect("public key PEM")
}

/// Vonage's check of an application JWT: RS256, signed by the application's key,
/// `application_id` of the application, `iat`, `exp` not passed, a `jti`.
fn verify_vonage_jwt(token: &str) -> Result<(Value, Value), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg {:?}", header.alg));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat"]);
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_rsa_der(&vonage_public_key_der()), &validation)
        .map_err(|e| format!("signature or claims: {e}"))?;
    let claims = data.claims;
    if claims.get("application_id").and_then(Value::as_str) != Some(VONAGE_APPLICATION_ID) {
        return Err("application_id".into());
    }
    if claims.get("jti").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("jti".into());
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or("iat")?;
    if iat > chrono::Utc::now().timestamp() + 60 {
        return Err("iat in the future".into());
    }
    Ok((serde_json::to_value(&header).expect("header"), claims))
}

/// What a request's credentials came to.
struct Auth {
    authorized: bool,
    basic: Option<(String, String)>,
    /// Vonage: the verified JWT's header and claims.
    jwt: Option<(Value, Value)>,
}

/// Checks the credentials as the provider does.
fn authenticate(provider: Provider, headers: &HeaderMap, route: Option<&Route>) -> Auth {
    let basic = basic_credentials(headers);
    let account = route.and_then(|r| r.account.as_deref());
    let basic_ok = |pairs: &[(&str, &str)], expected_account: &str| {
        basic.as_ref().is_some_and(|(u, p)| pairs.iter().any(|(eu, ep)| u == eu && p == ep))
            && account == Some(expected_account)
    };
    let (authorized, jwt) = match provider {
        Provider::Twilio => {
            let pairs = [(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN), (TWILIO_API_KEY_SID, TWILIO_API_KEY_SECRET)];
            (basic_ok(&pairs, TWILIO_ACCOUNT_SID), None)
        }
        Provider::SignalWire => {
            (basic_ok(&[(SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN)], SIGNALWIRE_PROJECT_ID), None)
        }
        Provider::Plivo => (basic_ok(&[(PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN)], PLIVO_AUTH_ID), None),
        Provider::Telnyx => (bearer(headers) == Some(TELNYX_API_KEY), None),
        Provider::Vonage => match bearer(headers).map(verify_vonage_jwt) {
            Some(Ok(jwt)) => (true, Some(jwt)),
            _ => (false, None),
        },
    };
    Auth { authorized, basic, jwt }
}

async fn serve(State(inner): State<Arc<Inner>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let provider = inner.provider;
    let route = route(provider, uri.path(), uri.query());
    let Auth { authorized, basic, jwt } = authenticate(provider, &headers, route.as_ref());
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    inner.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        accept: text(header::ACCEPT),
        authorization: text(header::AUTHORIZATION),
        basic,
        jwt,
        call_id: route.as_ref().map(|r| r.call_id.clone()),
        authorized,
    });
    if method != Method::GET {
        return error(provider, 405, None);
    }
    // Unknown paths are 404s before authentication, as at the real hosts.
    let Some(route) = route else { return error(provider, 404, None) };
    if !authorized {
        return error(provider, 401, None);
    }
    let behaviour = inner.calls.lock().unwrap().get(&route.call_id).cloned();
    match behaviour {
        None => unknown_call(provider),
        Some(Behaviour::Fixture(name)) => {
            let live_fixture = name.starts_with("live-");
            if provider == Provider::Plivo && live_fixture != route.live {
                // A record is not live; a live call has no record yet.
                return error(provider, 404, None);
            }
            json(StatusCode::OK, &fixture_for(provider, name, &route.call_id))
        }
        Some(Behaviour::Error(status)) => error(provider, status, None),
        Some(Behaviour::RateLimited { retry_after }) => error(provider, 429, retry_after.as_deref()),
        Some(Behaviour::Hang) => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            json(StatusCode::OK, &fixture(provider, "404"))
        }
        Some(Behaviour::Html) => {
            let page = std::fs::read_to_string(fixtures_root().join("maintenance.html")).expect("maintenance.html");
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
        Some(Behaviour::Raw { status, content_type, body }) => {
            (StatusCode::from_u16(status).expect("status"), [(header::CONTENT_TYPE, content_type)], body)
                .into_response()
        }
    }
}

/// What the provider answers for an id it does not know: Telnyx's documented 422
/// (90015 "Invalid Call Control ID"), everyone else's 404.
fn unknown_call(provider: Provider) -> Response {
    if provider == Provider::Telnyx {
        error(provider, 422, None)
    } else {
        error(provider, 404, None)
    }
}

fn json(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

/// `status` with the provider's documented body for it, when there is one.
fn error(provider: Provider, status: u16, retry_after: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status).expect("status");
    let path = fixtures_root().join(provider.as_str()).join(format!("{status}.json"));
    let mut response = match std::fs::read_to_string(path) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response(),
        Err(_) => code.into_response(),
    };
    if let Some(value) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(value).expect("Retry-After"));
    }
    if status == 401 && provider == Provider::Twilio {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"Twilio API\""));
    }
    response
}

/// Replaces `from` by `to` in every string of `value`.
fn substitute(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, from, to)),
        _ => {}
    }
}
