//! Arbitrary and hostile input never panics and never yields a server error.
//!
//! * Random bodies, headers and query strings through every provider's verifier and
//!   parser, and raw garbage through the real router: never verified, only 4xx.
//! * Structurally valid callbacks of every provider — the field names and shapes of
//!   `tests/fixtures` (SignalWire's fixtures stand in for Twilio, whose format it
//!   speaks) — whose values are mutated: wrong JSON types, long, empty and padded
//!   strings, unicode, control characters and NUL, odd and invalid percent- and JSON
//!   encodings, duplicated, missing, renamed and unknown keys, unknown statuses, huge
//!   and negative numbers, deep nesting, odd correlation query strings. Each one is
//!   signed exactly as its provider signs, so it passes verification and reaches the
//!   parser and the store, and goes through the real router on SQLite (and
//!   PostgreSQL where a server answers, see `tests/common`).
//!
//! Properties checked for every request of the structured cases:
//! * no panic, no 5xx, never a signature failure (403) for a correctly signed request,
//!   and only the codes the webhook documents for these inputs (200, 202, 400, 409,
//!   413, 415);
//! * a 4xx carries exactly `{"error": {"code", "message"}}` and stores nothing;
//! * a 2xx stores exactly one new row (none when it says `duplicate`), holding the
//!   callback's fields as sent; sending the same request again is a `duplicate` and
//!   stores nothing;
//! * a model of each provider's format predicts the outcome where it can: a callback
//!   whose required fields survived the mutations intact is accepted (200 on a
//!   registered call, 202 when deferred), one with a required field missing, empty or
//!   of the wrong type, a body that does not decode, an unsupported content type, an
//!   oversized body, a value the stores cannot both hold (U+0000, identifiers past
//!   `providers::MAX_*`) or a contradicting query string is a 4xx;
//! * per provider, a meaningful share of cases is accepted (and some rejected), so the
//!   generator exercises the parser and the store, not only the error path.

#[macro_use]
mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};

use callhook::domain::Provider;
use callhook::providers::simulate::Signed;
use callhook::providers::{InboundRequest, WebhookError, MAX_DEDUPE_KEY_BYTES};
use callhook::store::{NewAttempt, Store, StoredEvent};
use common::*;

fn content_types() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("application/x-www-form-urlencoded"),
        Just("application/json"),
        Just("text/plain"),
        Just("application/json; charset=utf-8"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn verifiers_and_parsers_reject_garbage_without_panicking(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        query in "[a-z_=&%0-9A-F+]{0,64}",
        signature in "[A-Za-z0-9+/=,. ]{0,96}",
        content_type in content_types(),
        provider in proptest::sample::select(Provider::ALL.to_vec()),
        insecure in any::<bool>(),
    ) {
        let mut providers = providers();
        providers.insecure_skip_verification = insecure;
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", content_type.parse().unwrap());
        for h in ["x-twilio-signature", "x-signalwire-signature", "telnyx-signature-ed25519", "x-plivo-signature-v3", "x-plivo-signature-v3-nonce"] {
            headers.insert(h, signature.parse().unwrap());
        }
        headers.insert("telnyx-timestamp", chrono::Utc::now().timestamp().to_string().parse().unwrap());
        headers.insert("authorization", format!("Bearer {signature}").parse().unwrap());
        let request = InboundRequest { url: format!("http://{HOST}/webhooks/telephony/{provider}/events?{query}"), headers, body: body.into() };
        match providers.handle(provider, request, chrono::Utc::now()) {
            Ok(event) => prop_assert!(insecure, "garbage verified without the insecure switch: {event:?}"),
            Err(WebhookError::UnsupportedProvider(_)) => prop_assert!(false, "every provider is supported"),
            Err(_) => {}
        }
    }
}

#[tokio::test]
async fn raw_garbage_through_the_router_is_never_a_server_error() {
    let db = sqlite().await;
    let app = app(db.store.clone());
    let bodies: [&[u8]; 5] = [b"", b"\xff\xfe\x00", b"CallSid=%zz&CallStatus=ringing", b"{\"data\":[]}", b"&&&==&="];
    for provider in ["twilio", "telnyx", "vonage", "plivo", "signalwire"] {
        for body in bodies {
            for ct in ["application/x-www-form-urlencoded", "application/json"] {
                let req = Request::post(format!("/webhooks/telephony/{provider}/events?call_id=%FF"))
                    .header("host", HOST)
                    .header("content-type", ct)
                    .body(Body::from(body.to_vec()))
                    .unwrap();
                let (code, res) = send(&app, req).await;
                assert!(code.is_client_error(), "{provider} {ct} {body:?}: {code} {res}");
            }
        }
    }
    assert!(db.store.events(10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------
// Structured callbacks: what each provider sends, from the fixtures.
// ---------------------------------------------------------------------------------

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
/// `AppState::max_body_bytes` of the test router.
const MAX_BODY: usize = 64 * 1024;

/// One provider's callback format.
#[derive(Debug)]
struct Spec {
    provider: Provider,
    json: bool,
    fixtures: &'static [&'static str],
    /// Form field names, or dotted JSON paths: those of the fixtures and those the
    /// parser reads.
    fields: &'static [&'static str],
    /// Where the provider call id is.
    id: &'static str,
    /// Fields without which a callback is refused (a non-empty string each).
    required: &'static [&'static str],
    /// Optional fields that become part of the provider status (so of the dedupe key).
    bounded: &'static [&'static str],
    /// A required field another may stand in for: Twilio's asynchronous
    /// answering-machine verdict has `AnsweredBy` and no `CallStatus`.
    instead: &'static [(&'static str, &'static str)],
    /// Fields made unique per case (`<fixture value>-<suffix>`), so cases sharing a
    /// store never collide.
    unique: &'static [&'static str],
    /// The provider's own vocabulary per field, for realistic values.
    words: &'static [(&'static str, &'static [&'static str])],
}

impl Spec {
    fn words(&self, field: &str) -> &'static [&'static str] {
        if let Some((_, w)) = self.words.iter().find(|(f, _)| *f == field) {
            return w;
        }
        let leaf = field.rsplit('.').next().unwrap_or(field).to_ascii_lowercase();
        if leaf.contains("time") || leaf == "timestamp" || leaf == "occurred_at" || leaf == "sessionstart" {
            return if self.json {
                RFC3339
            } else if self.provider == Provider::Plivo {
                PLIVO_TIMES
            } else {
                RFC2822
            };
        }
        if ["duration", "sequencenumber", "calldurat", "code", "cost", "rate", "price", "attempt", "billduration"]
            .iter()
            .any(|k| leaf.contains(k))
        {
            return NUMBERS;
        }
        GENERIC
    }
}

const TWILIO_WORDS: &[(&str, &[&str])] = &[
    (
        "CallStatus",
        &["queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"],
    ),
    (
        "AnsweredBy",
        &["human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"],
    ),
    ("Direction", &["outbound-api", "outbound-dial", "inbound"]),
    ("CallbackSource", &["call-progress-events"]),
    ("From", &["+15005550006", "client:alice", "sip:alice@example.com", "anonymous"]),
    ("To", &["+14155550100", "+442071838750"]),
];

const TWILIO_FIELDS: &[&str] = &[
    "AccountSid",
    "ApiVersion",
    "CallSid",
    "CallStatus",
    "Direction",
    "From",
    "To",
    "Timestamp",
    "CallDuration",
    "AnsweredBy",
    "SequenceNumber",
    "ErrorCode",
    "ErrorMessage",
    "SipResponseCode",
    "CallbackSource",
    "ParentCallSid",
];

static TWILIO: Spec = Spec {
    provider: Provider::Twilio,
    json: false,
    fixtures: &["signalwire_ringing.form", "signalwire_answered.form", "signalwire_completed.form"],
    fields: TWILIO_FIELDS,
    id: "CallSid",
    required: &["CallSid", "CallStatus"],
    bounded: &["AnsweredBy"],
    instead: &[("CallStatus", "AnsweredBy")],
    unique: &["CallSid"],
    words: TWILIO_WORDS,
};

