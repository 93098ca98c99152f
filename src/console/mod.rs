//! The operator's console at `/ui` (SPEC §13): server-rendered HTML pages over
//! the store, behind the admin token. Templates are minijinja files compiled into
//! the binary and escaped by default; the pages carry no script at all (charts are
//! SVG drawn on the server), so the Content-Security-Policy forbids every script
//! and inline style. [`session`] owns the login cookie and CSRF tokens, [`pages`]
//! the handlers, [`charts`] the numbers the charts are drawn from.

pub mod charts;
mod pages;
pub mod session;

use std::sync::OnceLock;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;

use crate::http::AppState;
use crate::store::StoreError;

/// Every page's security headers: nothing runs but the page itself.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/campaigns") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/campaigns") }))
        .route("/ui/campaigns", get(pages::campaigns))
        .route("/ui/campaigns/{id}", get(pages::campaign))
        .route("/ui/contacts/{id}", get(pages::contact))
        .route("/ui/calls/{call_id}", get(pages::call))
        .route("/ui/outbox", get(pages::outbox))
        .route("/ui/outbox/{id}/retry", post(pages::retry))
        .route("/ui/health", get(pages::health))
        .route("/ui/logout", post(pages::logout))
        .route_layer(from_fn_with_state(state.clone(), require_session));
    let pages = Router::new()
        .route("/ui/login", get(pages::login_form).post(pages::login))
        .merge(signed_in)
        .route_layer(from_fn_with_state(state, guard));
    Router::new().route("/ui/static/console.css", get(stylesheet)).merge(pages).layer(from_fn(security_headers))
}

/// A page that could not be shown, rendered as a page (never JSON: a browser
/// asked for it).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the console is off: set CALLHOOK_ADMIN_TOKENS to use it")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the page could not be rendered")]
    Template(#[from] minijinja::Error),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self {
            PageError::NotFound(_) | PageError::Disabled => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            PageError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Store(StoreError::Invalid(_) | StoreError::Refused { conflict: false, .. }) => {
                StatusCode::BAD_REQUEST
            }
            PageError::Store(_) | PageError::Template(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            PageError::Store(e) if status == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %e, "console page failed");
                "something went wrong; the log has the details".to_owned()
            }
            PageError::Template(e) => {
                tracing::error!(error = %e, "console template failed");
                "something went wrong; the log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let ctx = minijinja::context! { title => status.canonical_reason(), status => status.as_u16(), message };
        let body = render("error.html", ctx).unwrap_or_else(|_| Html(String::from("error")));
        (status, body).into_response()
    }
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_filter("when", when);
        env.add_filter("segment", segment);
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("error.html", include_str!("templates/error.html")),
            ("campaigns.html", include_str!("templates/campaigns.html")),
            ("campaign.html", include_str!("templates/campaign.html")),
            ("contact.html", include_str!("templates/contact.html")),
            ("call.html", include_str!("templates/call.html")),
            ("outbox.html", include_str!("templates/outbox.html")),
            ("health.html", include_str!("templates/health.html")),
        ] {
            env.add_template(name, source).expect("the console's templates parse");
        }
        env
    })
}

/// An RFC 3339 instant as `2026-11-25 17:10:16 UTC` (to the second); anything
/// else as it is.
fn when(value: String) -> String {
    chrono::DateTime::parse_from_rfc3339(&value)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or(value)
}

/// Renders a template; `.html` templates escape every value by default.
fn render(name: &str, ctx: minijinja::Value) -> Result<Html<String>, PageError> {
    Ok(Html(templates().get_template(name)?.render(ctx)?))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("static/console.css"),
    )
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: with it a browser sends `Origin: null` on the console's
    // own form posts, which `same_origin` must refuse.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A POST from another origin is refused outright (the CSRF token would refuse
/// it too; browsers send `Origin` on every form POST). The origin may be the
/// `Host` the request came with, the public base URL's, or — behind a proxy
/// trusted to say so — `X-Forwarded-Host`.
fn same_origin(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let Some((_, origin_host)) = origin.split_once("://") else { return false };
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or(v).trim());
    let public = app
        .external_url
        .public_base_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    let forwarded = app.external_url.trust_forwarded_headers.then(|| header("x-forwarded-host")).flatten();
    [header("host"), public, forwarded].into_iter().flatten().any(|host| host.eq_ignore_ascii_case(origin_host))
}

/// A path segment: everything but RFC 3986's unreserved characters escaped (a
/// call id may hold `/`, `?` or `#`).
fn segment(value: String) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(&value, SEGMENT).to_string();
    // `.` and `..` alone would be resolved away by the browser.
    match encoded.as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => encoded,
    }
}

/// Every page but the stylesheet: the console is off without admin tokens, and a
/// POST from another origin is refused before anything reads its form.
async fn guard(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if app.admin_tokens.is_empty() {
        return PageError::Disabled.into_response();
    }
    if request.method() == Method::POST && !same_origin(&app, request.headers()) {
        return PageError::Forbidden("this form was sent from another site".into()).into_response();
    }
    next.run(request).await
}

/// Lets a request through with its [`session::Session`], or sends the browser to
/// the login page (a GET) or refuses it (a POST: its form would be lost).
async fn require_session(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let cookie = request.headers().get(header::COOKIE).and_then(|v| v.to_str().ok());
    match session::check(&app.admin_tokens, session::cookie_value(cookie), chrono::Utc::now()) {
        Ok(s) => {
            request.extensions_mut().insert(s);
            next.run(request).await
        }
        Err(reason) if request.method() == Method::GET => {
            let why = match reason {
                session::Rejected::Expired => "expired",
                session::Rejected::Invalid | session::Rejected::Missing => "signin",
            };
            Redirect::to(&format!("/ui/login?reason={why}")).into_response()
        }
        Err(_) => PageError::Forbidden("your session has ended; sign in again".into()).into_response(),
    }
}
