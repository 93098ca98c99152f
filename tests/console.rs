//! The operator's console (SPEC §13) through the real router, on both stores:
//! sign-in, sessions that expire or were never issued, CSRF on every form,
//! escaping of everything the store holds, and the pages' numbers.

#[macro_use]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use callhook::console::session;
use callhook::domain::{EventType, Provider};
use callhook::secret::Secret;
use callhook::store::{NewAttempt, NewCampaign, NewContact, Store};
use common::*;

on_both_stores!(
    nothing_is_shown_without_a_session,
    forms_refuse_a_missing_or_forged_csrf_token_and_change_nothing,
    everything_stored_is_escaped,
    pages_show_the_numbers_the_api_reports,
    bad_paths_and_filters_are_clear_errors,
);

const HOSTILE: &str = "<script>alert('x')</script><img src=x onerror=alert(1)>";

async fn get(app: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, String, axum::http::HeaderMap) {
    let mut b = Request::get(path).header("host", HOST);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("{}={c}", session::COOKIE));
    }
    let res = app.clone().oneshot(b.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, body, headers)
}

async fn post(
    app: &Router,
    path: &str,
    cookie: Option<&str>,
    form: &str,
    origin: Option<&str>,
) -> (StatusCode, String, axum::http::HeaderMap) {
    let mut b = Request::post(path).header("host", HOST).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("{}={c}", session::COOKIE));
    }
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    let res = app.clone().oneshot(b.body(Body::from(form.to_owned())).unwrap()).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, body, headers)
}

