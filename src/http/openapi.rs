//! The OpenAPI document served at `GET /openapi.json`, generated from the handlers'
//! annotations and the types' `ToSchema` derives.
//!
//! Three things are added here rather than on each handler:
//! - [`CommonResponses`]: the answers that come from the layers every route shares
//!   (`limits.rs`, the server) or from the admin middleware and the store, on every
//!   operation they cover: 400/408/413/414/415/431 (unparsable HTTP, slow or large
//!   requests, long URIs, compressed bodies), 401 (the bearer token), 500 and 503 (the
//!   store, the concurrency limit; 503 with `Retry-After`). It also gives every error
//!   response the [`ErrorBody`] schema, so the annotations only name the status and
//!   the case.
//! - [`InputLimits`]: the bounds the store checks admin input against, written from the
//!   same constants, so a request the document calls valid is one the API accepts.
//! - The operations whose handlers read raw input (the webhooks) or sit outside the
//!   admin API (probes, metrics, this document), described by the stubs below.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{admin, campaigns};
use crate::domain::{EventType, Provider};

#[derive(OpenApi)]
#[openapi(
    info(title = "callhook", description = "Telephony call-status webhooks, recorded exactly once."),
    paths(
        admin::create_campaign,
        admin::add_contacts,
        admin::get_contact,
        admin::patch_contact,
        admin::exclude_contact,
        campaigns::list,
        campaigns::get,
        campaigns::pause,
        campaigns::resume,
        campaigns::stop,
        campaigns::stats,
        campaigns::dial,
        campaigns::contacts,
        campaigns::results_csv,
        admin::register_call,
        admin::get_call,
        admin::record_outcome,
        admin::dial_failed,
        provider_webhook,
        healthz,
        readyz,
        metrics,
        openapi_document,
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "admin", description = "Campaigns, contacts and calls, behind a bearer token."),
        (name = "campaigns", description = "The dialer's loop and the operator's view of a campaign, behind a bearer token."),
        (name = "webhooks", description = "Providers' signed call-status callbacks."),
        (name = "operations", description = "Probes, metrics and this document."),
    ),
    modifiers(&BearerAuth, &InputLimits, &ProviderPaths, &CommonResponses)
)]
pub struct ApiDoc;

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The body of every error response: what `ApiError` writes.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "contact `…` not found"}}))]
#[allow(dead_code)] // describes the JSON `ApiError` builds; never constructed
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)] // see `ErrorBody`
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `unauthorized`, `invalid_request`,
    /// `invalid_timezone`, `invalid_calling_window`, `outside_calling_window`, `not_due`,
    /// `malformed_body`, `invalid_path`, `unsupported_media_type`, `payload_too_large`,
    /// `request_timeout`, `not_found`, `unknown_provider`, `missing_signature`,
    /// `invalid_signature`, `conflict`, `overloaded`, `store_unavailable`,
    /// `internal_error`; each response's description names the codes it carries.
    pub code: String,
    /// For people; the wording may change.
    pub message: String,
    /// Per-item problems, e.g. every refused row of a contact upload
    /// (`{"row", "code", "message"}` or `{"row", "phone_number", "duplicate_of_…"}`).
    #[schema(value_type = Option<Vec<Object>>)]
    pub details: Option<Vec<serde_json::Value>>,
}

// ---------------------------------------------------------------------------------
// Operations whose handlers carry no annotation.

/// A provider's callback as a form (Twilio, SignalWire, Plivo): every field is kept in
/// the stored payload.
#[derive(ToSchema)]
#[schema(example = json!({"CallSid": "CA0123456789abcdef0123456789abcdef", "AccountSid": "AC0123456789abcdef0123456789abcdef",
                          "CallStatus": "completed", "CallDuration": "42"}))]
#[allow(dead_code)] // documentation only
struct FormCallback(HashMap<String, String>);

/// A provider's callback as JSON (Telnyx, Vonage; Twilio with `bodySHA256` in the URL).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
struct JsonCallback(HashMap<String, serde_json::Value>);

