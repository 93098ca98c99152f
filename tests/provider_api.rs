//! The REST clients of `callhook::providers::api` against faithful local fakes of
//! each provider's call API (`tests/fake_providers/`): every status fixture maps to
//! the snapshot the callback parser would agree with, every failure to its
//! `ApiError`, and every client sends exactly the credentials its provider checks.

mod fake_providers;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use callhook::domain::{EventType, Provider};
use callhook::providers::api::{
    ApiError, CallApi, CallSnapshot, PlivoApi, PlivoApiConfig, TelnyxApi, TelnyxApiConfig, TwilioApi, TwilioApiConfig,
    VonageApi, VonageApiConfig,
};
use callhook::secret::Secret;
use fake_providers::*;

const ALL: [Provider; 5] =
    [Provider::Twilio, Provider::SignalWire, Provider::Telnyx, Provider::Vonage, Provider::Plivo];

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

/// The snapshot every field of which a test states.
struct Expect {
    raw_status: &'static str,
    event_type: Option<EventType>,
    duration: Option<i32>,
    answered_by: Option<&'static str>,
    started: Option<&'static str>,
    answered: Option<&'static str>,
    ended: Option<&'static str>,
    error_code: Option<&'static str>,
    error_message: Option<&'static str>,
    account: Option<&'static str>,
}

const NONE: Expect = Expect {
    raw_status: "",
    event_type: None,
    duration: None,
    answered_by: None,
    started: None,
    answered: None,
    ended: None,
    error_code: None,
    error_message: None,
    account: None,
};

fn expected(provider: Provider, id: &str, fixture_name: &'static str, e: Expect) -> CallSnapshot {
    CallSnapshot {
        provider,
        provider_call_id: id.to_owned(),
        raw_status: e.raw_status.to_owned(),
        event_type: e.event_type,
        duration_seconds: e.duration,
        answered_by: e.answered_by.map(str::to_owned),
        started_at: e.started.map(at),
        answered_at: e.answered.map(at),
        ended_at: e.ended.map(at),
        error_code: e.error_code.map(str::to_owned),
        error_message: e.error_message.map(str::to_owned),
        account: e.account.map(str::to_owned),
        raw: fixture_for(provider, fixture_name, id),
    }
}

