//! Several provider accounts (SPEC §13), through the real router on both stores:
//! the callback's account selects the key that verifies it, a call belongs to one
//! account, another account's callback cannot drive it (409), and the reconciler
//! asks about a call with its own account's credentials.

#[macro_use]
mod common;
mod fake_providers;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use callhook::clock::Clock;
use callhook::domain::{CallStatus, Provider};
use callhook::providers::api::{CallApi, TwilioApi, TwilioApiConfig};
use callhook::providers::twilio::{self, Algorithm};
use callhook::providers::{plivo, Account, Providers};
use callhook::reconcile::{Reconciler, ReconcilerConfig};
use callhook::secret::Secret;
use callhook::store::{NewAttempt, Store};
use common::*;
use fake_providers::{Behaviour, FakeProvider, TWILIO_ACCOUNT_SID};

on_both_stores!(
    each_account_verifies_with_its_own_keys_and_owns_its_calls,
    a_call_registered_without_an_account_belongs_to_its_first_callback,
    registering_under_an_unknown_account_is_refused,
    plivo_accounts_are_told_apart_by_the_key_that_verifies,
    the_single_account_configuration_keeps_working,
    the_reconciler_asks_with_the_calls_account,
    keys_of_no_account_cannot_drive_an_accounts_call,
    a_call_of_unknown_account_is_asked_of_each_account,
);

const AC_A: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const AC_B: &str = "ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn account(id: &str, token: &str) -> Account {
    Account { id: id.to_owned(), tokens: vec![Secret::new(token)] }
}

/// Two Twilio accounts, no single-account token; two Plivo accounts.
fn two_accounts() -> Providers {
    let mut p = Providers::default();
    p.twilio.accounts = vec![account(AC_A, "token-a"), account(AC_B, "token-b")];
    p.plivo.accounts = vec![account("MAAAAA", "plivo-a"), account("MABBBB", "plivo-b")];
    p
}

/// A Twilio callback naming `account`, signed with `token`.
fn callback_of(account: &str, token: &str, call_id: &str, sid: &str, status: &str) -> Request<Body> {
    let path = format!("/webhooks/telephony/events?call_id={call_id}");
    let f = fields(&[("AccountSid", account), ("CallSid", sid), ("CallStatus", status)]);
    let signature = twilio::sign(Algorithm::HmacSha1, token, &format!("http://{HOST}{path}"), &f);
    Request::post(path)
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(encode(&f)))
        .unwrap()
}

async fn registered(store: &Arc<dyn Store>, provider: Provider, account: Option<&str>) -> String {
    let campaign = campaign(store, 3).await;
    let contact = contact(store, &campaign).await;
    let mut new = NewAttempt::new(contact.id, provider);
    new.account_sid = account.map(str::to_owned);
    store.register_attempt(new).await.unwrap().attempt.call_id
}

async fn each_account_verifies_with_its_own_keys_and_owns_its_calls(store: Arc<dyn Store>) {
    let app = app_with(store.clone(), two_accounts());
    let call = registered(&store, Provider::Twilio, Some(AC_A)).await;

    let (code, body) = send(&app, callback_of(AC_A, "token-a", &call, "CA1", "ringing")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // Account B's valid signature, naming account B: verified, but not B's call.
    let (code, body) = send(&app, callback_of(AC_B, "token-b", &call, "CA1", "completed")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("account_mismatch")), "{body}");
    // B's token cannot pass for A: A's callbacks are checked with A's keys only.
    let (code, body) = send(&app, callback_of(AC_A, "token-b", &call, "CA1", "completed")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("invalid_signature")));
    // An account nobody configured.
    let (code, body) = send(&app, callback_of("ACcccc", "token-a", &call, "CA1", "completed")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("unknown_account")), "{body}");

    let events = store.events_for_call(&call).await.unwrap();
    assert_eq!(events.len(), 1, "only A's callback is stored");
    assert_eq!(events[0].account_sid.as_deref(), Some(AC_A));
    let attempt = store.attempt(&call).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.account_sid.as_deref()), (CallStatus::Ringing, Some(AC_A)));

    let (code, _) = send(&app, callback_of(AC_A, "token-a", &call, "CA1", "completed")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(store.attempt(&call).await.unwrap().unwrap().status, CallStatus::Completed);
}