/// What a webhook answers once the callback is committed.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON the webhook handler builds
struct WebhookReply {
    status: WebhookStatus,
    call_id: Option<String>,
    event_type: Option<EventType>,
    /// With `ignored`: `stale` (out of order) or `unrecognised_status`.
    reason: Option<String>,
    /// With `ignored` for an unrecognised status: the provider's word.
    provider_status: Option<String>,
    /// With `deferred` and `spooled`.
    provider_call_id: Option<String>,
    /// With `spooled`: `file` or `nats`.
    spool: Option<String>,
}

/// `processed`, `duplicate` or `ignored` (200); `deferred` (202: stored, applied when
/// the call is registered); `spooled` (202: the store is away, the callback is durable
/// in the outage spool and stored when the store returns).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // see `WebhookReply`
enum WebhookStatus {
    Processed,
    Duplicate,
    Ignored,
    Deferred,
    Spooled,
}

/// The template of the webhook operations [`ProviderPaths`] writes, one per provider
/// and one for the default provider: the route is `/webhooks/telephony/{provider}/events`,
/// but what a provider sends and how it signs it differ, which one templated operation
/// could not say.
#[utoipa::path(post, path = "/webhooks/telephony/{provider}/events", tag = "webhooks",
    params(CallbackQuery),
    request_body(description = "the provider's callback, as signed",
        content((FormCallback = "application/x-www-form-urlencoded"), (JsonCallback = "application/json"))),
    responses(
        (status = 200, description = "committed: `processed`, `duplicate` or `ignored`", body = WebhookReply),
        (status = 202, description = "committed, `deferred` until the call is registered; or `spooled` while the store is away", body = WebhookReply),
        (status = 400, description = "malformed body or query, a required field missing or invalid, no `Host`"),
        (status = 403, description = "signature missing or invalid, the provider has no credentials configured, or its account is not configured (`unknown_account`)"),
        (status = 409, description = "`campaign_id`/`contact_id` do not match the call attempt, or another provider account's call (`account_mismatch`)"),
        (status = 413, description = "body over `CALLHOOK_MAX_BODY_BYTES` (64 KiB by default)"),
        (status = 415, description = "a content type the provider does not send, or a compressed body"),
    ))]
#[allow(dead_code)] // documentation only: the handler is `webhook::named_provider`
fn provider_webhook() {}

/// The correlation the dialer puts in the callback URL; covered by the signature.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
struct CallbackQuery {
    /// The call attempt (at most 128 bytes); without it the attempt is found by the
    /// provider's call id.
    call_id: Option<String>,
    campaign_id: Option<uuid::Uuid>,
    contact_id: Option<uuid::Uuid>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `health::healthz` builds
struct Live {
    /// `ok`.
    #[schema(pattern = "^ok$")]
    status: String,
}

#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `health::readyz` builds
struct Ready {
    /// `ready`, or `spooling`: the store is away and the outage spool takes callbacks.
    #[schema(pattern = "^(ready|spooling)$")]
    status: String,
    /// `postgres` or `sqlite`.
    store: String,
    /// With `spooling`: `false`.
    store_available: Option<bool>,
    /// With an outage spool: `backend`, `records`, `bytes`, `oldest_at`.
    #[schema(value_type = Option<Object>)]
    spool: Option<serde_json::Value>,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "up", body = Live)))]
#[allow(dead_code)] // documentation only: the handler is `health::healthz`
fn healthz() {}

/// Readiness: the store answers. A load balancer should stop sending callbacks on 503.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, description = "the store answers, or the outage spool takes callbacks (`spooling`)", body = Ready),
              (status = 503, description = "the store does not answer and no spool takes callbacks (`store_unavailable`, `spool_full`)")))]