/// Signs in as an operator would: the cookie value the login set.
async fn sign_in(app: &Router) -> String {
    let (status, _, headers) =
        post(app, "/ui/login", None, &format!("token={ADMIN_TOKEN}"), Some(&format!("http://{HOST}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    session::cookie_value(Some(set.split(';').next().unwrap())).unwrap().to_owned()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + 64].to_owned()
}

/// A campaign named `name`, a contact, and a call with a dead dialogue.start.
async fn seed(store: &Arc<dyn Store>, name: &str) -> (callhook::domain::Campaign, String, uuid::Uuid) {
    let new = NewCampaign { timezone: Some(daytime_zone()), ..NewCampaign::named(name) };
    let campaign = store.create_campaign(new).await.unwrap();
    let mut contact = NewContact::phone("+14155550123");
    contact.external_id = Some(HOSTILE.into());
    let contact = add_contacts(store, &campaign, vec![contact]).await.remove(0);
    let call = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap().attempt.call_id;
    store.record_event(&call_event(&call, "CA-ui", "in-progress", EventType::Answered)).await.unwrap();
    let claimed = store.claim_jobs(10, std::time::Duration::from_secs(30)).await.unwrap();
    let job = claimed.jobs[0].id;
    store.fail_job(claimed.lease, job, "HTTP 503 <b>from</b> the orchestrator", None).await.unwrap();
    (campaign, call, job)
}

async fn nothing_is_shown_without_a_session(store: Arc<dyn Store>) {
    let app = app(store.clone());
    seed(&store, "Quiet campaign").await;
    for path in ["/ui", "/ui/campaigns", "/ui/outbox", "/ui/health"] {
        let (status, body, headers) = get(&app, path, None).await;
        assert!(status.is_redirection(), "{path}: {status}");
        let location = headers.get(header::LOCATION).unwrap().to_str().unwrap();
        assert!(location.starts_with("/ui/login") || location == "/ui/campaigns", "{path}: {location}");
        assert!(!body.contains("Quiet campaign"));
    }
    // A wrong token: 401 and no cookie.
    let (status, body, headers) = post(&app, "/ui/login", None, "token=wrong", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("That token is not valid") && headers.get(header::SET_COOKIE).is_none());
    // A cookie signed with another token, altered, or expired.
    let other = session::issue(&Secret::new("not-the-admin-token"), chrono::Utc::now());
    let expired = session::issue(&Secret::new(ADMIN_TOKEN), chrono::Utc::now() - chrono::Duration::hours(9));
    for (cookie, reason) in [(other.as_str(), "signin"), ("1.2.3", "signin"), (expired.as_str(), "expired")] {
        let (status, body, headers) = get(&app, "/ui/campaigns", Some(cookie)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers.get(header::LOCATION).unwrap(), &format!("/ui/login?reason={reason}"));
        assert!(!body.contains("Quiet campaign"));
    }
    let (_, body, _) = get(&app, "/ui/login?reason=expired", None).await;
    assert!(body.contains("Your session expired"));
    // Signed in, the page is there, with the security headers.
    let cookie = sign_in(&app).await;
    let (status, body, headers) = get(&app, "/ui/campaigns", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Quiet campaign"));
    let csp = headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    // Without admin tokens there is no console at all.
    let off = app_with_admin(store.clone(), vec![]);
    let (status, body, _) = get(&off, "/ui/campaigns", Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("CALLHOOK_ADMIN_TOKENS"));
}

async fn forms_refuse_a_missing_or_forged_csrf_token_and_change_nothing(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, _, job) = seed(&store, "Forms").await;
    let cookie = sign_in(&app).await;
    let (_, page, _) = get(&app, "/ui/outbox?status=dead", Some(&cookie)).await;
    let csrf = csrf_of(&page);
    let retry = format!("/ui/outbox/{job}/retry");
    let same = Some(format!("http://{HOST}"));
    for (form, origin) in [
        (String::new(), same.clone()),
        ("csrf=".to_owned(), same.clone()),
        (format!("csrf={}", "0".repeat(64)), same.clone()),
        (format!("csrf={csrf}"), Some("https://evil.example".to_owned())),
        (format!("csrf={csrf}"), Some("null".to_owned())),
    ] {
        let (status, body, _) = post(&app, &retry, Some(&cookie), &form, origin.as_deref()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form} from {origin:?}: {body}");
        assert!(body.contains("<html"), "an error page, not JSON: {body}");
    }
    // No session: refused, not redirected (the form would be lost).
    let (status, _, _) = post(&app, &retry, None, &format!("csrf={csrf}"), same.as_deref()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = session::issue(&Secret::new(ADMIN_TOKEN), chrono::Utc::now());
    let (status, _, _) = post(&app, &retry, Some(&other), &format!("csrf={csrf}"), same.as_deref()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another session's token");
    assert_eq!(store.outbox_in("dead", 10).await.unwrap().len(), 1, "nothing changed");

    let (status, _, headers) = post(&app, &retry, Some(&cookie), &format!("csrf={csrf}"), same.as_deref()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get(header::LOCATION).unwrap(), "/ui/outbox?status=dead&notice=retried");
    assert!(store.outbox_in("dead", 10).await.unwrap().is_empty());
    assert_eq!(store.outbox_in("pending", 10).await.unwrap()[0].id, job);
    // A job that does not exist: nothing retried, and said so.
    let unknown = format!("/ui/outbox/{}/retry", uuid::Uuid::new_v4());
    let (_, _, headers) = post(&app, &unknown, Some(&cookie), &format!("csrf={csrf}"), same.as_deref()).await;
    assert_eq!(headers.get(header::LOCATION).unwrap(), "/ui/outbox?status=dead&notice=not_retried");

    // Behind a proxy that rewrites Host, the public base URL is this origin too.
    let mut proxied = state(store.clone());
    proxied.external_url = Arc::new(callhook::http::ExternalUrl {
        public_base_url: Some("https://hooks.example.com".into()),
        ..Default::default()
    });
    let proxied = callhook::http::router(proxied, callhook::http::Limits::default());
    let (status, _, _) =
        post(&proxied, &retry, Some(&cookie), &format!("csrf={csrf}"), Some("https://hooks.example.com")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the public origin is ours");
    let (status, _, _) =
        post(&proxied, &retry, Some(&cookie), &format!("csrf={csrf}"), Some("https://hooks.example.com.evil")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Logout needs the token too, then ends the session in the browser.
    let (status, _, _) = post(&app, "/ui/logout", Some(&cookie), "", same.as_deref()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, headers) = post(&app, "/ui/logout", Some(&cookie), &format!("csrf={csrf}"), same.as_deref()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
}

async fn everything_stored_is_escaped(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (campaign, call, _) = seed(&store, HOSTILE).await;
    let cookie = sign_in(&app).await;
    let contact = store.contacts(campaign.id, None, None, 10).await.unwrap().remove(0);
    for path in [
        "/ui/campaigns".to_owned(),
        format!("/ui/campaigns/{}", campaign.id),
        format!("/ui/contacts/{}", contact.id),
        format!("/ui/calls/{call}"),
        "/ui/outbox?status=dead".to_owned(),
        "/ui/health".to_owned(),
    ] {
        let (status, body, _) = get(&app, &path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(!body.contains("<script") && !body.contains("<img") && !body.contains("<b>"), "{path}: {body}");
    }
    let (_, body, _) = get(&app, &format!("/ui/campaigns/{}", campaign.id), Some(&cookie)).await;
    assert!(body.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt;"), "{body}");
    let (_, body, _) = get(&app, "/ui/outbox?status=dead", Some(&cookie)).await;
    assert!(body.contains("HTTP 503 &lt;b&gt;from&lt;&#x2f;b&gt;"), "{body}");
    // A call id that is itself hostile (the dialer chooses call ids; any printable
    // token is accepted): escaped in text, attributes and links alike.
    let contact2 = add_contacts(&store, &campaign, vec![NewContact::phone("+14155550999")]).await.remove(0);
    let hostile_id = "x\"><svg/onload=alert(1)>";
    let new = NewAttempt { call_id: Some(hostile_id.into()), ..NewAttempt::new(contact2.id, Provider::Twilio) };
    store.register_attempt(new).await.unwrap();
    let encoded = percent_encoding::utf8_percent_encode(hostile_id, percent_encoding::NON_ALPHANUMERIC).to_string();
    for path in [format!("/ui/calls/{encoded}"), format!("/ui/contacts/{}", contact2.id)] {
        let (status, body, _) = get(&app, &path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(!body.contains("<svg") && body.contains("&lt;svg"), "{path}: {body}");
    }
}

async fn pages_show_the_numbers_the_api_reports(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (campaign, call, _) = seed(&store, "Numbers").await;
    add_contacts(&store, &campaign, vec![NewContact::phone("+14155550124"), NewContact::phone("+14155550125")]).await;
    let cookie = sign_in(&app).await;
    let (_, stats) = send(&app, admin("GET", &format!("/api/v1/campaigns/{}/stats", campaign.id), None)).await;
    let (_, page, _) = get(&app, &format!("/ui/campaigns/{}", campaign.id), Some(&cookie)).await;
    let number = |id: &str| {
        let at = page.find(&format!("id=\"{id}\">")).unwrap_or_else(|| panic!("{id} in page")) + id.len() + 6;
        page[at..].split('<').next().unwrap().trim().to_owned()
    };
    assert_eq!(number("stat-contacts"), stats["contacts"].to_string());
    assert_eq!(number("stat-completed"), stats["by_state"]["completed"].to_string());
    assert_eq!(number("stat-in-flight"), stats["calls_in_flight"].to_string());
    // The state filter: only in-progress contacts.
    let (_, page, _) = get(&app, &format!("/ui/campaigns/{}?state=in_progress", campaign.id), Some(&cookie)).await;
    assert_eq!(page.matches("data-contact=").count(), 1);
    let (_, page, _) = get(&app, &format!("/ui/campaigns/{}?state=pending", campaign.id), Some(&cookie)).await;
    assert_eq!(page.matches("data-contact=").count(), 2);
    // The call's timeline: its callback and its job.
    let (_, page, _) = get(&app, &format!("/ui/calls/{call}"), Some(&cookie)).await;
    assert!(page.contains("call.answered") && page.contains("dialogue.start"), "{page}");
    assert_eq!(page.matches("<li class=\"src-").count(), 2);
}

async fn bad_paths_and_filters_are_clear_errors(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let cookie = sign_in(&app).await;
    for (path, status, text) in [
        ("/ui/campaigns/not-a-uuid", StatusCode::BAD_REQUEST, "is not a campaign id"),
        ("/ui/campaigns/00000000-0000-4000-8000-000000000000", StatusCode::NOT_FOUND, "no campaign"),
        ("/ui/campaigns?status=sleeping", StatusCode::BAD_REQUEST, "unknown campaign status"),
        ("/ui/outbox?status=lost", StatusCode::BAD_REQUEST, "unknown job status"),
        ("/ui/calls/nope", StatusCode::NOT_FOUND, "no call"),
        ("/ui/contacts/nope", StatusCode::BAD_REQUEST, "is not a contact id"),
    ] {
        let (got, body, headers) = get(&app, path, Some(&cookie)).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(text), "{path}: {body}");
        assert!(headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap().starts_with("text/html"));
    }
    let id = store.create_campaign(NewCampaign::named("x")).await.unwrap().id;
    let (got, body, _) = get(&app, &format!("/ui/campaigns/{id}?state=asleep"), Some(&cookie)).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
}