async fn a_call_registered_without_an_account_belongs_to_its_first_callback(store: Arc<dyn Store>) {
    let app = app_with(store.clone(), two_accounts());
    let call = registered(&store, Provider::Twilio, None).await;
    let (code, _) = send(&app, callback_of(AC_B, "token-b", &call, "CA2", "ringing")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(store.attempt(&call).await.unwrap().unwrap().account_sid.as_deref(), Some(AC_B));
    let (code, body) = send(&app, callback_of(AC_A, "token-a", &call, "CA2", "in-progress")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("account_mismatch")));
    assert_eq!(store.attempt(&call).await.unwrap().unwrap().status, CallStatus::Ringing);

    // A callback that arrived before its registration under another account is
    // kept but not applied.
    let campaign = campaign(&store, 3).await;
    let contact = contact(&store, &campaign).await;
    let (code, body) = send(&app, callback_of(AC_B, "token-b", "early-call", "CA3", "in-progress")).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::ACCEPTED, Some("deferred")), "{body}");
    let new = NewAttempt {
        call_id: Some("early-call".into()),
        account_sid: Some(AC_A.into()),
        ..NewAttempt::new(contact.id, Provider::Twilio)
    };
    let registered = store.register_attempt(new).await.unwrap();
    assert_eq!(registered.attempt.status, CallStatus::Initiated, "B's early callback did not drive A's call");
    let events = store.events_for_call("early-call").await.unwrap();
    assert_eq!(events[0].disposition.as_str(), "ignored");
}

async fn registering_under_an_unknown_account_is_refused(store: Arc<dyn Store>) {
    let app = app_with(store.clone(), two_accounts());
    let campaign = campaign(&store, 3).await;
    let contact = contact(&store, &campaign).await;
    for (account, status, code) in [
        (json!("ACzzzz"), StatusCode::BAD_REQUEST, "unknown_account"),
        (json!("MAnobody"), StatusCode::BAD_REQUEST, "unknown_account"),
        (json!("AC with space"), StatusCode::BAD_REQUEST, "unknown_account"),
        (json!(7), StatusCode::BAD_REQUEST, "invalid_request"),
    ] {
        let provider = if account == json!("MAnobody") { "plivo" } else { "twilio" };
        let body = json!({"contact_id": contact.id, "provider": provider, "account_sid": account});
        let (got, answer) = send(&app, admin("POST", "/api/v1/calls", Some(body))).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{answer}");
    }
    // Telnyx's and Vonage's callbacks name no account: a call of theirs has none.
    let body = json!({"contact_id": contact.id, "provider": "telnyx", "account_sid": AC_A});
    let (got, answer) = send(&app, admin("POST", "/api/v1/calls", Some(body))).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("twilio, signalwire and plivo"), "{answer}");
    assert_eq!(store.contact(contact.id).await.unwrap().unwrap().attempts_count, 0, "nothing registered");
    let body = json!({"contact_id": contact.id, "provider": "twilio", "account_sid": AC_B});
    let (got, answer) = send(&app, admin("POST", "/api/v1/calls", Some(body))).await;
    assert_eq!(got, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["attempt"]["account_sid"], AC_B);
}