#[allow(dead_code)] // documentation only: the handler is `health::readyz`
fn readyz() {}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses(
        (status = 200, description = "the metrics", body = String, content_type = "text/plain"),
        (status = 401, description = "`CALLHOOK_METRICS_TOKEN` is set and the scrape lacks it as a bearer token"),
        (status = 404, description = "served on a listener of its own (`CALLHOOK_METRICS_LISTEN`), not here"),
    ))]
#[allow(dead_code)] // documentation only: the handler is `health::metrics`
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
#[allow(dead_code)] // documentation only: the handler is `openapi_json`
fn openapi_document() {}

// ---------------------------------------------------------------------------------
// Modifiers.

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// A provider's name, the content types its callbacks come in, and how they are signed.
fn callback(provider: Provider) -> (&'static str, &'static [&'static str], &'static str) {
    match provider {
        Provider::Twilio => (
            "Twilio",
            &[FORM, JSON],
            "`X-Twilio-Signature`: HMAC-SHA1 with an auth token over the URL and the form fields (for JSON, \
             over the URL, which carries `bodySHA256`); or the shared-key scheme \
             (`X-Twilio-Webhooks-Signature-Settings`).",
        ),
        Provider::SignalWire => (
            "SignalWire",
            &[FORM, JSON],
            "`X-SignalWire-Signature` with the project signing key: Twilio's scheme for forms (a repeated field's \
             values in arrival order or sorted); for JSON, lower-case hex HMAC-SHA1 over the URL and the raw body.",
        ),
        Provider::Telnyx => {
            ("Telnyx", &[JSON], "`telnyx-signature-ed25519` over `telnyx-timestamp|body`; the timestamp within 300 s.")
        }
        Provider::Vonage => (
            "Vonage",
            &[JSON],
            "`Authorization: Bearer` with a JWT (HS256, the signature secret) whose `payload_hash` is the body's \
             SHA-256.",
        ),
        Provider::Plivo => {
            ("Plivo", &[FORM], "`X-Plivo-Signature-V3` with `X-Plivo-Signature-V3-Nonce` (HMAC-SHA256).")
        }
    }
}

/// Replaces the templated webhook operation with one per provider, each with the
/// content types that provider sends, and one for the default provider's
/// `/webhooks/telephony/events`. Any other `{provider}` is a 404 like any unknown path
/// (code `unknown_provider`).
struct ProviderPaths;

impl Modify for ProviderPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let template = "/webhooks/telephony/{provider}/events";
        let templated = openapi.paths.paths.remove(template).expect("the templated webhook operation");
        let template = templated.post.expect("the webhook is a POST");
        for &provider in Provider::ALL {
            let (name, content_types, signature) = callback(provider);
            let mut op = template.clone();
            op.operation_id = Some(format!("{provider}_webhook"));
            op.summary = Some(format!("A call-status callback from {name}."));
            op.description = Some(format!("Signed with {signature} Nothing is stored unless it verifies."));
            if let Some(body) = &mut op.request_body {
                body.content.retain(|content_type, _| content_types.contains(&content_type.as_str()));
            }
            let item = PathItem::new(HttpMethod::Post, op);
            openapi.paths.paths.insert(format!("/webhooks/telephony/{provider}/events"), item);
        }
        let mut default = template;
        default.operation_id = Some("default_provider_webhook".into());
        default.summary = Some("A call-status callback from the default provider.".into());
        default.description = Some(
            "The provider `CALLHOOK_DEFAULT_PROVIDER` names (Twilio unless configured): what it sends, signed as \
             its own operation says. Nothing is stored unless it verifies."
                .into(),
        );
        openapi.paths.paths.insert("/webhooks/telephony/events".into(), PathItem::new(HttpMethod::Post, default));
    }
}

/// Paths whose handlers never reach the store (so never answer its 500 or 503).
const WITHOUT_STORE: &[&str] = &["/healthz", "/metrics", "/openapi.json"];
/// Paths served without waiting for a processing slot (so never shed with 503).
const WITHOUT_SLOT: &[&str] = &["/healthz"];