static SIGNALWIRE: Spec = Spec {
    provider: Provider::SignalWire,
    json: false,
    fixtures: &["signalwire_ringing.form", "signalwire_answered.form", "signalwire_completed.form"],
    fields: TWILIO_FIELDS,
    id: "CallSid",
    required: &["CallSid", "CallStatus"],
    bounded: &["AnsweredBy"],
    instead: &[("CallStatus", "AnsweredBy")],
    unique: &["CallSid"],
    words: TWILIO_WORDS,
};

static PLIVO: Spec = Spec {
    provider: Provider::Plivo,
    json: false,
    fixtures: &["plivo_ringing.form", "plivo_answered.form", "plivo_hangup.form"],
    fields: &[
        "ALegRequestUUID",
        "AnswerTime",
        "BillDuration",
        "BillRate",
        "CallStatus",
        "CallUUID",
        "Direction",
        "Duration",
        "EndTime",
        "Event",
        "From",
        "HangupCause",
        "HangupCauseCode",
        "HangupSource",
        "Machine",
        "RequestUUID",
        "SessionStart",
        "StartTime",
        "To",
        "TotalCost",
    ],
    id: "CallUUID",
    required: &["CallUUID", "CallStatus"],
    bounded: &[],
    instead: &[],
    unique: &["CallUUID"],
    words: &[
        (
            "CallStatus",
            &[
                "queued",
                "ringing",
                "in-progress",
                "completed",
                "busy",
                "no-answer",
                "timeout",
                "failed",
                "cancel",
                "canceled",
            ],
        ),
        ("Machine", &["true", "false", "True", "1"]),
        ("Event", &["Ring", "StartApp", "Hangup", "MachineDetection"]),
        ("HangupCause", &["NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER", "CALL_REJECTED", "UNALLOCATED_NUMBER"]),
        ("HangupSource", &["Callee", "Caller", "Plivo", "Error"]),
        ("Direction", &["outbound", "inbound"]),
    ],
};

static VONAGE: Spec = Spec {
    provider: Provider::Vonage,
    json: true,
    fixtures: &["vonage_started.json", "vonage_answered.json", "vonage_completed.json"],
    fields: &[
        "uuid",
        "status",
        "timestamp",
        "duration",
        "conversation_uuid",
        "from",
        "to",
        "direction",
        "start_time",
        "end_time",
        "rate",
        "price",
        "network",
        "headers",
        "detail",
        "reason",
    ],
    id: "uuid",
    required: &["uuid", "status"],
    bounded: &[],
    instead: &[],
    unique: &["uuid"],
    words: &[
        (
            "status",
            &[
                "started",
                "ringing",
                "answered",
                "human",
                "machine",
                "completed",
                "busy",
                "rejected",
                "unanswered",
                "timeout",
                "failed",
                "cancelled",
            ],
        ),
        ("direction", &["outbound", "inbound"]),
        ("detail", &["ok", "invalid_number", "restricted", "declined", "cannot_route", "no_answer", "unavailable"]),
    ],
};

static TELNYX: Spec = Spec {
    provider: Provider::Telnyx,
    json: true,
    fixtures: &["telnyx_call_initiated.json", "telnyx_call_answered.json", "telnyx_call_hangup.json"],
    fields: &[
        "data",
        "data.id",
        "data.event_type",
        "data.occurred_at",
        "data.record_type",
        "data.payload",
        "data.payload.call_control_id",
        "data.payload.call_leg_id",
        "data.payload.call_session_id",
        "data.payload.client_state",
        "data.payload.connection_id",
        "data.payload.from",
        "data.payload.to",
        "data.payload.state",
        "data.payload.start_time",
        "data.payload.end_time",
        "data.payload.hangup_cause",
        "data.payload.hangup_source",
        "data.payload.sip_hangup_cause",
        "data.payload.result",
        "meta",
        "meta.attempt",
    ],
    id: "data.payload.call_control_id",
    required: &["data.id", "data.event_type", "data.payload.call_control_id"],
    bounded: &["data.payload.hangup_cause"],
    instead: &[],
    unique: &["data.id", "data.payload.call_control_id"],
    words: &[
        (
            "data.event_type",
            &[
                "call.initiated",
                "call.answered",
                "call.hangup",
                "call.machine.detection.ended",
                "call.machine.premium.detection.ended",
                "call.bridged",
                "call.speak.ended",
            ],
        ),
        (
            "data.payload.hangup_cause",
            &[
                "normal_clearing",
                "time_limit",
                "user_busy",
                "call_rejected",
                "no_answer",
                "timeout",
                "no_user_response",
                "unallocated_number",
                "originator_cancel",
            ],
        ),
        ("data.payload.result", &["human", "human_residence", "machine", "fax_detected", "not_sure"]),
        ("data.payload.state", &["bridging", "answered", "hangup", "parked"]),
        ("data.record_type", &["event"]),
    ],
};

fn spec(provider: Provider) -> &'static Spec {
    match provider {
        Provider::Twilio => &TWILIO,
        Provider::SignalWire => &SIGNALWIRE,
        Provider::Plivo => &PLIVO,
        Provider::Vonage => &VONAGE,
        Provider::Telnyx => &TELNYX,
    }
}

const GENERIC: &[&str] =
    &["x", "0", "true", "null", "completed", "+14155550100", "b3877c40-da60-4998-90ad-b792e98472af"];
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "42",
    " 42 ",
    "+7",
    "007",
    "2147483647",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "99999999999999999999999999",
    "1e3",
    "1.5",
    "0x10",
    "NaN",
    "١٢",
];
const RFC2822: &[&str] = &[
    "Tue, 24 Nov 2026 10:00:07 +0000",
    "Fri, 31 Dec 9999 23:59:59 +0000",
    "Mon, 01 Jan 0001 00:00:00 -2359",
    "24 Nov 2026 10:00:07 GMT",
    "Tue, 24 Nov 2026 10:00:60 +0000",
    "Tue, 31 Feb 2026 10:00:00 +0000",
];
const RFC3339: &[&str] = &[
    "2026-11-24T10:00:06.311Z",
    "9999-12-31T23:59:59.999999999Z",
    "0000-01-01T00:00:00Z",
    "2026-11-24T10:00:00+23:59",
    "2026-11-24T10:00:00.1234567891234Z",
    "2026-02-30T00:00:00Z",
    "2026-11-24T23:59:60Z",
];
const PLIVO_TIMES: &[&str] = &[
    "2026-11-24 10:00:06",
    "9999-12-31 23:59:59",
    "0000-01-01 00:00:00",
    "2026-11-24 24:00:00",
    "2026-11-24T10:00:06",
];
/// Unknown statuses and near misses.
const ODD: &[&str] = &[
    "transferred",
    "COMPLETED",
    "in progress",
    "call.unknown",
    "completed\u{0}",
    "完了",
    "-1",
    "null",
    "undefined",
    "[object Object]",
    "%s%n",
    "'; DROP TABLE telephony_events; --",
];
const UNICODE: &[&str] = &[
    "é",
    "\u{1F600}",
    "\u{202E}evil",
    "\u{FEFF}",
    "\u{FFFF}",
    "\u{10FFFF}",
    "a\u{0301}",
    "\u{2028}",
    "𝕏",
    "\u{FFFD}",
    "ｃｏｍｐｌｅｔｅｄ",
];
const CONTROLS: &[char] = &['\0', '\u{1}', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}'];
const PADS: &[&str] = &[" ", "\t", "\n", "\u{a0}", "  \r\n"];
/// Pre-encoded form values: literal oddities that decode, and invalid UTF-8.
const RAW_FORM: &[&str] = &[
    "%FF",
    "%C3",
    "%C3%A9",
    "%ED%A0%80",
    "%C0%AF",
    "%F4%90%80%80",
    "%zz",
    "%",
    "%4",
    "%%",
    "+",
    "%2B",
    "%00",
    "%0A",
    "abc",
    "%E2%82%AC",
    "%F0%9F%98%80",
    "%e2%82%ac",
    "%c3(",
];
/// Stray items between a form's fields.
const FORM_JUNK: &[&str] = &["", "=", "flag", "=value", "&", "==", "%3D=%26"];
/// Raw JSON tokens, some valid, some not.
const RAW_JSON: &[&[u8]] = &[
    b"\"\\ud800\"",
    b"\"\\udc00\\ud800\"",
    b"\"\\ud83d\\ude00\"",
    b"\"\\x41\"",
    b"\"\xff\xfe\"",
    b"\"\xc3\xa9\"",
    b"\"\xed\xa0\x80\"",
    b"\"\\u0000\"",
    b"1e999",
    b"-0",
    b"01",
    b"NaN",
    b"Infinity",
    b"1.",
    b"tru",
    b"[1,]",
    b"{\"a\":1,}",
    b"{}",
    b"[]",
];
const JSON_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "23",
    "-2147483649",
    "2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e308",
    "-1e308",
    "1.5",
    "1E2",
    "-0.0",
    "0.000001",
];