async fn plivo_accounts_are_told_apart_by_the_key_that_verifies(store: Arc<dyn Store>) {
    let app = app_with(store.clone(), two_accounts());
    let call = registered(&store, Provider::Plivo, Some("MAAAAA")).await;
    let path = format!("/webhooks/telephony/plivo/events?call_id={call}");
    let post = |token: &str, status: &str| {
        let f = fields(&[("CallUUID", "9a1b6c2e-0000-4000-8000-000000000001"), ("CallStatus", status)]);
        let signature = plivo::sign(token, &format!("http://{HOST}{path}"), &f, "nonce-1");
        Request::post(&path)
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(plivo::SIGNATURE_HEADER, signature)
            .header(plivo::NONCE_HEADER, "nonce-1")
            .body(Body::from(encode(&f)))
            .unwrap()
    };
    let (code, body) = send(&app, post("plivo-b", "ringing")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("account_mismatch")), "{body}");
    let (code, _) = send(&app, post("plivo-a", "ringing")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = send(&app, post("unknown-token", "in-progress")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let events = store.events_for_call(&call).await.unwrap();
    assert_eq!(events.iter().map(|e| e.account_sid.as_deref()).collect::<Vec<_>>(), [Some("MAAAAA")]);
}

async fn the_single_account_configuration_keeps_working(store: Arc<dyn Store>) {
    // `providers()` has one Twilio token and no accounts: any AccountSid it signs is
    // accepted, and recorded.
    let app = app(store.clone());
    let call = registered(&store, Provider::Twilio, None).await;
    let (code, _) = send(&app, callback_of("ACanything", TOKEN, &call, "CA9", "ringing")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = send(&app, callback_of("ACanything", "wrong", &call, "CA9", "completed")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(store.attempt(&call).await.unwrap().unwrap().account_sid.as_deref(), Some("ACanything"));
    let unknown_contact = json!({"contact_id": uuid::Uuid::new_v4(), "account_sid": "ACx"});
    let (code, body) = send(&app, admin("POST", "/api/v1/calls", Some(unknown_contact))).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "any account may be named without an accounts file: {body}");
    // Plivo's callbacks do not name their account: without CALLHOOK_PLIVO_AUTH_ID
    // (or the accounts file) a call cannot be registered under one.
    let plivo = json!({"contact_id": uuid::Uuid::new_v4(), "provider": "plivo", "account_sid": "MA1"});
    let (code, body) = send(&app, admin("POST", "/api/v1/calls", Some(plivo))).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown_account")), "{body}");
}

async fn keys_of_no_account_cannot_drive_an_accounts_call(store: Arc<dyn Store>) {
    // The single-account token and a shared key beside an accounts file.
    let mut providers = two_accounts();
    providers.twilio.auth_tokens = vec![Secret::new(TOKEN)];
    providers.twilio.shared_keys = vec![Secret::new("shared-key")];
    let app = app_with(store.clone(), providers);
    let call = registered(&store, Provider::Twilio, Some(AC_A)).await;
    let path = format!("/webhooks/telephony/events?call_id={call}");
    let post = |fields: Vec<(String, String)>, signature: String, settings: bool| {
        let mut b = Request::post(&path)
            .header("host", HOST)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature);
        if settings {
            b = b.header(twilio::SETTINGS_HEADER, "key=KS1,algorithm=HMAC_SHA256");
        }
        b.body(Body::from(encode(&fields))).unwrap()
    };
    let url = format!("http://{HOST}{path}");
    // No AccountSid, verified by the single-account token: of no known account.
    let anonymous = fields(&[("CallSid", "CA5"), ("CallStatus", "ringing")]);
    let signature = twilio::sign(Algorithm::HmacSha1, TOKEN, &url, &anonymous);
    let (code, body) = send(&app, post(anonymous, signature, false)).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("account_mismatch")), "{body}");
    // Claiming A, signed with the single-account token: A's keys only.
    let claiming = fields(&[("AccountSid", AC_A), ("CallSid", "CA5"), ("CallStatus", "ringing")]);
    let signature = twilio::sign(Algorithm::HmacSha1, TOKEN, &url, &claiming);
    assert_eq!(send(&app, post(claiming.clone(), signature, false)).await.0, StatusCode::FORBIDDEN);
    // Claiming A, signed with the shared key: the claim is not vouched for.
    let signature = twilio::sign(Algorithm::HmacSha256, "shared-key", &url, &claiming);
    let (code, body) = send(&app, post(claiming.clone(), signature, true)).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("account_mismatch")), "{body}");
    assert!(store.events_for_call(&call).await.unwrap().is_empty(), "nothing stored");
    // A's own key.
    let signature = twilio::sign(Algorithm::HmacSha1, "token-a", &url, &claiming);
    assert_eq!(send(&app, post(claiming, signature, false)).await.0, StatusCode::OK);

    // Plivo: the single token with its auth id set is that account's.
    let mut providers = Providers::default();
    providers.plivo.auth_tokens = vec![Secret::new("plivo-single")];
    providers.plivo.auth_id = Some("MASINGLE".into());
    let app = app_with(store.clone(), providers);
    let call = registered(&store, Provider::Plivo, Some("MASINGLE")).await;
    let path = format!("/webhooks/telephony/plivo/events?call_id={call}");
    let f = fields(&[("CallUUID", "9a1b6c2e-0000-4000-8000-000000000009"), ("CallStatus", "ringing")]);
    let signature = plivo::sign("plivo-single", &format!("http://{HOST}{path}"), &f, "n");
    let req = Request::post(&path)
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(plivo::SIGNATURE_HEADER, signature)
        .header(plivo::NONCE_HEADER, "n")
        .body(Body::from(encode(&f)))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
    assert_eq!(store.events_for_call(&call).await.unwrap()[0].account_sid.as_deref(), Some("MASINGLE"));
}

async fn a_call_of_unknown_account_is_asked_of_each_account(store: Arc<dyn Store>) {
    // Two clients of the account the fakes know, on two fakes: the first does not
    // know the call (404), the second does.
    let (first_base, first) = FakeProvider::start(Provider::Twilio).await;
    let (second_base, second) = FakeProvider::start(Provider::Twilio).await;
    let client = |base: &str| -> Arc<dyn CallApi> {
        let mut cfg = TwilioApiConfig::twilio(TWILIO_ACCOUNT_SID, Secret::new(fake_providers::TWILIO_AUTH_TOKEN));
        cfg.base_url = base.to_owned();
        cfg.timeout = Duration::from_secs(2);
        Arc::new(TwilioApi::new(cfg).unwrap())
    };
    let apis = vec![client(&first_base), client(&second_base)];
    let reconciler =
        Reconciler::new(store.clone(), apis, ReconcilerConfig::default(), Clock::offset(chrono::Duration::minutes(11)));
    let sid = "CA0000000000000000000000000000000c";
    let campaign = campaign(&store, 3).await;
    let contact = contact(&store, &campaign).await;
    let new = NewAttempt { provider_call_id: Some(sid.to_owned()), ..NewAttempt::new(contact.id, Provider::Twilio) };
    let call = store.register_attempt(new).await.unwrap().attempt.call_id;
    second.set_call(sid, Behaviour::Fixture("completed"));
    reconciler.pass().await.unwrap();
    assert_eq!((first.requests().len(), second.requests().len()), (1, 1), "asked the first, then the second");
    let attempt = store.attempt(&call).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.account_sid.as_deref()), (CallStatus::Completed, Some(TWILIO_ACCOUNT_SID)));
}

