//! The admin API (SPEC §6) under `/api/v1`, behind a bearer token: campaigns,
//! contacts, call registration, call detail and the dialogue's outcome.
//!
//! Each handler's annotation lists its own answers; `openapi.rs` adds the ones every
//! admin operation shares (401; the shared layers' 400, 408, 413, 414, 415, 431; the
//! store's 500 and 503), the error schema of every error response, and the input
//! limits the store enforces.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::{ApiError, AppState};
use crate::domain::{Attempt, Campaign, Contact, Outcome, Provider};
use crate::store::{ContactPatch, NewAttempt, NewCampaign, NewContact, OnDuplicate, StoredEvent, Uploaded};

/// Refuses requests without a configured bearer token (401); the `Bearer` scheme is
/// matched case-insensitively (RFC 9110 §11.1).
pub async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if app.admin_tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin_api_disabled",
            "the admin API is disabled: set CALLHOOK_ADMIN_TOKENS",
        ));
    }
    let presented = super::extract::bearer_token(request.headers()).unwrap_or("");
    let ok = !presented.is_empty()
        && app
            .admin_tokens
            .iter()
            .fold(false, |ok, t| ok | bool::from(t.expose().as_bytes().ct_eq(presented.as_bytes())));
    if !ok {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid bearer token"));
    }
    Ok(next.run(request).await)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddContacts {
    pub contacts: Vec<NewContact>,
    /// A phone number the campaign has already (or repeated in the upload):
    /// `reject` (default) refuses the upload, `skip` adds the others.
    #[serde(default)]
    pub on_duplicate: OnDuplicate,
}

/// Registers a call attempt: the dialer's step before (or right after) dialling.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterCall {
    pub contact_id: Uuid,
    /// Checked against the contact's campaign when given.
    #[serde(default)]
    pub campaign_id: Option<Uuid>,
    /// Defaults to the service's default provider.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Your own call identifier; a UUID is generated when omitted.
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub provider_call_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The provider account placing the call (Twilio `AccountSid`, SignalWire
    /// project, Plivo auth id): callbacks of another account are refused (409).
    /// Without it, the call belongs to the account of its first callback.
    #[serde(default)]
    pub account_sid: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredCall {
    pub call_id: String,
    /// Give this to the provider as the status callback URL.
    pub status_callback_url: String,
    pub attempt: Attempt,
    pub contact: Contact,
    /// Callbacks that had arrived before the registration and were applied now.
    pub applied_deferred: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    pub attempt: Attempt,
    /// Every stored callback for the call, in arrival order.
    pub events: Vec<StoredEvent>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DialogueOutcome {
    /// `completed` or `refused`.
    pub outcome: Outcome,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeRecorded {
    pub attempt: Attempt,
    pub contact: Contact,
}

/// Creates a campaign.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "admin", request_body = NewCampaign, security(("bearer" = [])),
    responses(
        (status = 201, description = "the campaign", body = Campaign),
        (status = 400, description = "malformed JSON, or a field out of bounds (`invalid_request`)"),
    ))]
pub async fn create_campaign(
    State(app): State<AppState>,
    ApiJson(new): ApiJson<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.store.create_campaign(new).await?)))
}

/// Adds contacts to a campaign: all of them, or none when one is invalid. Phone
/// numbers are normalised to E.164; each campaign has a phone number once.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/contacts", tag = "admin", request_body = AddContacts,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 201, description = "the contacts added, in the order given, and the duplicates skipped", body = Uploaded),
        (status = 400, description = "malformed JSON or id, or rows out of bounds (`invalid_phone_number`, `invalid_timezone`, …; every row in `error.details`)"),
        (status = 404, description = "no such campaign"),
        (status = 409, description = "phone numbers the campaign has already (`duplicate_phone_number`; rows in `error.details`)"),
    ))]
pub async fn add_contacts(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddContacts>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let uploaded = app.store.add_contacts(id, body.contacts, body.on_duplicate).await?;
    Ok((StatusCode::CREATED, Json(uploaded)))
}

/// Changes a contact's `do_not_call`, `timezone` or `external_id`.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "admin", request_body = ContactPatch,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "contact id")),
    responses(
        (status = 200, description = "the contact", body = Contact),
        (status = 400, description = "malformed JSON or id, `invalid_timezone`, or `external_id` out of bounds"),
        (status = 404, description = "no such contact"),
    ))]
pub async fn patch_contact(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Json<Contact>, ApiError> {
    // Read as an object first: serde would also build the struct from a JSON array.
    let patch: ContactPatch = serde_json::from_value(Value::Object(patch))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    Ok(Json(app.store.update_contact(id, patch).await?))
}

/// Excludes a contact: never dialled again, never changed by a callback.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/exclude", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "contact id")),
    responses(
        (status = 200, description = "the contact, `excluded`", body = Contact),
        (status = 404, description = "no such contact"),
        (status = 409, description = "the contact is `completed` or `refused` (`contact_closed`)"),
    ))]
pub async fn exclude_contact(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(app.store.exclude_contact(id).await?))
}

/// A contact's state.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "contact id")),
    responses(
        (status = 200, description = "the contact", body = Contact),
        (status = 400, description = "the id is not a UUID (`invalid_path`)"),
        (status = 404, description = "no such contact"),
    ))]
pub async fn get_contact(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<Contact>, ApiError> {
    let contact = app.store.contact(id).await?;
    contact
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("contact `{id}` not found")))
}