// ---------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------

/// `len` characters of seeded noise: incompressible, so it defeats compression in
/// indexes, and cheap to generate and shrink (by length).
fn noise(seed: u64, len: usize, alphabet: &[char]) -> String {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize]
        })
        .collect()
}

const ALNUM: &[char] = &[
    'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W',
    'X', 'Y', 'Z', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't',
    'u', 'v', 'w', 'x', 'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '-', '_', '.', '~',
];
const WIDE: &[char] = &['a', 'é', '€', '\u{1F600}', ' ', '日', '\u{202E}', '"', '\\', '&', '='];

fn long() -> BoxedStrategy<String> {
    prop_oneof![
        6 => (any::<u64>(), 100..4000usize).prop_map(|(s, n)| noise(s, n, ALNUM)),
        2 => (any::<u64>(), 100..1500usize).prop_map(|(s, n)| noise(s, n, WIDE)),
        // Past the body limit on its own: 413.
        1 => (any::<u64>(), 66_000..68_000usize).prop_map(|(s, n)| noise(s, n, ALNUM)),
    ]
    .boxed()
}

fn control() -> BoxedStrategy<String> {
    vec(prop_oneof![select(CONTROLS), select(&['a', 'b', '1', ' '][..])], 1..12)
        .prop_map(|chars| chars.into_iter().collect())
        .boxed()
}

/// A text value for a field whose own vocabulary is `words`.
fn text(words: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(words).prop_map(str::to_owned),
        1 => Just(String::new()),
        2 => select(ODD).prop_map(str::to_owned),
        2 => select(NUMBERS).prop_map(str::to_owned),
        2 => "\\PC{1,24}",
        1 => select(UNICODE).prop_map(str::to_owned),
        2 => control(),
        2 => long(),
        1 => (select(PADS), select(words)).prop_map(|(p, w)| format!("{p}{w}{p}")),
    ]
    .boxed()
}

/// How a form value is percent-encoded on the wire.
#[derive(Debug, Clone, Copy)]
enum Enc {
    /// RFC 3986 unreserved characters as they are, everything else `%XX`.
    Standard,
    /// As `Standard`, with `+` for a space.
    Plus,
    /// Every byte `%XX`.
    AllPercent,
    /// As `Standard`, lower-case hex digits.
    LowerHex,
    /// Non-ASCII characters as raw UTF-8 bytes.
    RawUtf8,
}