/// Seconds in `Retry-After`; see `error.rs`.
const RETRY_AFTER: &str = "Seconds to wait before retrying (5).";

/// The answers that come from shared layers, and the error schema on every error
/// response. An annotation's own description of a status is kept.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let path = path.as_str();
            for op in operations(item) {
                let json_body = op.request_body.as_ref().is_some_and(|b| b.content.contains_key(JSON));
                let mut add = |status: &str, description: &str| {
                    let response = ResponseBuilder::new().description(description).build();
                    op.responses.responses.entry(status.to_owned()).or_insert(RefOr::T(response));
                };
                if op.security.is_some() {
                    add(
                        "401",
                        "no `Authorization: Bearer` with a configured admin token (`unauthorized`), or none is \
                         configured (`admin_api_disabled`)",
                    );
                }
                add("400", "not valid HTTP/1.1 (`bad_request`), or the body could not be read (`unreadable_body`)");
                add(
                    "408",
                    "the body did not arrive in time (`body_read_timeout`), or the handler outlasted \
                     `CALLHOOK_REQUEST_TIMEOUT_SECS` (`request_timeout`)",
                );
                add("413", "the body is over the size limit (`payload_too_large`)");
                add("414", "the URI is too long (`uri_too_long`)");
                if json_body {
                    add(
                        "415",
                        "not `Content-Type: application/json` (`unsupported_media_type`), or a compressed body \
                         (`unsupported_content_encoding`)",
                    );
                } else {
                    add("415", "a compressed body (`unsupported_content_encoding`)");
                }
                add("431", "the header fields are too large (`header_fields_too_large`)");
                match (WITHOUT_STORE.contains(&path), WITHOUT_SLOT.contains(&path)) {
                    (false, _) => {
                        add("500", "a fault retrying will not fix (`internal_error`); logged");
                        add(
                            "503",
                            "the store is unavailable (`store_unavailable`), or the service is at its concurrency \
                             limit (`overloaded`); retry after `Retry-After`",
                        );
                    }
                    (true, false) => {
                        add("503", "the service is at its concurrency limit (`overloaded`); retry after `Retry-After`")
                    }
                    (true, true) => {}
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else { continue };
                    if status.starts_with(['4', '5']) && response.content.is_empty() {
                        let schema = RefOr::Ref(Ref::from_schema_name("ErrorBody"));
                        response.content.insert(JSON.into(), ContentBuilder::new().schema(Some(schema)).build());
                    }
                    if status == "503" {
                        let header = HeaderBuilder::new()
                            .schema(Object::with_type(Type::Integer))
                            .description(Some(RETRY_AFTER));
                        response.headers.insert("Retry-After".into(), header.build());
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// `char::is_control`: Unicode's Cc, for regex character classes.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// `char::is_whitespace`: Unicode's White_Space, for regex character classes.
const WHITESPACE: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The bounds of the admin inputs, as the store validates them (`store/types.rs`).
struct InputLimits;

impl Modify for InputLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use crate::providers::{MAX_CALL_ID_BYTES, MAX_IDENTIFIER_BYTES};
        use crate::store::{MAX_EXTERNAL_ID_CHARS, MAX_METADATA_BYTES, MAX_NAME_CHARS, MAX_RETRY_INTERVAL_MINUTES};
        let schemas = &mut openapi.components.get_or_insert_with(Default::default).schemas;
        // Trimmed, then 1–MAX_NAME_CHARS characters without control characters. The
        // length is of what is left after trimming, so it is in the pattern.
        let name = plain(schemas, "NewCampaign", "name");
        name.pattern = Some(format!(
            "^[{WHITESPACE}]*[^{CONTROL}{WHITESPACE}]([^{CONTROL}]{{0,{inner}}}[^{CONTROL}{WHITESPACE}])?[{WHITESPACE}]*$",
            inner = MAX_NAME_CHARS - 2
        ));
        name.description = Some(format!(
            "1–{MAX_NAME_CHARS} characters once surrounding whitespace is trimmed; no control characters."
        ));
        let max_attempts = plain(schemas, "NewCampaign", "max_attempts");
        (max_attempts.minimum, max_attempts.maximum) = (Some(1.into()), Some(5.into()));
        max_attempts.description = Some("1–5; 3 when omitted.".into());
        let interval = plain(schemas, "NewCampaign", "retry_interval_minutes");
        (interval.minimum, interval.maximum) = (Some(0.into()), Some(MAX_RETRY_INTERVAL_MINUTES.into()));
        interval.description = Some(format!("0–{MAX_RETRY_INTERVAL_MINUTES} (30 days); 60 when omitted."));
        let amd_wait = plain(schemas, "NewCampaign", "amd_wait_timeout_ms");
        (amd_wait.minimum, amd_wait.maximum) = (Some(0.into()), Some(crate::store::MAX_AMD_WAIT_TIMEOUT_MS.into()));
        amd_wait.description = Some("0–60000; 4000 when omitted. How long `wait` holds the dialogue.".into());

        let phone = plain(schemas, "NewContact", "phone_number");
        phone.pattern = Some(r"^[ .()\-]*\+[ .()\-]*[1-9]([ .()\-]*[0-9]){1,14}[ .()\-]*$".into());
        phone.description = Some(
            "E.164 once spaces, dots, dashes and parentheses are removed: `+`, then 2–15 digits, the first not 0."
                .into(),
        );
        let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        for (schema, field) in [("NewCampaign", "timezone"), ("NewContact", "timezone"), ("ContactPatch", "timezone")] {
            let tz = plain(schemas, schema, field);
            tz.enum_values = Some(zones.iter().map(|z| (*z).into()).collect());
            tz.description = Some("An IANA timezone name, e.g. `America/New_York`.".into());
        }
        let start = plain(schemas, "NewCampaign", "calling_window_start");
        start.pattern = Some("^(0[89]|1[0-9]|20):[0-5][0-9]$".into());
        let end = plain(schemas, "NewCampaign", "calling_window_end");
        end.pattern = Some("^(0[89]|1[0-9]|20):[0-5][0-9]$|^21:00$".into());
        end.description =
            Some("Local `HH:MM`, exclusive, after `calling_window_start`; default `20:00`, not after `21:00`.".into());
        let days = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(7));
        let days = utoipa::openapi::schema::ArrayBuilder::new()
            .items(days)
            .min_items(Some(1))
            .description(Some("ISO weekdays, 1 = Monday … 7 = Sunday; default all."));
        *property_of(schemas, "NewCampaign", "calling_days") = days.into();
        *property_of(schemas, "NewCampaign", "retry_policy") = retry_policy_schema().into();
        let cap = plain(schemas, "NewCampaign", "max_concurrent_calls");
        (cap.minimum, cap.maximum) = (Some(1.into()), Some(crate::store::MAX_CONCURRENT_CALLS.into()));
        for schema in ["NewContact", "ContactPatch"] {
            let external_id = plain(schemas, schema, "external_id");
            external_id.max_length = Some(MAX_EXTERNAL_ID_CHARS);
            external_id.pattern = Some(format!("^[^{CONTROL}]*$"));
            external_id.description =
                Some(format!("At most {MAX_EXTERNAL_ID_CHARS} characters; no control characters."));
        }
        // JSON Schema leaves `format` unchecked; the pattern says what a UUID is.
        for field in ["contact_id", "campaign_id"] {
            plain(schemas, "RegisterCall", field).pattern =
                Some("^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$".into());
        }

        let call_id = plain(schemas, "RegisterCall", "call_id");
        (call_id.min_length, call_id.max_length) = (Some(1), Some(MAX_CALL_ID_BYTES));
        call_id.pattern = Some(format!("^[^{CONTROL}{WHITESPACE}]+$"));
        call_id.description = Some(format!(
            "Your own call identifier, 1–{MAX_CALL_ID_BYTES} bytes of UTF-8 without spaces or control \
             characters (it travels in the callback URL); a UUID is generated when omitted."
        ));
        let provider_call_id = plain(schemas, "RegisterCall", "provider_call_id");
        (provider_call_id.min_length, provider_call_id.max_length) = (Some(1), Some(MAX_IDENTIFIER_BYTES));
        provider_call_id.pattern = Some(format!("^[^{CONTROL}]+$"));
        provider_call_id.description =
            Some(format!("1–{MAX_IDENTIFIER_BYTES} bytes of UTF-8 without control characters."));
        let account = plain(schemas, "RegisterCall", "account_sid");
        (account.min_length, account.max_length) = (Some(1), Some(128));
        account.pattern = Some(format!("^[^{CONTROL}{WHITESPACE}]+$"));
        account.description = Some(
            "The provider account placing the call (Twilio `AccountSid`, SignalWire project, Plivo auth id), 1–128 \
             bytes without spaces or control characters; Twilio, SignalWire and Plivo calls only, and one the \
             accounts file lists when it lists any (else 400 `unknown_account`)."
                .into(),
        );
        plain(schemas, "RegisterCall", "metadata").description = Some(format!(
            "A JSON object, kept on the attempt: at most {MAX_METADATA_BYTES} bytes serialised, and no \
             U+0000 (NUL) in any key or string."
        ));

        let code = plain(schemas, "DialFailure", "error_code");
        (code.min_length, code.max_length) = (Some(1), Some(64));
        code.pattern = Some(format!("^[^{CONTROL}{WHITESPACE}]+$"));
        let message = plain(schemas, "DialFailure", "error_message");
        message.max_length = Some(300);
        message.pattern = Some(format!("^[^{CONTROL}]*$"));

        // `Outcome` has five values; a dialogue's verdict is one of two.
        let verdict = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["completed", "refused"]))
            .description(Some("The dialogue's verdict."));
        *property_of(schemas, "DialogueOutcome", "outcome") = verdict.into();
    }
}