/// Serves each fixture for its own call id, fetches it, and compares whole snapshots.
async fn check_fixtures(provider: Provider, cases: Vec<(&'static str, Expect)>) {
    let (_, fake) = FakeProvider::start(provider).await;
    let api = fake.client();
    assert_eq!(api.provider(), provider);
    for (name, e) in cases {
        let id = format!("{}-{name}", fixture_call_id(provider));
        fake.set_call(&id, Behaviour::Fixture(name));
        let snapshot = api.fetch_call(&id).await.unwrap_or_else(|err| panic!("{provider} {name}: {err}"));
        assert_eq!(snapshot, expected(provider, &id, name, e), "{provider} {name}");
        assert!(fake.requests_for(&id).iter().all(|r| r.authorized && r.method == "GET"), "{provider} {name}");
    }
}

#[tokio::test]
async fn twilio_maps_every_call_status() {
    const S: &str = "2026-11-24T10:00:05Z";
    let t = |raw_status, event_type| Expect { raw_status, event_type, account: Some(TWILIO_ACCOUNT_SID), ..NONE };
    check_fixtures(
        Provider::Twilio,
        vec![
            ("queued", t("queued", Some(EventType::Initiated))),
            ("ringing", Expect { started: Some(S), ..t("ringing", Some(EventType::Ringing)) }),
            (
                "in-progress",
                Expect { started: Some(S), answered_by: Some("human"), ..t("in-progress", Some(EventType::Answered)) },
            ),
            (
                "completed",
                Expect {
                    started: Some(S),
                    ended: Some("2026-11-24T10:00:47Z"),
                    duration: Some(42),
                    answered_by: Some("machine_start"),
                    ..t("completed", Some(EventType::Completed))
                },
            ),
            ("busy", Expect { started: Some(S), ..t("busy", Some(EventType::Busy)) }),
            ("no-answer", Expect { started: Some(S), ..t("no-answer", Some(EventType::NoAnswer)) }),
            ("failed", t("failed", Some(EventType::Failed))),
            ("canceled", Expect { started: Some(S), ..t("canceled", Some(EventType::Failed)) }),
            ("unknown-status", Expect { started: Some(S), ..t("held", None) }),
        ],
    )
    .await;
}

#[tokio::test]
async fn signalwire_maps_every_call_status() {
    const S: &str = "2026-11-24T10:00:05Z";
    let t = |raw_status, event_type| Expect {
        raw_status,
        event_type,
        duration: Some(0),
        account: Some(SIGNALWIRE_PROJECT_ID),
        ..NONE
    };
    check_fixtures(
        Provider::SignalWire,
        vec![
            ("queued", t("queued", Some(EventType::Initiated))),
            ("ringing", Expect { started: Some(S), ..t("ringing", Some(EventType::Ringing)) }),
            (
                "in-progress",
                Expect { started: Some(S), answered_by: Some("human"), ..t("in-progress", Some(EventType::Answered)) },
            ),
            (
                // `duration` is a number here, and the end time is spelt `Tues, …`.
                "completed",
                Expect {
                    started: Some(S),
                    ended: Some("2026-11-24T10:00:47Z"),
                    duration: Some(42),
                    answered_by: Some("machine"),
                    ..t("completed", Some(EventType::Completed))
                },
            ),
            ("busy", Expect { started: Some(S), ended: Some(S), ..t("busy", Some(EventType::Busy)) }),
            (
                "no-answer",
                Expect {
                    started: Some(S),
                    ended: Some("2026-11-24T10:00:35Z"),
                    ..t("no-answer", Some(EventType::NoAnswer))
                },
            ),
            ("failed", Expect { ended: Some("2026-11-24T10:00:01Z"), ..t("failed", Some(EventType::Failed)) }),
            (
                "canceled",
                Expect {
                    started: Some(S),
                    ended: Some("2026-11-24T10:00:09Z"),
                    ..t("canceled", Some(EventType::Failed))
                },
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn telnyx_says_alive_or_ended_and_never_how_a_call_ended() {
    check_fixtures(
        Provider::Telnyx,
        vec![
            (
                "alive",
                Expect { raw_status: "alive", duration: Some(12), started: Some("2026-11-24T10:00:05Z"), ..NONE },
            ),
            (
                "ended",
                Expect {
                    raw_status: "ended",
                    duration: Some(50),
                    started: Some("2026-11-24T10:00:02.574Z"),
                    ended: Some("2026-11-24T10:00:52.574Z"),
                    ..NONE
                },
            ),
        ],
    )
    .await;

    let (_, fake) = FakeProvider::start(Provider::Telnyx).await;
    fake.set_call("v3:alive", Behaviour::Fixture("alive"));
    fake.set_call("v3:ended", Behaviour::Fixture("ended"));
    fake.set_call("v3:odd", Behaviour::Fixture("unknown-status"));
    let api = fake.client();
    let alive = api.fetch_call("v3:alive").await.unwrap();
    assert!(!alive.is_ended() && !alive.outcome_unknown(), "{alive:?}");
    let ended = api.fetch_call("v3:ended").await.unwrap();
    assert!(ended.is_ended() && ended.outcome_unknown(), "{ended:?}");
    // No boolean `is_alive`: not the documented answer.
    let odd = api.fetch_call("v3:odd").await;
    assert!(matches!(&odd, Err(ApiError::Garbage(m)) if m.contains("is_alive")), "{odd:?}");
}

#[tokio::test]
async fn vonage_maps_every_call_status() {
    let v = |raw_status, event_type| Expect { raw_status, event_type, ..NONE };
    let failed = |raw_status: &'static str, event_type| Expect {
        raw_status,
        event_type: Some(event_type),
        error_code: Some(raw_status),
        ..NONE
    };
    check_fixtures(
        Provider::Vonage,
        vec![
            ("started", v("started", Some(EventType::Initiated))),
            ("ringing", v("ringing", Some(EventType::Ringing))),
            ("answered", v("answered", Some(EventType::Answered))),
            ("machine", Expect { answered_by: Some("machine"), ..v("machine", Some(EventType::Answered)) }),
            (
                "completed",
                Expect {
                    duration: Some(42),
                    started: Some("2026-11-24T10:00:05Z"),
                    ended: Some("2026-11-24T10:00:47Z"),
                    ..v("completed", Some(EventType::Completed))
                },
            ),
            ("busy", failed("busy", EventType::Busy)),
            ("cancelled", failed("cancelled", EventType::Failed)),
            ("failed", failed("failed", EventType::Failed)),
            ("rejected", failed("rejected", EventType::Busy)),
            ("timeout", failed("timeout", EventType::NoAnswer)),
            ("unanswered", failed("unanswered", EventType::NoAnswer)),
            ("unknown-status", v("transferring", None)),
        ],
    )
    .await;
}

#[tokio::test]
async fn plivo_reads_the_record_of_an_ended_call_and_the_live_call_otherwise() {
    const INITIATED: &str = "2026-11-24T09:59:58Z";
    let unanswered = |raw_status, event_type, ended, code, message| Expect {
        raw_status,
        event_type: Some(event_type),
        duration: Some(0),
        started: Some(INITIATED),
        ended: Some(ended),
        error_code: Some(code),
        error_message: Some(message),
        account: Some(PLIVO_AUTH_ID),
        ..NONE
    };
    let live = |raw_status, event_type| Expect {
        raw_status,
        event_type,
        started: Some("2026-11-24T10:00:05.050872Z"),
        ..NONE
    };
    check_fixtures(
        Provider::Plivo,
        vec![
            (
                "cdr-completed",
                Expect {
                    raw_status: "completed",
                    event_type: Some(EventType::Completed),
                    duration: Some(42),
                    started: Some(INITIATED),
                    answered: Some("2026-11-24T10:00:05Z"),
                    ended: Some("2026-11-24T10:00:47Z"),
                    account: Some(PLIVO_AUTH_ID),
                    ..NONE
                },
            ),
            (
                "cdr-no-answer",
                unanswered("no-answer", EventType::NoAnswer, "2026-11-24T10:00:40Z", "3000", "Ring Timeout Reached"),
            ),
            ("cdr-busy", unanswered("busy", EventType::Busy, "2026-11-24T10:00:03Z", "3010", "Busy Line")),
            (
                "cdr-failed",
                unanswered("failed", EventType::Failed, "2026-11-24T09:59:59Z", "2000", "Invalid Destination Address"),
            ),
            ("cdr-canceled", unanswered("cancel", EventType::Failed, "2026-11-24T10:00:10Z", "1000", "Canceled")),
            ("live-in-progress", live("in-progress", Some(EventType::Answered))),
            ("live-ringing", live("ringing", Some(EventType::Ringing))),
            ("live-unknown-status", live("transferring", None)),
        ],
    )
    .await;

    // A record takes one request; a live call two: the record (404), then `?status=live`.
    let (_, fake) = FakeProvider::start(Provider::Plivo).await;
    fake.set_call("u-ended", Behaviour::Fixture("cdr-busy"));
    fake.set_call("u-live", Behaviour::Fixture("live-in-progress"));
    let api = fake.client();
    api.fetch_call("u-ended").await.unwrap();
    let record = fake.requests_for("u-ended");
    assert_eq!(record.len(), 1);
    assert_eq!(
        (record[0].path.as_str(), record[0].query.as_deref()),
        ("/v1/Account/MAZJYTY4NMQXMTI5ZTGZND/Call/u-ended/", None)
    );
    api.fetch_call("u-live").await.unwrap();
    let live = fake.requests_for("u-live");
    assert_eq!(live.iter().map(|r| r.query.as_deref()).collect::<Vec<_>>(), [None, Some("status=live")]);
    // In neither: unknown.
    assert!(matches!(api.fetch_call("u-gone").await, Err(ApiError::NotFound)));
    assert_eq!(fake.requests_for("u-gone").len(), 2);
}

/// Basic auth as the fake decoded it.
fn basic(fake: &FakeHandle, id: &str) -> (String, String) {
    let requests = fake.requests_for(id);
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests[0].basic.clone().expect("basic auth")
}

#[tokio::test]
async fn twilio_authenticates_with_the_auth_token_or_an_api_key() {
    let (base, fake) = FakeProvider::start(Provider::Twilio).await;
    for id in ["CA-token", "CA-key", "CA-wrong"] {
        fake.set_call(id, Behaviour::Fixture("completed"));
    }
    fake.client().fetch_call("CA-token").await.unwrap();
    assert_eq!(basic(&fake, "CA-token"), (TWILIO_ACCOUNT_SID.to_owned(), TWILIO_AUTH_TOKEN.to_owned()));
    let request = &fake.requests_for("CA-token")[0];
    assert_eq!(request.path, format!("/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Calls/CA-token.json"));
    assert_eq!(request.accept.as_deref(), Some("application/json"));

    // An API key signs in as itself; the path still names the account.
    let with_key = twilio_config(&base).with_api_key(TWILIO_API_KEY_SID, Secret::new(TWILIO_API_KEY_SECRET));
    TwilioApi::new(with_key).unwrap().fetch_call("CA-key").await.unwrap();
    assert_eq!(basic(&fake, "CA-key"), (TWILIO_API_KEY_SID.to_owned(), TWILIO_API_KEY_SECRET.to_owned()));
    assert!(fake.requests_for("CA-key")[0].path.contains(TWILIO_ACCOUNT_SID));

    let wrong =
        TwilioApi::new(TwilioApiConfig { secret: Secret::new("not-the-token"), ..twilio_config(&base) }).unwrap();
    let refused = wrong.fetch_call("CA-wrong").await;
    assert!(matches!(&refused, Err(ApiError::Unauthorized(m)) if m.contains("20003 Authenticate")), "{refused:?}");
    assert!(!fake.requests_for("CA-wrong")[0].authorized);
    // The message names the provider's error, never the secret.
    assert!(!format!("{:?}", refused.unwrap_err()).contains("not-the-token"));
}

#[tokio::test]
async fn signalwire_authenticates_with_the_project_and_api_token_under_api_laml() {
    let (base, fake) = FakeProvider::start(Provider::SignalWire).await;
    fake.set_call("sw-1", Behaviour::Fixture("ringing"));
    fake.client().fetch_call("sw-1").await.unwrap();
    assert_eq!(basic(&fake, "sw-1"), (SIGNALWIRE_PROJECT_ID.to_owned(), SIGNALWIRE_API_TOKEN.to_owned()));
    assert_eq!(
        fake.requests_for("sw-1")[0].path,
        format!("/api/laml/2010-04-01/Accounts/{SIGNALWIRE_PROJECT_ID}/Calls/sw-1.json")
    );
    let wrong = TwilioApi::new(TwilioApiConfig { secret: Secret::new("nope"), ..signalwire_config(&base) }).unwrap();
    let refused = wrong.fetch_call("sw-1").await;
    assert!(
        matches!(&refused, Err(ApiError::Unauthorized(m)) if m.contains("20003 Authentication failed")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn telnyx_sends_its_api_key_as_a_bearer_token() {
    let (base, fake) = FakeProvider::start(Provider::Telnyx).await;
    fake.set_call("v3:abc", Behaviour::Fixture("alive"));
    fake.client().fetch_call("v3:abc").await.unwrap();
    let request = &fake.requests_for("v3:abc")[0];
    assert_eq!(request.authorization.as_deref(), Some(format!("Bearer {TELNYX_API_KEY}").as_str()));
    assert_eq!(request.path, "/v2/calls/v3:abc");
    let wrong = TelnyxApi::new(TelnyxApiConfig { api_key: Secret::new("KEY-wrong"), ..telnyx_config(&base) }).unwrap();
    let refused = wrong.fetch_call("v3:abc").await;
    assert!(
        matches!(&refused, Err(ApiError::Unauthorized(m)) if m.contains("10009 Authentication failed")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn vonage_sends_an_rs256_application_jwt_as_its_sdks_make_it() {
    let (base, fake) = FakeProvider::start(Provider::Vonage).await;
    fake.set_call("uuid-1", Behaviour::Fixture("answered"));
    let api = fake.client();
    let before = Utc::now().timestamp();
    api.fetch_call("uuid-1").await.unwrap();
    api.fetch_call("uuid-1").await.unwrap();
    let requests = fake.requests_for("uuid-1");
    assert_eq!(requests.len(), 2);
    let (header, claims) = requests[0].jwt.clone().expect("a JWT the fake verified");
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("JWT")));
    assert_eq!(claims["application_id"], VONAGE_APPLICATION_ID);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((before..=Utc::now().timestamp()).contains(&iat), "{claims}");
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 15 * 60);
    uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).expect("jti is a UUID");
    // A fresh token each time.
    assert_ne!(requests[1].jwt.as_ref().unwrap().1["jti"], claims["jti"]);
    assert_eq!(requests[0].path, "/v1/calls/uuid-1");

    // The PKCS#1 form of the same key signs the same way.
    let pkcs1 = VonageApiConfig { private_key: Secret::new(vonage_private_key_pkcs1()), ..vonage_config(&base) };
    VonageApi::new(pkcs1).unwrap().fetch_call("uuid-1").await.unwrap();
    assert!(fake.requests_for("uuid-1")[2].authorized);

    // Another application's key, or another application id: Vonage's 401.
    for config in [
        VonageApiConfig { private_key: Secret::new(vonage_other_private_key()), ..vonage_config(&base) },
        VonageApiConfig { application_id: "bbbbbbbb-0000-4000-8000-000000000000".into(), ..vonage_config(&base) },
    ] {
        let refused = VonageApi::new(config).unwrap().fetch_call("uuid-1").await;
        assert!(
            matches!(&refused, Err(ApiError::Unauthorized(m)) if m.contains("Unauthorized: You did not provide correct credentials.")),
            "{refused:?}"
        );
    }
    assert_eq!(fake.requests_for("uuid-1").iter().filter(|r| !r.authorized).count(), 2);
}

#[tokio::test]
async fn plivo_authenticates_with_auth_id_and_token_and_stops_at_a_refusal() {
    let (base, fake) = FakeProvider::start(Provider::Plivo).await;
    fake.set_call("u-1", Behaviour::Fixture("live-ringing"));
    fake.client().fetch_call("u-1").await.unwrap();
    let requests = fake.requests_for("u-1");
    assert!(requests.iter().all(|r| r.basic == Some((PLIVO_AUTH_ID.to_owned(), PLIVO_AUTH_TOKEN.to_owned()))));
    fake.clear_requests();
    let wrong = PlivoApi::new(PlivoApiConfig { auth_token: Secret::new("nope"), ..plivo_config(&base) }).unwrap();
    let refused = wrong.fetch_call("u-1").await;
    assert!(
        matches!(&refused, Err(ApiError::Unauthorized(m)) if m.contains("Authentication credentials invalid")),
        "{refused:?}"
    );
    // A refusal is not "no record yet": the live call is not asked for.
    assert_eq!(fake.requests().len(), 1);
}

fn http_date(in_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(in_secs)).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Every failure of every provider maps to its `ApiError`.
#[tokio::test]
async fn every_failure_maps_to_its_api_error() {
    for provider in ALL {
        let (_, fake) = FakeProvider::start(provider).await;
        let cases: Vec<(&str, Behaviour)> = vec![
            ("c-404", Behaviour::Error(404)),
            ("c-429-secs", Behaviour::RateLimited { retry_after: Some("7".into()) }),
            ("c-429-date", Behaviour::RateLimited { retry_after: Some(http_date(30)) }),
            ("c-429-bare", Behaviour::RateLimited { retry_after: None }),
            ("c-500", Behaviour::Error(500)),
            ("c-503", Behaviour::Error(503)),
            ("c-418", Behaviour::Error(418)),
            ("c-html", Behaviour::Html),
            ("c-junk", Behaviour::Raw { status: 200, content_type: "application/json", body: "{\"status\": ".into() }),
            ("c-array", Behaviour::Raw { status: 200, content_type: "application/json", body: "[]".into() }),
            ("c-empty", Behaviour::Raw { status: 200, content_type: "application/json", body: "{}".into() }),
        ];
        for (id, behaviour) in cases {
            fake.set_call(id, behaviour);
        }
        let api = fake.client();
        let fetch = |id: &'static str| {
            let api = api.clone();
            async move { api.fetch_call(id).await }
        };
        let ctx = |id: &str| format!("{provider} {id}");

        assert!(matches!(fetch("c-404").await, Err(ApiError::NotFound)), "{}", ctx("c-404"));
        // Nobody programmed it: the provider's own "unknown call" answer (Telnyx: 422).
        let unknown = fetch("c-never-heard-of").await;
        assert!(matches!(unknown, Err(ApiError::NotFound)), "{}: {unknown:?}", ctx("unknown"));
        let secs = fetch("c-429-secs").await;
        assert!(
            matches!(secs, Err(ApiError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(7)),
            "{}: {secs:?}",
            ctx("secs")
        );
        let date = fetch("c-429-date").await;
        assert!(
            matches!(date, Err(ApiError::RateLimited { retry_after: Some(d) }) if d >= Duration::from_secs(25) && d <= Duration::from_secs(31)),
            "{}: {date:?}",
            ctx("date")
        );
        let bare = fetch("c-429-bare").await;
        assert!(matches!(bare, Err(ApiError::RateLimited { retry_after: None })), "{}: {bare:?}", ctx("bare"));
        assert!(matches!(fetch("c-500").await, Err(ApiError::Server(500))), "{}", ctx("c-500"));
        assert!(matches!(fetch("c-503").await, Err(ApiError::Server(503))), "{}", ctx("c-503"));
        assert!(matches!(fetch("c-418").await, Err(ApiError::Server(418))), "{}", ctx("c-418"));
        let html = fetch("c-html").await;
        assert!(matches!(&html, Err(ApiError::Garbage(m)) if m.contains("text/html")), "{}: {html:?}", ctx("html"));
        for id in ["c-junk", "c-array", "c-empty"] {
            let garbage = fetch(id).await;
            assert!(matches!(garbage, Err(ApiError::Garbage(_))), "{}: {garbage:?}", ctx(id));
        }
        // A 200 about another call is not about this one.
        let id_field = match provider {
            Provider::Twilio | Provider::SignalWire => Some(("completed", "sid")),
            Provider::Telnyx => None,
            Provider::Vonage => Some(("completed", "uuid")),
            Provider::Plivo => Some(("cdr-completed", "call_uuid")),
        };
        let mut answer = fixture_for(provider, id_field.map_or("alive", |f| f.0), "c-other");
        match id_field {
            Some((_, field)) => answer[field] = Value::from("someone-else"),
            None => answer["data"]["call_control_id"] = Value::from("someone-else"),
        }
        fake.set_call(
            "c-other",
            Behaviour::Raw { status: 200, content_type: "application/json", body: answer.to_string() },
        );
        let other = fetch("c-other").await;
        assert!(
            matches!(&other, Err(ApiError::Garbage(m)) if m.contains("someone-else")),
            "{}: {other:?}",
            ctx("other")
        );
    }
}

#[tokio::test]
async fn a_provider_that_hangs_is_a_timeout_and_a_dead_one_a_transport_error() {
    for provider in ALL {
        let (_, fake) = FakeProvider::start(provider).await;
        fake.set_call("c-hang", Behaviour::Hang);
        let api = fake.client_with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let hung = api.fetch_call("c-hang").await;
        assert!(matches!(hung, Err(ApiError::Timeout)), "{provider}: {hung:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{provider}: {:?}", started.elapsed());
        assert_eq!(fake.requests_for("c-hang").len(), 1);

        // Nobody listens on the port any more.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let refused = client_for(provider, &dead, Duration::from_secs(2)).fetch_call("c-1").await;
        assert!(matches!(refused, Err(ApiError::Transport(_))), "{provider}: {refused:?}");
    }
}

#[tokio::test]
async fn call_ids_are_escaped_and_impossible_ones_never_sent() {
    for provider in ALL {
        let (_, fake) = FakeProvider::start(provider).await;
        let fixture = match provider {
            Provider::Telnyx => "alive",
            Provider::Vonage => "answered",
            Provider::Plivo => "cdr-completed",
            _ => "completed",
        };
        let odd = "odd id:1?x=#y";
        fake.set_call(odd, Behaviour::Fixture(fixture));
        let api = fake.client();
        let snapshot = api.fetch_call(odd).await.unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert_eq!(snapshot.provider_call_id, odd);
        assert_eq!(fake.requests_for(odd).len(), 1, "{provider}");
        fake.clear_requests();
        for impossible in ["", ".", ".."] {
            assert!(matches!(api.fetch_call(impossible).await, Err(ApiError::NotFound)), "{provider} {impossible:?}");
        }
        assert!(fake.requests().is_empty(), "{provider}: {:?}", fake.requests());
    }
}

#[test]
fn clients_refuse_missing_settings() {
    let nc = |r: Result<(), ApiError>| matches!(r, Err(ApiError::NotConfigured(_)));
    let base = "http://127.0.0.1:9";
    assert!(nc(TwilioApi::new(TwilioApiConfig { account_sid: " ".into(), ..twilio_config(base) }).map(drop)));
    assert!(nc(TwilioApi::new(twilio_config(base).with_api_key("", Secret::new("s"))).map(drop)));
    assert!(nc(TwilioApi::new(TwilioApiConfig { base_url: "not a url".into(), ..twilio_config(base) }).map(drop)));
    assert!(nc(TwilioApi::new(TwilioApiConfig { timeout: Duration::ZERO, ..twilio_config(base) }).map(drop)));
    assert!(nc(TelnyxApi::new(TelnyxApiConfig { api_key: Secret::new(""), ..telnyx_config(base) }).map(drop)));
    assert!(nc(VonageApi::new(VonageApiConfig { application_id: "".into(), ..vonage_config(base) }).map(drop)));
    assert!(nc(VonageApi::new(VonageApiConfig {
        private_key: Secret::new("-----BEGIN PUBLIC KEY-----"),
        ..vonage_config(base)
    })
    .map(drop)));
    assert!(nc(PlivoApi::new(PlivoApiConfig { auth_id: "".into(), ..plivo_config(base) }).map(drop)));
    assert!(nc(PlivoApi::new(PlivoApiConfig { auth_token: Secret::new(""), ..plivo_config(base) }).map(drop)));
    // And the same settings, complete, are accepted.
    assert!(TwilioApi::new(twilio_config(base)).is_ok());
    assert!(TelnyxApi::new(telnyx_config(base)).is_ok());
    assert!(VonageApi::new(vonage_config(base)).is_ok());
    assert!(PlivoApi::new(plivo_config(base)).is_ok());
}