async fn the_reconciler_asks_with_the_calls_account(store: Arc<dyn Store>) {
    let (base, fake) = FakeProvider::start(Provider::Twilio).await;
    let client = |sid: &str, token: &str| -> Arc<dyn CallApi> {
        let mut cfg = TwilioApiConfig::twilio(sid, Secret::new(token));
        cfg.base_url = base.clone();
        cfg.timeout = Duration::from_secs(2);
        Arc::new(TwilioApi::new(cfg).unwrap())
    };
    // The other account's client first: picking "the Twilio client" would use it.
    let apis = vec![client(AC_B, "token-b"), client(TWILIO_ACCOUNT_SID, fake_providers::TWILIO_AUTH_TOKEN)];
    let config = ReconcilerConfig::default();
    let reconciler = Reconciler::new(store.clone(), apis, config, Clock::offset(chrono::Duration::minutes(11)));

    let mut calls = vec![];
    for (account, sid) in
        [(TWILIO_ACCOUNT_SID, "CA0000000000000000000000000000000a"), (AC_B, "CA0000000000000000000000000000000b")]
    {
        let campaign = campaign(&store, 3).await;
        let contact = contact(&store, &campaign).await;
        let new = NewAttempt {
            provider_call_id: Some(sid.to_owned()),
            account_sid: Some(account.to_owned()),
            ..NewAttempt::new(contact.id, Provider::Twilio)
        };
        calls.push(store.register_attempt(new).await.unwrap().attempt.call_id);
        fake.set_call(sid, Behaviour::Fixture("completed"));
    }
    reconciler.pass().await.unwrap();
    let asked: Vec<_> = fake.requests().iter().map(|r| (r.path.clone(), r.authorized)).collect();
    assert!(
        asked.contains(&(
            format!("/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Calls/CA0000000000000000000000000000000a.json"),
            true
        )),
        "{asked:?}"
    );
    assert!(
        asked.contains(&(format!("/2010-04-01/Accounts/{AC_B}/Calls/CA0000000000000000000000000000000b.json"), false)),
        "B's call is asked about with B's credentials (which this fake does not know): {asked:?}"
    );
    assert!(asked.iter().all(|(path, _)| !path.contains("CA0000000000000000000000000000000b") || path.contains(AC_B)));
    let mine = store.attempt(&calls[0]).await.unwrap().unwrap();
    assert_eq!((mine.status, mine.account_sid.as_deref()), (CallStatus::Completed, Some(TWILIO_ACCOUNT_SID)));
    let reconciled = store.events_for_call(&calls[0]).await.unwrap();
    assert_eq!(reconciled[0].account_sid.as_deref(), Some(TWILIO_ACCOUNT_SID), "the API's answer names the account");
    assert_ne!(store.attempt(&calls[1]).await.unwrap().unwrap().status, CallStatus::Completed);
}

#[test]
fn config_check_reads_the_accounts_file_and_names_its_mistakes() {
    let dir = common::scratch_dir("accounts");
    let good = dir.join("accounts.toml");
    std::fs::write(
        &good,
        format!("[[twilio]]\naccount_sid = \"{AC_A}\"\nauth_tokens = [\"a\"]\n[[plivo]]\nauth_id = \"MA1\"\nauth_tokens = [\"p\"]\n"),
    )
    .unwrap();
    let (ok, out, err) = callhook(&["config", "check", "--accounts-file", good.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 Twilio, 0 SignalWire and 1 Plivo account(s)"), "{out}");
    assert!(!out.contains("\"a\""), "secrets stay masked: {out}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, format!("[[twilio]]\naccount_sid = \"{AC_A}\"\nauth_tokens = []\n")).unwrap();
    let (ok, out, err) = callhook(&["config", "check", "--accounts-file", bad.to_str().unwrap()]);
    assert!(!ok && format!("{out}{err}").contains("has no signing secret"), "{out}{err}");
    let (ok, out, err) = callhook(&["config", "check", "--accounts-file", dir.join("missing.toml").to_str().unwrap()]);
    assert!(!ok && format!("{out}{err}").contains("cannot read"), "{out}{err}");
    std::fs::remove_dir_all(dir).ok();
}