/// Registers a call attempt: the dialer's step before (or right after) dialling.
#[utoipa::path(post, path = "/api/v1/calls", tag = "admin", request_body = RegisterCall, security(("bearer" = [])),
    responses(
        (status = 201, description = "the attempt, and the callback URL to give the provider", body = RegisteredCall),
        (status = 400, description = "malformed JSON, a field out of bounds (`invalid_request`), or no `Host` to build the URL from"),
        (status = 404, description = "no such contact"),
        (status = 409, description = "the contact may not be called now (`outside_calling_window`, `not_due`, `campaign_not_running`, `concurrency_limit`, `do_not_call`, `attempt_in_flight`, `contact_closed`), is not in `campaign_id` or `call_id` is taken (`conflict`)"),
    ))]
pub async fn register_call(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterCall>,
) -> Result<(StatusCode, Json<RegisteredCall>), ApiError> {
    let provider = body.provider.unwrap_or(app.default_provider);
    if let Some(account) = &body.account_sid {
        app.providers
            .knows_account(provider, account)
            .map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, "unknown_account", why))?;
    }
    let new = NewAttempt {
        contact_id: body.contact_id,
        campaign_id: body.campaign_id,
        provider,
        call_id: body.call_id,
        provider_call_id: body.provider_call_id,
        metadata: body.metadata,
        account_sid: body.account_sid,
    };
    let registered = app.store.register_attempt(new).await?;
    let a = &registered.attempt;
    let status_callback_url = status_callback_url(&app, &headers, a)?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredCall {
            call_id: a.call_id.clone(),
            status_callback_url,
            attempt: registered.attempt,
            contact: registered.contact,
            applied_deferred: registered.applied_deferred,
        }),
    ))
}

/// The provider refused to place a registered call.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DialFailure {
    /// The provider's error code, e.g. Twilio's `21211` (invalid `To`): 1–64
    /// characters without spaces.
    pub error_code: String,
    /// The provider's message, at most 300 characters.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// Reports that the dialer could not place a registered call (the provider's create
/// request failed). The attempt fails with the code; the contact is retried as for a
/// failed call, or becomes `not_reached` at once for an invalid number.
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/dial-failed", tag = "campaigns", request_body = DialFailure,
    security(("bearer" = [])), params(("call_id" = String, Path)),
    responses(
        (status = 200, description = "the attempt and the contact (a repeat of the same report changes nothing)", body = OutcomeRecorded),
        (status = 400, description = "malformed JSON or call id, or `error_code`/`error_message` out of bounds (`invalid_request`)"),
        (status = 404, description = "no such call"),
        (status = 409, description = "the provider has reported on the call: it was placed (`call_already_reported`)"),
    ))]
pub async fn dial_failed(
    State(app): State<AppState>,
    ApiPath(call_id): ApiPath<String>,
    ApiJson(body): ApiJson<DialFailure>,
) -> Result<Json<OutcomeRecorded>, ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m.to_owned());
    let code = &body.error_code;
    // At most 64 characters (as the OpenAPI document counts them), not bytes.
    if !crate::text::is_token(code, usize::MAX) || code.chars().count() > 64 {
        return Err(bad("error_code must be 1–64 characters without spaces or control characters"));
    }
    let message = body.error_message.as_deref();
    if message.is_some_and(|m| m.chars().count() > 300 || crate::text::has_control(m)) {
        return Err(bad("error_message must be at most 300 characters without control characters"));
    }
    let (attempt, contact) = app.store.dial_failed(&call_id, &body.error_code, message).await?;
    Ok(Json(OutcomeRecorded { attempt, contact }))
}

/// A call attempt and every callback stored for it.
#[utoipa::path(get, path = "/api/v1/calls/{call_id}", tag = "admin", security(("bearer" = [])),
    params(("call_id" = String, Path)),
    responses(
        (status = 200, description = "the attempt and its events, in arrival order", body = CallDetail),
        (status = 400, description = "the call id is not valid UTF-8 once percent-decoded (`invalid_path`)"),
        (status = 404, description = "no such call"),
    ))]
pub async fn get_call(
    State(app): State<AppState>,
    ApiPath(call_id): ApiPath<String>,
) -> Result<Json<CallDetail>, ApiError> {
    let attempt = app
        .store
        .attempt(&call_id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("call `{call_id}` not found")))?;
    let events = app.store.events_for_call(&call_id).await?;
    Ok(Json(CallDetail { attempt, events }))
}

/// The dialogue's verdict: sets the call's outcome and the contact's state. Repeating
/// the same verdict changes nothing.
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/outcome", tag = "admin", request_body = DialogueOutcome,
    security(("bearer" = [])), params(("call_id" = String, Path)),
    responses(
        (status = 200, description = "the attempt and the contact", body = OutcomeRecorded),
        (status = 400, description = "malformed JSON or call id, or not `completed`/`refused`"),
        (status = 404, description = "no such call"),
        (status = 409, description = "the call was never answered, or has another outcome already"),
    ))]
pub async fn record_outcome(
    State(app): State<AppState>,
    ApiPath(call_id): ApiPath<String>,
    ApiJson(body): ApiJson<DialogueOutcome>,
) -> Result<Json<OutcomeRecorded>, ApiError> {
    let (attempt, contact) = app.store.record_outcome(&call_id, body.outcome).await?;
    Ok(Json(OutcomeRecorded { attempt, contact }))
}

/// The status callback URL to give the provider for a registered call: it names
/// the call, its campaign and contact, and carries the connection overrides.
pub fn status_callback_url(app: &AppState, headers: &HeaderMap, a: &Attempt) -> Result<String, ApiError> {
    let path = format!(
        "/webhooks/telephony/{}/events?call_id={}&campaign_id={}&contact_id={}",
        a.provider,
        crate::providers::form::encode_component(&a.call_id),
        a.campaign_id,
        a.contact_id
    );
    Ok(app.external_url.with_overrides(a.provider, app.external_url.build(headers, &path)?))
}