fn encode(s: &str, enc: Enc) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        let unreserved = ch.is_ascii_alphanumeric() || "-._~".contains(ch);
        match enc {
            Enc::AllPercent => {}
            Enc::Plus if ch == ' ' => {
                out.push('+');
                continue;
            }
            Enc::RawUtf8 if !ch.is_ascii() => {
                out.push(ch);
                continue;
            }
            _ if unreserved => {
                out.push(ch);
                continue;
            }
            _ => {}
        }
        let mut buf = [0u8; 4];
        for b in ch.encode_utf8(&mut buf).bytes() {
            match enc {
                Enc::LowerHex => out.push_str(&format!("%{b:02x}")),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    out
}

/// A form value as it goes on the wire.
#[derive(Debug, Clone)]
enum FormValue {
    Text(String, Enc),
    /// Pre-encoded fragments, decodable or not.
    Raw(Vec<&'static str>),
}

impl FormValue {
    fn wire(&self) -> String {
        match self {
            FormValue::Text(s, enc) => encode(s, *enc),
            FormValue::Raw(parts) => parts.concat(),
        }
    }
}

fn form_value(words: &'static [&'static str]) -> BoxedStrategy<FormValue> {
    let enc = prop_oneof![
        6 => Just(Enc::Standard),
        1 => Just(Enc::Plus),
        1 => Just(Enc::AllPercent),
        1 => Just(Enc::LowerHex),
        1 => Just(Enc::RawUtf8),
    ];
    prop_oneof![
        10 => (text(words), enc).prop_map(|(s, e)| FormValue::Text(s, e)),
        1 => vec(select(RAW_FORM), 1..4).prop_map(FormValue::Raw),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum FormOp {
    /// Replace the field's first value (or add the field).
    Set(&'static str, FormValue),
    /// Drop every occurrence.
    Remove(&'static str),
    /// Send the field a second time, before its first or after its last occurrence.
    Duplicate { field: &'static str, value: FormValue, before: bool },
    /// An unknown field.
    Extra(FormValue, FormValue),
    /// The field's name in lower (or upper) case.
    Rename { field: &'static str, upper: bool },
    /// A stray item (`&&`, `=`, a name without `=`, …).
    Junk(&'static str),
}

/// A field to mutate: any of the format's, the required ones more often.
fn field(spec: &'static Spec) -> BoxedStrategy<&'static str> {
    prop_oneof![6 => select(spec.fields), 1 => select(spec.required)].boxed()
}

fn form_op(spec: &'static Spec) -> BoxedStrategy<FormOp> {
    let field = field(spec);
    prop_oneof![
        6 => field.clone().prop_flat_map(move |f| form_value(spec.words(f)).prop_map(move |v| FormOp::Set(f, v))),
        1 => field.clone().prop_map(FormOp::Remove),
        2 => (field.clone(), any::<bool>()).prop_flat_map(move |(f, before)| {
            form_value(spec.words(f)).prop_map(move |value| FormOp::Duplicate { field: f, value, before })
        }),
        1 => (form_value(GENERIC), form_value(GENERIC)).prop_map(|(n, v)| FormOp::Extra(n, v)),
        1 => (field, any::<bool>()).prop_map(|(field, upper)| FormOp::Rename { field, upper }),
        1 => select(FORM_JUNK).prop_map(FormOp::Junk),
    ]
    .boxed()
}

/// A JSON document that may repeat keys and carry raw (possibly invalid) tokens.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String, StrEnc),
    Raw(&'static [u8]),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
    /// `depth` nested arrays.
    Deep(usize),
}

/// How a JSON string is written.
#[derive(Debug, Clone, Copy)]
enum StrEnc {
    /// As serde_json writes it.
    Plain,
    /// Everything but printable ASCII as `\uXXXX` (surrogate pairs beyond the BMP),
    /// `/` as `\/`.
    Escaped,
    /// Only `"` and `\` escaped: control characters go raw (invalid JSON).
    RawControl,
}

impl J {
    fn from_value(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Num(n.to_string()),
            Value::String(s) => J::Str(s.clone(), StrEnc::Plain),
            Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            Value::Object(o) => J::Obj(o.iter().map(|(k, v)| (k.clone(), J::from_value(v))).collect()),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            J::Null => out.extend_from_slice(b"null"),
            J::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            J::Num(n) => out.extend_from_slice(n.as_bytes()),
            J::Str(s, enc) => write_str(s, *enc, out),
            J::Raw(raw) => out.extend_from_slice(raw),
            J::Arr(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            J::Obj(entries) => {
                out.push(b'{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(k, StrEnc::Plain, out);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
            J::Deep(depth) => {
                out.extend(std::iter::repeat_n(b'[', *depth));
                out.extend(std::iter::repeat_n(b']', *depth));
            }
        }
    }
}

fn write_str(s: &str, enc: StrEnc, out: &mut Vec<u8>) {
    match enc {
        StrEnc::Plain => out.extend_from_slice(serde_json::to_string(s).unwrap().as_bytes()),
        StrEnc::Escaped => {
            out.push(b'"');
            for ch in s.chars() {
                match ch {
                    '/' => out.extend_from_slice(b"\\/"),
                    ' '..='~' if ch != '"' && ch != '\\' => out.push(ch as u8),
                    _ => {
                        let mut buf = [0u16; 2];
                        for unit in ch.encode_utf16(&mut buf) {
                            out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                        }
                    }
                }
            }
            out.push(b'"');
        }
        StrEnc::RawControl => {
            out.push(b'"');
            for ch in s.chars() {
                if ch == '"' || ch == '\\' {
                    out.push(b'\\');
                }
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            out.push(b'"');
        }
    }
}

fn json_leaf(words: &'static [&'static str]) -> BoxedStrategy<J> {
    let str_enc = prop_oneof![6 => Just(StrEnc::Plain), 2 => Just(StrEnc::Escaped), 1 => Just(StrEnc::RawControl)];
    prop_oneof![
        8 => (text(words), str_enc).prop_map(|(s, e)| J::Str(s, e)),
        2 => select(JSON_NUMBERS).prop_map(|n| J::Num(n.to_owned())),
        1 => any::<i64>().prop_map(|n| J::Num(n.to_string())),
        1 => any::<f64>().prop_map(|f| J::Num(if f.is_finite() { format!("{f:e}") } else { "0".into() })),
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        1 => select(RAW_JSON).prop_map(J::Raw),
        1 => (1..200usize).prop_map(J::Deep),
    ]
    .boxed()
}

fn json_key() -> BoxedStrategy<String> {
    prop_oneof![3 => "[a-z_]{1,12}", 1 => "\\PC{0,8}", 1 => control()].boxed()
}

fn json_value(words: &'static [&'static str]) -> BoxedStrategy<J> {
    prop_oneof![
        8 => json_leaf(words),
        1 => vec(json_leaf(GENERIC), 0..4).prop_map(J::Arr),
        1 => vec((json_key(), json_leaf(GENERIC)), 0..4).prop_map(J::Obj),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum JsonOp {
    /// Replace the value at a path (its last occurrence, which is the one a JSON
    /// parser keeps), or add it.
    Set(&'static str, J),
    /// Drop every occurrence of the path's key.
    Remove(&'static str),
    /// Repeat the path's key, before its first or after its last occurrence.
    Duplicate { path: &'static str, value: J, before: bool },
    /// An unknown top-level key.
    Extra(String, J),
}

/// Whole-document changes.
#[derive(Debug, Clone, Copy)]
enum Wrap {
    None,
    /// A UTF-8 byte order mark before the document.
    Bom,
    /// Whitespace around it.
    Whitespace,
    /// The object inside an array.
    Array,
    /// Something after it.
    Trailing,
}

fn json_op(spec: &'static Spec) -> BoxedStrategy<JsonOp> {
    let path = field(spec);
    prop_oneof![
        6 => path.clone().prop_flat_map(move |p| json_value(spec.words(p)).prop_map(move |v| JsonOp::Set(p, v))),
        1 => path.clone().prop_map(JsonOp::Remove),
        2 => (path, any::<bool>()).prop_flat_map(move |(p, before)| {
            json_value(spec.words(p)).prop_map(move |value| JsonOp::Duplicate { path: p, value, before })
        }),
        1 => (json_key(), json_value(GENERIC)).prop_map(|(k, v)| JsonOp::Extra(k, v)),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Mutation {
    Form(Vec<FormOp>),
    Json(Vec<JsonOp>, Wrap),
}

fn mutation(spec: &'static Spec) -> BoxedStrategy<Mutation> {
    if spec.json {
        let wrap = prop_oneof![
            24 => Just(Wrap::None),
            1 => Just(Wrap::Bom),
            1 => Just(Wrap::Whitespace),
            1 => Just(Wrap::Array),
            1 => Just(Wrap::Trailing),
        ];
        (vec(json_op(spec), 0..=3), wrap).prop_map(|(ops, wrap)| Mutation::Json(ops, wrap)).boxed()
    } else {
        vec(form_op(spec), 0..=3).prop_map(Mutation::Form).boxed()
    }
}

/// The correlation in the callback URL.
#[derive(Debug, Clone)]
enum Query {
    /// `call_id` of the registered attempt.
    Registered,
    /// No query: correlated by the provider call id.
    ProviderIdOnly,
    /// A `call_id` nobody registered: deferred.
    Unregistered,
    /// A percent-encoded non-ASCII `call_id` nobody registered.
    UnicodeCallId,
    /// A `call_id` longer than registration allows: 400.
    LongCallId(u64, usize),
    /// The registered `call_id` with another campaign: 409.
    CampaignMismatch,
    /// A `contact_id` that is not a UUID: 400.
    ContactIdNotUuid,
    /// A `call_id` that is not UTF-8: 400.
    InvalidUtf8,
}

impl Query {
    fn render(&self, call_id: &str, suffix: &str) -> Option<String> {
        Some(match self {
            Query::Registered => format!("call_id={call_id}"),
            Query::ProviderIdOnly => return None,
            Query::Unregistered => format!("call_id=ext-{suffix}"),
            Query::UnicodeCallId => format!("call_id=%C3%A9t%C3%A9%20%E2%82%AC-{suffix}"),
            Query::LongCallId(seed, len) => format!("call_id={}-{suffix}", noise(*seed, *len, ALNUM)),
            Query::CampaignMismatch => format!("call_id={call_id}&campaign_id=00000000-0000-4000-8000-000000000000"),
            Query::ContactIdNotUuid => format!("call_id={call_id}&contact_id=not-a-uuid"),
            Query::InvalidUtf8 => format!("call_id=%FF%FE-{suffix}"),
        })
    }

    /// Refused whatever the body.
    fn rejects(&self) -> bool {
        matches!(self, Query::CampaignMismatch | Query::ContactIdNotUuid | Query::InvalidUtf8 | Query::LongCallId(..))
    }

    /// Accepted callbacks are deferred (202) rather than applied.
    fn defers(&self) -> bool {
        matches!(self, Query::Unregistered | Query::UnicodeCallId)
    }
}

fn query() -> BoxedStrategy<Query> {
    prop_oneof![
        16 => Just(Query::Registered),
        6 => Just(Query::ProviderIdOnly),
        3 => Just(Query::Unregistered),
        1 => Just(Query::UnicodeCallId),
        1 => (any::<u64>(), 129..4000usize).prop_map(|(s, n)| Query::LongCallId(s, n)),
        1 => Just(Query::CampaignMismatch),
        1 => Just(Query::ContactIdNotUuid),
        1 => Just(Query::InvalidUtf8),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct Callback {
    fixture: Index,
    content_type: &'static str,
    mutation: Mutation,
}

#[derive(Debug, Clone)]
struct Case {
    /// Register the attempt with the provider call id (else the first event sets it).
    register_provider_call_id: bool,
    query: Query,
    /// Twilio only: `POST /webhooks/telephony/events` (the default provider).
    default_route: bool,
    callbacks: Vec<Callback>,
}

fn case(spec: &'static Spec) -> BoxedStrategy<Case> {
    let native = if spec.json { JSON } else { FORM };
    let content_type = prop_oneof![
        10 => Just(native),
        2 => Just(if spec.json { "application/json; charset=utf-8" } else { "application/x-www-form-urlencoded; charset=UTF-8" }),
        1 => Just(if spec.json { "Application/JSON" } else { "APPLICATION/X-WWW-FORM-URLENCODED" }),
        1 => Just("text/plain"),
    ];
    let callback = (any::<Index>(), content_type, mutation(spec))
        .prop_map(|(fixture, content_type, mutation)| Callback { fixture, content_type, mutation });
    (any::<bool>(), query(), any::<bool>(), vec(callback, 1..=3))
        .prop_map(|(register_provider_call_id, query, default_route, callbacks)| Case {
            register_provider_call_id,
            query,
            default_route,
            callbacks,
        })
        .boxed()
}

// ---------------------------------------------------------------------------------
// Rendering, and a model of each format that predicts the outcome.
// ---------------------------------------------------------------------------------

/// A fixture, decoded.
enum Base {
    Form(Vec<(String, String)>),
    Json(Value),
}

fn fixtures(spec: &Spec) -> Vec<Base> {
    spec.fixtures
        .iter()
        .map(|name| {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let text = text.trim();
            if spec.json {
                Base::Json(serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}")))
            } else {
                Base::Form(model_form_decode(text.as_bytes()).unwrap_or_else(|| panic!("{path}: not a form")))
            }
        })
        .collect()
}

/// Percent-decoding as `application/x-www-form-urlencoded` defines it (`+` is a
/// space, `%XX` a byte, a `%` not followed by two hex digits itself), then UTF-8;
/// `None` when the bytes are not UTF-8. Written independently of `providers::form`.
fn model_unescape(raw: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn model_form_decode(body: &[u8]) -> Option<Vec<(String, String)>> {
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            Some((model_unescape(name)?, model_unescape(value)?))
        })
        .collect()
}

/// What the form fields should be stored as: one string per name, an array for a
/// repeated name.
fn model_form_payload(fields: &[(String, String)]) -> Value {
    let mut grouped: Vec<(String, Vec<String>)> = vec![];
    for (k, v) in fields {
        match grouped.iter_mut().find(|(n, _)| n == k) {
            Some((_, values)) => values.push(v.clone()),
            None => grouped.push((k.clone(), vec![v.clone()])),
        }
    }
    let map: Map<String, Value> = grouped
        .into_iter()
        .map(|(k, mut values)| {
            let v = if values.len() == 1 { Value::String(values.remove(0)) } else { values.into() };
            (k, v)
        })
        .collect();
    Value::Object(map)
}

/// Matches the form items that are `field`.
fn is(field: &str) -> impl Fn(&(Option<String>, String)) -> bool + '_ {
    move |(n, _)| n.as_deref() == Some(field)
}

/// The form body: fixture fields (unique ids substituted), then the operations.
fn render_form(spec: &Spec, base: &[(String, String)], suffix: &str, ops: &[FormOp]) -> Vec<u8> {
    // (decoded name when it is a field, raw item)
    let mut items: Vec<(Option<String>, String)> = base
        .iter()
        .map(|(k, v)| {
            let v = if spec.unique.contains(&k.as_str()) { format!("{v}-{suffix}") } else { v.clone() };
            (Some(k.clone()), format!("{}={}", encode(k, Enc::Standard), encode(&v, Enc::Standard)))
        })
        .collect();
    let item = |name: &str, value: &FormValue| (Some(name.to_owned()), format!("{}={}", name, value.wire()));
    for op in ops {
        match op {
            FormOp::Set(field, value) => match items.iter().position(is(field)) {
                Some(i) => items[i] = item(field, value),
                None => items.push(item(field, value)),
            },
            FormOp::Remove(field) => items.retain(|i| !is(field)(i)),
            FormOp::Duplicate { field, value, before } => {
                let at = if *before {
                    items.iter().position(is(field)).unwrap_or(items.len())
                } else {
                    items.iter().rposition(is(field)).map_or(items.len(), |i| i + 1)
                };
                items.insert(at, item(field, value));
            }
            FormOp::Extra(name, value) => items.push((None, format!("{}={}", name.wire(), value.wire()))),
            FormOp::Rename { field, upper } => {
                if let Some(i) = items.iter().position(is(field)) {
                    let renamed = if *upper { field.to_ascii_uppercase() } else { field.to_ascii_lowercase() };
                    let value = items[i].1.split_once('=').map_or("", |(_, v)| v).to_owned();
                    items[i] = (Some(renamed.clone()), format!("{renamed}={value}"));
                }
            }
            FormOp::Junk(junk) => items.push((None, (*junk).to_owned())),
        }
    }
    items.into_iter().map(|(_, raw)| raw).collect::<Vec<_>>().join("&").into_bytes()
}

/// The object holding the last segment of `path`, following the last occurrence of
/// each key (the one a JSON parser keeps).
fn parent_mut<'a>(doc: &'a mut J, path: &[&str]) -> Option<&'a mut Vec<(String, J)>> {
    let mut current = doc;
    for segment in path {
        let J::Obj(entries) = current else { return None };
        current = &mut entries.iter_mut().rev().find(|(k, _)| k == segment)?.1;
    }
    match current {
        J::Obj(entries) => Some(entries),
        _ => None,
    }
}

fn set_path(doc: &mut J, path: &str, value: J) {
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parent) = segments.split_last().unwrap();
    if let Some(entries) = parent_mut(doc, parent) {
        match entries.iter_mut().rev().find(|(k, _)| k == last) {
            Some(entry) => entry.1 = value,
            None => entries.push(((*last).to_owned(), value)),
        }
    }
}

fn render_json(spec: &Spec, base: &Value, suffix: &str, ops: &[JsonOp], wrap: Wrap) -> Vec<u8> {
    let mut doc = J::from_value(base);
    for path in spec.unique {
        let original = path.split('.').try_fold(base, |v, k| v.get(k)).and_then(Value::as_str).unwrap();
        set_path(&mut doc, path, J::Str(format!("{original}-{suffix}"), StrEnc::Plain));
    }
    for op in ops {
        match op {
            JsonOp::Set(path, value) => set_path(&mut doc, path, value.clone()),
            JsonOp::Remove(path) | JsonOp::Duplicate { path, .. } => {
                let segments: Vec<&str> = path.split('.').collect();
                let (last, parent) = segments.split_last().unwrap();
                let Some(entries) = parent_mut(&mut doc, parent) else { continue };
                match op {
                    JsonOp::Duplicate { value, before, .. } => {
                        let at = if *before {
                            entries.iter().position(|(k, _)| k == last).unwrap_or(entries.len())
                        } else {
                            entries.iter().rposition(|(k, _)| k == last).map_or(entries.len(), |i| i + 1)
                        };
                        entries.insert(at, ((*last).to_owned(), value.clone()));
                    }
                    _ => entries.retain(|(k, _)| k != last),
                }
            }
            JsonOp::Extra(key, value) => {
                if let J::Obj(entries) = &mut doc {
                    entries.push((key.clone(), value.clone()));
                }
            }
        }
    }
    let mut out = vec![];
    match wrap {
        Wrap::None => doc.write(&mut out),
        Wrap::Bom => {
            out.extend_from_slice("\u{FEFF}".as_bytes());
            doc.write(&mut out);
        }
        Wrap::Whitespace => {
            out.extend_from_slice(b" \n\t");
            doc.write(&mut out);
            out.extend_from_slice(b"\r\n ");
        }
        Wrap::Array => {
            out.push(b'[');
            doc.write(&mut out);
            out.push(b']');
        }
        Wrap::Trailing => {
            doc.write(&mut out);
            out.extend_from_slice(b" x");
        }
    }
    out
}

/// What the model predicts for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Accept,
    /// 4xx.
    Reject,
    /// The model does not say (e.g. a changed call id may conflict with the attempt).
    Either,
}

/// The body's payload (what is stored) and its required and bounded fields (a
/// non-empty string or `None`) as the model reads them; `None` when the body does
/// not decode.
fn model_fields(spec: &Spec, body: &[u8]) -> Option<(Value, BTreeMap<&'static str, Option<String>>)> {
    if spec.json {
        let value: Value = serde_json::from_slice(body).ok().filter(Value::is_object)?;
        let fields = spec
            .required
            .iter()
            .chain(spec.bounded)
            .map(|path| {
                let v = path.split('.').try_fold(&value, |v, k| v.get(k)).and_then(Value::as_str);
                (*path, v.filter(|s| !s.is_empty()).map(str::to_owned))
            })
            .collect();
        Some((value, fields))
    } else {
        let pairs = model_form_decode(body)?;
        // A repeated field's first value counts.
        let first =
            |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
        let fields = spec.required.iter().chain(spec.bounded).map(|name| (*name, first(name))).collect();
        Some((model_form_payload(&pairs), fields))
    }
}

/// The provider account a Twilio-format callback names, as callhook reads it: the
/// first non-empty `AccountSid`, else a RELAY event's `project_id`, trimmed.
fn claimed_account(spec: &Spec, body: &[u8]) -> Option<String> {
    let named = if spec.json {
        let value: Value = serde_json::from_slice(body).ok()?;
        let text = |k: &str| value.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        text("AccountSid").filter(|v| !v.is_empty()).or_else(|| text("project_id").filter(|v| !v.is_empty()))
    } else {
        let pairs = model_form_decode(body)?;
        let first =
            |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
        first("AccountSid").or_else(|| first("project_id"))
    };
    named.map(|v| v.trim().to_owned())
}

/// A required field is missing, and no field that may stand in for it is there.
fn missing(spec: &Spec, fields: &BTreeMap<&'static str, Option<String>>, field: &str) -> bool {
    fields[field].is_none()
        && !spec.instead.iter().any(|(f, alt)| *f == field && fields.get(alt).is_some_and(Option::is_some))
}

// ---------------------------------------------------------------------------------
// Running the cases.
// ---------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    accepted: usize,
    rejected: usize,
    predicted_accept: usize,
    predicted_reject: usize,
    outcomes: BTreeMap<String, usize>,
}

impl Tally {
    fn share(&self, n: usize) -> f64 {
        n as f64 / self.requests.max(1) as f64
    }

    fn summary(&self, provider: Provider, backend: &str) -> String {
        format!(
            "{provider:<10} {backend:<8} {} requests: {:.0}% accepted, {:.0}% rejected (model: {} accept, {} reject) {:?}",
            self.requests,
            100.0 * self.share(self.accepted),
            100.0 * self.share(self.rejected),
            self.predicted_accept,
            self.predicted_reject,
            self.outcomes
        )
    }
}

async fn rows(store: &Arc<dyn Store>) -> Vec<StoredEvent> {
    store.events(i64::MAX).await.expect("list events")
}

/// U+0000 in any string or key.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// JSON equality, but floating-point numbers need only agree to 1e-15 relative:
/// serde_json (without its `float_roundtrip` feature) may read back a stored float
/// one ulp off what it wrote.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn is_error_body(body: &Value) -> bool {
    let Some(top) = body.as_object() else { return false };
    let Some(error) = top.get("error").and_then(Value::as_object) else { return false };
    top.len() == 1
        && error.len() == 2
        && error.get("code").is_some_and(Value::is_string)
        && error.get("message").is_some_and(Value::is_string)
}

fn short(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > 600 {
        format!("{}… ({} bytes)", text.chars().take(600).collect::<String>(), body.len())
    } else {
        format!("{text:?}")
    }
}

/// Signs like the provider; a Plivo URL whose query does not decode cannot be signed
/// (the server refuses it before it looks at the signature), so it gets a dummy one.
fn sign(spec: &Spec, url: &str, content_type: &'static str, body: Vec<u8>) -> Signed {
    if spec.provider == Provider::Plivo
        && model_form_decode(url.split_once('?').map_or("", |(_, q)| q).as_bytes()).is_none()
    {
        let headers = vec![
            (callhook::providers::plivo::SIGNATURE_HEADER, "c2lnbmF0dXJl".to_owned()),
            (callhook::providers::plivo::NONCE_HEADER, "nonce".to_owned()),
        ];
        return Signed { content_type, body, headers };
    }
    signer().sign(spec.provider, url, content_type, body, chrono::Utc::now().timestamp())
}

async fn run_case(
    spec: &'static Spec,
    bases: &[Base],
    store: &Arc<dyn Store>,
    app: &Router,
    case: &Case,
    tally: &RefCell<Tally>,
) -> Result<(), TestCaseError> {
    let provider = spec.provider;
    // Unique per run of a case (shrinking included), so that cases sharing a store
    // never see each other's ids.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let suffix = &format!("{:04}", RUNS.fetch_add(1, Ordering::Relaxed));
    let id = match &bases[0] {
        Base::Form(fields) => format!("{}-{suffix}", fields.iter().find(|(k, _)| k == spec.id).unwrap().1),
        Base::Json(v) => {
            let original = spec.id.split('.').try_fold(v, |v, k| v.get(k)).and_then(Value::as_str).unwrap();
            format!("{original}-{suffix}")
        }
    };
    let campaign = campaign(store, 3).await;
    let contact = contact(store, &campaign).await;
    let mut new = NewAttempt::new(contact.id, provider);
    if case.register_provider_call_id {
        new.provider_call_id = Some(id.clone());
    }
    let call_id = store.register_attempt(new).await.expect("register attempt").attempt.call_id;

    let route = if provider == Provider::Twilio && case.default_route {
        "/webhooks/telephony/events".to_owned()
    } else {
        format!("/webhooks/telephony/{provider}/events")
    };
    let path = match case.query.render(&call_id, suffix) {
        Some(q) => format!("{route}?{q}"),
        None => route,
    };
    let url = format!("http://{HOST}{path}");

    for (n, cb) in case.callbacks.iter().enumerate() {
        let base = &bases[cb.fixture.index(bases.len())];
        let body = match (&cb.mutation, base) {
            (Mutation::Form(ops), Base::Form(fields)) => render_form(spec, fields, suffix, ops),
            (Mutation::Json(ops, wrap), Base::Json(v)) => render_json(spec, v, suffix, ops, *wrap),
            _ => unreachable!("mutation and fixture of one format"),
        };

        // The model's prediction.
        let model = model_fields(spec, &body);
        let attempt = store.attempt(&call_id).await.expect("attempt");
        let bound = attempt.as_ref().and_then(|a| a.provider_call_id.clone());
        // The call belongs to the account of its first callback (`AccountSid`, a
        // SignalWire RELAY event's `project_id`): another account's is refused.
        let account = attempt.and_then(|a| a.account_sid);
        let expect = if body.len() > MAX_BODY || cb.content_type == "text/plain" || case.query.rejects() {
            Expect::Reject
        } else {
            let len = |fields: &BTreeMap<&str, Option<String>>, f: &str| fields[f].as_deref().map_or(0, str::len);
            match &model {
                None => Expect::Reject,
                Some((_, fields)) if spec.required.iter().any(|f| missing(spec, fields, f)) => Expect::Reject,
                // Neither store can hold some values alike; the webhook refuses them.
                Some((payload, _)) if has_nul(payload) => Expect::Reject,
                Some((_, fields)) if spec.required.iter().any(|f| len(fields, f) > MAX_DEDUPE_KEY_BYTES) => {
                    Expect::Reject
                }
                Some(_)
                    if account
                        .as_deref()
                        .is_some_and(|bound| claimed_account(spec, &body).is_some_and(|c| c != bound)) =>
                {
                    Expect::Reject
                }
                Some((_, fields))
                    if fields[spec.id].as_deref() == Some(id.as_str())
                        && bound.as_deref().is_none_or(|b| b == id)
                        && fields.keys().all(|f| len(fields, f) <= 128) =>
                {
                    Expect::Accept
                }
                Some(_) => Expect::Either,
            }
        };

        let signed = sign(spec, &url, cb.content_type, body.clone());
        let before = rows(store).await;
        let (code, res) = send(app, to_request(&path, signed.clone())).await;
        let after = rows(store).await;
        let known: HashSet<_> = before.iter().map(|r| r.id).collect();
        let added: Vec<&StoredEvent> = after.iter().filter(|r| !known.contains(&r.id)).collect();
        let status = res["status"].as_str().unwrap_or("");
        let what = || {
            format!(
                "{provider}: callback #{n} to {path}\n  content type {}\n  body {}\n  model {expect:?}\n  answer {code} {res}",
                cb.content_type,
                short(&body)
            )
        };

        {
            let mut t = tally.borrow_mut();
            t.requests += 1;
            t.accepted += usize::from(code.is_success());
            t.rejected += usize::from(code.is_client_error());
            t.predicted_accept += usize::from(expect == Expect::Accept);
            t.predicted_reject += usize::from(expect == Expect::Reject);
            let outcome = if code.is_success() { status.to_owned() } else { res["error"]["code"].to_string() };
            *t.outcomes.entry(format!("{} {}", code.as_u16(), outcome.trim_matches('"'))).or_default() += 1;
        }

        prop_assert!(!code.is_server_error(), "server error\n{}", what());
        prop_assert!(
            [200, 202, 400, 409, 413, 415].contains(&code.as_u16()),
            "a correctly signed callback got an undocumented code\n{}",
            what()
        );
        match expect {
            Expect::Accept => prop_assert!(code.is_success(), "the model expected acceptance\n{}", what()),
            Expect::Reject => prop_assert!(code.is_client_error(), "the model expected a 4xx\n{}", what()),
            Expect::Either => {}
        }

        if code.is_client_error() {
            prop_assert!(is_error_body(&res), "4xx without the error body shape\n{}", what());
            prop_assert!(added.is_empty(), "a refused callback was stored: {added:?}\n{}", what());
            continue;
        }

        prop_assert!(["processed", "duplicate", "ignored", "deferred"].contains(&status), "unknown status\n{}", what());
        prop_assert_eq!(code == StatusCode::ACCEPTED, status == "deferred", "202 is `deferred`\n{}", what());
        if expect == Expect::Accept && status != "duplicate" {
            // Correlated by the provider call id alone, a callback waits until an
            // attempt carries that id.
            let unmatched = matches!(case.query, Query::ProviderIdOnly) && bound.as_deref() != Some(id.as_str());
            let expected = if case.query.defers() || unmatched { StatusCode::ACCEPTED } else { StatusCode::OK };
            prop_assert_eq!(code, expected, "{}", what());
        }
        if status == "duplicate" {
            prop_assert!(added.is_empty(), "a duplicate was stored again: {added:?}\n{}", what());
        } else {
            prop_assert_eq!(added.len(), 1, "an accepted callback is stored exactly once\n{}", what());
            let row = added[0];
            prop_assert_eq!(row.provider, provider, "{}", what());
            if let Some((payload, _)) = &model {
                prop_assert!(
                    same_json(&row.payload, payload),
                    "the stored payload is what was sent: {}\n{}",
                    row.payload,
                    what()
                );
            }
            if expect == Expect::Accept {
                prop_assert_eq!(&row.provider_call_id, &id, "{}", what());
                if matches!(case.query, Query::Registered) {
                    prop_assert_eq!(row.call_id.as_deref(), Some(call_id.as_str()), "{}", what());
                }
            }
        }

        // The provider retries: the same request again is a duplicate.
        let (again, res2) = send(app, to_request(&path, signed)).await;
        let rows_again = rows(store).await;
        prop_assert_eq!(
            (again, res2["status"].as_str()),
            (StatusCode::OK, Some("duplicate")),
            "a re-sent callback is a duplicate: {}\n{}",
            res2,
            what()
        );
        prop_assert_eq!(rows_again.len(), after.len(), "a re-sent callback is not stored again\n{}", what());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `cases` generated cases of `provider` through the router on `backend`, then
/// checks that the generator reached the store often enough.
fn structured_callbacks(provider: Provider, backend: Backend, cases: u32) {
    let spec = spec(provider);
    let bases = fixtures(spec);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // PostgreSQL: one schema for the whole run (cases' ids are unique); SQLite: a
    // fresh in-memory database per case.
    let shared = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match rt.block_on(postgres()) {
            Some(db) => Some(db),
            None => return,
        },
    };
    let shared_app = shared.as_ref().map(|db| app(db.store.clone()));
    let tally = RefCell::new(Tally::default());
    // `PROPTEST_CASES` asks for a longer run.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        source_file: Some(file!()),
        // Shrinking re-runs whole cases; a bounded effort is enough to get a readable one.
        max_shrink_iters: 256,
        ..Config::default()
    });
    let result = runner.run(&case(spec), |case| {
        rt.block_on(async {
            match (&shared, &shared_app) {
                (Some(db), Some(app)) => run_case(spec, &bases, &db.store, app, &case, &tally).await,
                _ => {
                    let db = sqlite().await;
                    let app = app(db.store.clone());
                    run_case(spec, &bases, &db.store, &app, &case, &tally).await
                }
            }
        })
    });
    if let Some(db) = shared {
        rt.block_on(db.cleanup());
    }
    let backend = if backend == Backend::Sqlite { "sqlite" } else { "postgres" };
    if let Err(e) = result {
        panic!("{provider} on {backend}: {e}");
    }
    let tally = tally.into_inner();
    let summary = tally.summary(provider, backend);
    // Straight to stderr, as `cargo test -- --nocapture` shows it; the harness
    // captures `eprintln!`.
    let _ = writeln!(std::io::stderr(), "{summary}");
    assert!(
        tally.share(tally.accepted) >= 0.20,
        "fewer than 20% of the generated callbacks were accepted; the generator only exercises the error path: {summary}"
    );
    assert!(tally.share(tally.rejected) >= 0.05, "almost nothing was refused; the mutations are too tame: {summary}");
    assert!(tally.outcomes.keys().any(|k| k == "200 processed"), "no callback moved a call forward: {summary}");
    assert!(tally.outcomes.keys().any(|k| k == "202 deferred"), "no callback was deferred: {summary}");
}

const SQLITE_CASES: u32 = 128;
const POSTGRES_CASES: u32 = 64;

#[test]
fn twilio_callbacks_with_mutated_values_sqlite() {
    structured_callbacks(Provider::Twilio, Backend::Sqlite, SQLITE_CASES);
}

#[test]
fn signalwire_callbacks_with_mutated_values_sqlite() {
    structured_callbacks(Provider::SignalWire, Backend::Sqlite, SQLITE_CASES);
}

#[test]
fn plivo_callbacks_with_mutated_values_sqlite() {
    structured_callbacks(Provider::Plivo, Backend::Sqlite, SQLITE_CASES);
}

#[test]
fn telnyx_callbacks_with_mutated_values_sqlite() {
    structured_callbacks(Provider::Telnyx, Backend::Sqlite, SQLITE_CASES);
}

#[test]
fn vonage_callbacks_with_mutated_values_sqlite() {
    structured_callbacks(Provider::Vonage, Backend::Sqlite, SQLITE_CASES);
}

#[test]
fn twilio_callbacks_with_mutated_values_postgres() {
    structured_callbacks(Provider::Twilio, Backend::Postgres, POSTGRES_CASES);
}

#[test]
fn signalwire_callbacks_with_mutated_values_postgres() {
    structured_callbacks(Provider::SignalWire, Backend::Postgres, POSTGRES_CASES);
}

#[test]
fn plivo_callbacks_with_mutated_values_postgres() {
    structured_callbacks(Provider::Plivo, Backend::Postgres, POSTGRES_CASES);
}

#[test]
fn telnyx_callbacks_with_mutated_values_postgres() {
    structured_callbacks(Provider::Telnyx, Backend::Postgres, POSTGRES_CASES);
}

#[test]
fn vonage_callbacks_with_mutated_values_postgres() {
    structured_callbacks(Provider::Vonage, Backend::Postgres, POSTGRES_CASES);
}

// ---------------------------------------------------------------------------------
// What the generators found, pinned: values one store cannot hold are refused (400)
// by the webhook on both, instead of a 500 (PostgreSQL's B-tree limit) or a
// backend-dependent answer (U+0000: stored by SQLite, refused by PostgreSQL).
// ---------------------------------------------------------------------------------

on_both_stores!(oversized_identifiers_are_refused_alike, nul_is_refused_alike);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Sends `body` as `provider` would, and returns the answer and how many events were stored.
async fn deliver(
    store: &Arc<dyn Store>,
    provider: Provider,
    query: &str,
    content_type: &'static str,
    body: &str,
) -> (StatusCode, Value, usize) {
    let app = app(store.clone());
    let before = store.events(i64::MAX).await.unwrap().len();
    let path = format!("/webhooks/telephony/{provider}/events?{query}");
    let (code, res) = send(&app, provider_raw(provider, &path, content_type, body)).await;
    let stored = store.events(i64::MAX).await.unwrap().len() - before;
    (code, res, stored)
}

async fn oversized_identifiers_are_refused_alike(store: Arc<dyn Store>) {
    use callhook::providers::{MAX_CALL_ID_BYTES, MAX_IDENTIFIER_BYTES};
    let status = |n: usize| noise(7, n, ALNUM);
    let plivo =
        |s: &str| fixture("plivo_ringing.form").trim().replace("CallStatus=ringing", &format!("CallStatus={s}"));
    let vonage =
        |id: &str| fixture("vonage_started.json").replace("aaaaaaaa-bbbb-cccc-dddd-0123456789ab\"", &format!("{id}\""));

    // Before: a 3000-byte Plivo status made PostgreSQL refuse the dedupe key's index
    // entry ("index row size … exceeds btree version 4 maximum 2704"): a 500.
    for (query, body) in
        [("call_id=c-1", plivo(&status(3000))), ("call_id=c-2", plivo(&status(MAX_IDENTIFIER_BYTES + 1)))]
    {
        let (code, res, stored) = deliver(&store, Provider::Plivo, query, FORM, &body).await;
        assert_eq!(
            (code, res["error"]["code"].as_str(), stored),
            (StatusCode::BAD_REQUEST, Some("invalid_field"), 0),
            "{res}"
        );
    }
    let (code, res, stored) = deliver(&store, Provider::Vonage, "", JSON, &vonage(&status(4000))).await;
    assert_eq!(
        (code, res["error"]["code"].as_str(), stored),
        (StatusCode::BAD_REQUEST, Some("invalid_field"), 0),
        "{res}"
    );
    // A call id no registration can have (nor PostgreSQL index, past 2.7 kB).
    let long_call_id = format!("call_id={}", status(3000));
    let (code, res, stored) = deliver(&store, Provider::Plivo, &long_call_id, FORM, &plivo("ringing")).await;
    assert_eq!(
        (code, res["error"]["code"].as_str(), stored),
        (StatusCode::BAD_REQUEST, Some("invalid_field"), 0),
        "{res}"
    );

    // Up to the limits, accepted (deferred: no attempt is registered).
    let at_limit = format!("call_id={}", status(MAX_CALL_ID_BYTES));
    let (code, res, stored) =
        deliver(&store, Provider::Plivo, &at_limit, FORM, &plivo(&status(MAX_IDENTIFIER_BYTES))).await;
    assert_eq!((code, stored), (StatusCode::ACCEPTED, 1), "{res}");
}

async fn nul_is_refused_alike(store: Arc<dyn Store>) {
    // Before: stored by SQLite; PostgreSQL refused it ("unsupported Unicode escape
    // sequence", a 400 `invalid_request` from the store).
    let twilio = fixture("signalwire_completed.form").trim().to_owned() + "&ErrorMessage=%00";
    let vonage = fixture("vonage_started.json").replace(r#""from":"15005550006""#, r#""from":"\u0000""#);
    let telnyx =
        fixture("telnyx_call_answered.json").replace(r#""client_state":null"#, r#""client_state":{"a\u0000":1}"#);
    for (provider, query, content_type, body) in [
        (Provider::Twilio, "call_id=c-1", FORM, twilio.clone()),
        (Provider::SignalWire, "call_id=c-2", FORM, twilio),
        (Provider::Vonage, "call_id=c-3", JSON, vonage),
        (Provider::Telnyx, "call_id=c-4", JSON, telnyx),
        (Provider::Plivo, "call_id=c-5%00", FORM, fixture("plivo_ringing.form")),
    ] {
        let (code, res, stored) = deliver(&store, provider, query, content_type, &body).await;
        assert_eq!(
            (code, res["error"]["code"].as_str(), stored),
            (StatusCode::BAD_REQUEST, Some("malformed_body"), 0),
            "{provider}: {res}"
        );
    }
}

// ---------------------------------------------------------------------------------
// The fuzz targets' seeds and dictionaries (written by scripts/fuzz-seeds.py from the
// fixtures) stay usable: read through the fuzz harness itself, every seed fails
// verification and, its content type aside, parses.
// ---------------------------------------------------------------------------------

#[path = "../fuzz/src/lib.rs"]
mod fuzz_harness;

fn fuzz_files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/fuzz/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e} (run scripts/fuzz-seeds.py)"))
        .map(|e| {
            let path = e.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} is empty");
    files
}

/// libFuzzer's dictionary token syntax (between the quotes): printable ASCII, with
/// `\\`, `\"` and `\xNN` the only escapes.
fn is_dict_token(token: &str) -> bool {
    let mut bytes = token.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(b'\\' | b'"') => {}
                Some(b'x') => {
                    if !(bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
                        && bytes.next().is_some_and(|h| h.is_ascii_hexdigit()))
                    {
                        return false;
                    }
                }
                _ => return false,
            },
            b'"' => return false,
            b => {
                if !b.is_ascii() || b.is_ascii_control() {
                    return false;
                }
            }
        }
    }
    true
}

#[test]
fn fuzz_seeds_reach_the_parsers_through_the_harness() {
    let now = chrono::Utc::now();
    for provider in Provider::ALL {
        let mut insecure = signer().providers();
        insecure.insecure_skip_verification = true;
        for (name, data) in fuzz_files(&format!("seeds/{provider}")) {
            fuzz_harness::run(*provider, &data);
            let request = fuzz_harness::request(*provider, &data).expect("a seed is a whole request");
            match insecure.handle(*provider, request, now) {
                Err(WebhookError::UnsupportedMediaType(_)) if name.ends_with("-text") => {}
                Ok(event) if !name.ends_with("-text") => assert!(!event.provider_call_id.is_empty(), "{name}"),
                other => panic!("{provider} seed {name}: {other:?}"),
            }
        }
    }
    for (name, data) in fuzz_files("seeds/form_decode") {
        assert!(callhook::providers::form::decode(&data).is_ok_and(|f| !f.is_empty()), "form_decode seed {name}");
    }
    for name in ["twilio", "signalwire", "telnyx", "vonage", "plivo", "form"] {
        let (_, dict) = fuzz_files("dict").into_iter().find(|(n, _)| *n == format!("{name}.dict")).expect(name);
        for line in String::from_utf8(dict).unwrap().lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let ok = line.strip_prefix('"').and_then(|l| l.strip_suffix('"')).is_some_and(is_dict_token);
            assert!(ok, "{name}.dict: `{line}` is not a libFuzzer dictionary entry");
        }
    }
}
