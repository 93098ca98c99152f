//! The admin API (SPEC §6) under `/api/v1`, behind a bearer token: campaigns,
//! contacts, call registration, call detail and the dialogue's outcome.

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
use crate::store::{NewAttempt, NewCampaign, NewContact, StoredEvent};

/// Refuses requests without a configured bearer token (401).
pub async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if app.admin_tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin_api_disabled",
            "the admin API is disabled: set CALLHOOK_ADMIN_TOKENS",
        ));
    }
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok =
        app.admin_tokens.iter().fold(false, |ok, t| ok | bool::from(t.expose().as_bytes().ct_eq(presented.as_bytes())));
    if !ok {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid bearer token"));
    }
    Ok(next.run(request).await)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddContacts {
    pub contacts: Vec<NewContact>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
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
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
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

#[utoipa::path(post, path = "/api/v1/campaigns", request_body = NewCampaign, security(("bearer" = [])),
    responses((status = 201, body = Campaign), (status = 400, description = "invalid campaign")))]
pub async fn create_campaign(
    State(app): State<AppState>,
    ApiJson(new): ApiJson<NewCampaign>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.store.create_campaign(new).await?)))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/contacts", request_body = AddContacts, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "campaign id")),
    responses((status = 201, body = ContactList), (status = 400, description = "a phone number is not E.164"), (status = 404)))]
pub async fn add_contacts(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddContacts>,
) -> Result<(StatusCode, Json<ContactList>), ApiError> {
    let contacts = app.store.add_contacts(id, body.contacts).await?;
    Ok((StatusCode::CREATED, Json(ContactList { contacts })))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "contact id")), responses((status = 200, body = Contact), (status = 404)))]
pub async fn get_contact(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<Contact>, ApiError> {
    let contact = app.store.contact(id).await?;
    contact
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("contact `{id}` not found")))
}

#[utoipa::path(post, path = "/api/v1/calls", request_body = RegisterCall, security(("bearer" = [])),
    responses((status = 201, body = RegisteredCall), (status = 404, description = "unknown contact"),
              (status = 409, description = "contact not dialable, or call_id taken")))]
pub async fn register_call(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterCall>,
) -> Result<(StatusCode, Json<RegisteredCall>), ApiError> {
    let provider = body.provider.unwrap_or(app.default_provider);
    let new = NewAttempt {
        contact_id: body.contact_id,
        campaign_id: body.campaign_id,
        provider,
        call_id: body.call_id,
        provider_call_id: body.provider_call_id,
        metadata: body.metadata,
    };
    let registered = app.store.register_attempt(new).await?;
    let a = &registered.attempt;
    let path = format!(
        "/webhooks/telephony/{provider}/events?call_id={}&campaign_id={}&contact_id={}",
        crate::providers::form::encode_component(&a.call_id),
        a.campaign_id,
        a.contact_id
    );
    let status_callback_url = app.external_url.with_overrides(provider, app.external_url.build(&headers, &path)?);
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

#[utoipa::path(get, path = "/api/v1/calls/{call_id}", security(("bearer" = [])),
    params(("call_id" = String, Path)), responses((status = 200, body = CallDetail), (status = 404)))]
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

#[utoipa::path(post, path = "/api/v1/calls/{call_id}/outcome", request_body = DialogueOutcome, security(("bearer" = [])),
    params(("call_id" = String, Path)),
    responses((status = 200, body = OutcomeRecorded), (status = 400, description = "not completed/refused"),
              (status = 404), (status = 409, description = "never answered, or another outcome already recorded")))]
pub async fn record_outcome(
    State(app): State<AppState>,
    ApiPath(call_id): ApiPath<String>,
    ApiJson(body): ApiJson<DialogueOutcome>,
) -> Result<Json<OutcomeRecorded>, ApiError> {
    let (attempt, contact) = app.store.record_outcome(&call_id, body.outcome).await?;
    Ok(Json(OutcomeRecorded { attempt, contact }))
}