/// `retry_policy`: per outcome, 1–10 delays in minutes (0–43,200); nothing else.
fn retry_policy_schema() -> ObjectBuilder {
    use crate::domain::retry::{MAX_DELAYS, MAX_DELAY_MINUTES};
    let delays = || {
        let minutes = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(MAX_DELAY_MINUTES));
        utoipa::openapi::schema::ArrayBuilder::new().items(minutes).min_items(Some(1)).max_items(Some(MAX_DELAYS))
    };
    crate::domain::RetryKey::ALL
        .iter()
        .fold(ObjectBuilder::new().schema_type(Type::Object), |o, key| o.property(key.as_str(), delays()))
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
        .description(Some(
            "Delays in minutes per outcome, one per retry, the last repeating; an outcome absent is not retried. \
             Omitted: every outcome is retried after `retry_interval_minutes`.",
        ))
}

/// The schema of property `name` of component `schema`; panics (failing the tests) when
/// the types no longer have it.
fn property_of<'a>(
    schemas: &'a mut BTreeMap<String, RefOr<Schema>>,
    schema: &str,
    name: &str,
) -> &'a mut RefOr<Schema> {
    let Some(RefOr::T(Schema::Object(object))) = schemas.get_mut(schema) else {
        panic!("OpenAPI: no object schema `{schema}`");
    };
    object.properties.get_mut(name).unwrap_or_else(|| panic!("OpenAPI: `{schema}` has no property `{name}`"))
}

/// [`property_of`], which must be a plain (not referenced, not composed) schema.
fn plain<'a>(schemas: &'a mut BTreeMap<String, RefOr<Schema>>, schema: &str, name: &str) -> &'a mut Object {
    match property_of(schemas, schema, name) {
        RefOr::T(Schema::Object(property)) => property,
        _ => panic!("OpenAPI: `{schema}.{name}` is not a plain schema"),
    }
}
