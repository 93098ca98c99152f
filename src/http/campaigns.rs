//! The dialer's and the operator's campaign endpoints (SPEC §11): list and read
//! campaigns, pause/resume/stop them, their statistics, the claim of due
//! contacts, their contacts page by page, and the per-contact results as CSV.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::page::{self, ApiQuery, PageQuery};
use super::{ApiError, AppState};
use crate::domain::{Campaign, CampaignStatus, Contact, ContactState, Provider};
use crate::store::CampaignStats;

#[derive(Debug, Deserialize)]
pub struct CampaignQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    pub campaigns: Vec<Campaign>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

fn parse_filter<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<Option<T>, ApiError> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", format!("`{v}` is not a valid {name}"))
            })
        })
        .transpose()
}

/// Campaigns, oldest first.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    params(
        ("status" = Option<CampaignStatus>, Query, description = "only campaigns in this status"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]*$", description = "`next_cursor` of the previous page, as issued"),
    ),
    responses(
        (status = 200, description = "a page of campaigns", body = CampaignPage),
        (status = 400, description = "`invalid_filter`, `invalid_limit`, `limit_too_large` or `invalid_cursor`"),
    ))]
pub async fn list(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<CampaignQuery>,
) -> Result<Json<CampaignPage>, ApiError> {
    let status: Option<CampaignStatus> = parse_filter("campaign status", q.status.as_deref())?;
    let limit = q.page.limit()?;
    let filter = status.map_or("", CampaignStatus::as_str);
    let after = match q.page.cursor() {
        None => None,
        Some(c) => {
            let position = page::decode("campaigns", filter, c)?;
            let bad = || ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", "the cursor is not valid");
            let (ts, id) = position.split_once(' ').ok_or_else(bad)?;
            Some((ts.parse().map_err(|_| bad())?, id.parse().map_err(|_| bad())?))
        }
    };
    let campaigns = app.store.campaigns(status, after, limit).await?;
    let next_cursor = (campaigns.len() as i64 == limit)
        .then(|| {
            campaigns
                .last()
                .map(|k| page::encode("campaigns", filter, &format!("{} {}", k.created_at.to_rfc3339(), k.id)))
        })
        .flatten();
    Ok(Json(CampaignPage { campaigns, next_cursor }))
}

async fn campaign_or_404(app: &AppState, id: Uuid) -> Result<Campaign, ApiError> {
    app.store
        .campaign(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("campaign `{id}` not found")))
}

/// A campaign.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the campaign", body = Campaign),
        (status = 400, description = "the id is not a UUID (`invalid_path`)"),
        (status = 404, description = "no such campaign"),
    ))]
pub async fn get(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<Campaign>, ApiError> {
    Ok(Json(campaign_or_404(&app, id).await?))
}

async fn set_status(app: AppState, id: Uuid, status: CampaignStatus) -> Result<Json<Campaign>, ApiError> {
    Ok(Json(app.store.set_campaign_status(id, status).await?))
}

/// Pauses a campaign: no call is claimed or registered until it resumes; calls in
/// flight finish normally.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the campaign, `paused`", body = Campaign),
        (status = 404, description = "no such campaign"),
        (status = 409, description = "the campaign is stopped (`campaign_stopped`)"),
    ))]
pub async fn pause(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<Campaign>, ApiError> {
    set_status(app, id, CampaignStatus::Paused).await
}

/// Resumes a paused campaign.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the campaign, `running`", body = Campaign),
        (status = 404, description = "no such campaign"),
        (status = 409, description = "the campaign is stopped (`campaign_stopped`)"),
    ))]
pub async fn resume(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<Campaign>, ApiError> {
    set_status(app, id, CampaignStatus::Running).await
}

/// Stops a campaign for good: nothing is dialled again; calls in flight finish.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/stop", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the campaign, `stopped`", body = Campaign),
        (status = 404, description = "no such campaign"),
    ))]
pub async fn stop(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<Campaign>, ApiError> {
    set_status(app, id, CampaignStatus::Stopped).await
}

/// Where a campaign stands: contacts by state and last outcome, attempts
/// histogram, calls in flight, completion rate.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/stats", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the statistics", body = CampaignStats),
        (status = 404, description = "no such campaign"),
    ))]
pub async fn stats(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Json<CampaignStats>, ApiError> {
    Ok(Json(app.store.campaign_stats(id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DialRequest {
    /// How many contacts to claim, 1–1000.
    #[serde(default, deserialize_with = "crate::store::whole_i32")]
    #[schema(required = true, value_type = i64, minimum = 1, maximum = 1000)]
    pub limit: Option<i32>,
    /// The provider the calls are placed with; default: the service's default.
    #[serde(default)]
    pub provider: Option<Provider>,
}

/// One claimed contact: dial `phone_number` with `status_callback_url`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DialCall {
    pub call_id: String,
    pub status_callback_url: String,
    pub contact_id: Uuid,
    pub phone_number: String,
    pub external_id: Option<String>,
    pub attempt_number: i32,
    pub provider: Provider,
    /// The zone the contact is called in.
    pub timezone: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DialResponse {
    pub campaign_id: Uuid,
    /// Registered calls to place now; empty when nothing is due, every open zone
    /// is outside its window, or the concurrency cap is reached.
    pub calls: Vec<DialCall>,
}

/// The dialer's loop: claims up to `limit` due contacts (pending, due, inside
/// their calling window now, not do-not-call, under the concurrency cap) and
/// registers an attempt for each, atomically. Concurrent callers never receive the
/// same contact.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/dial", tag = "campaigns", request_body = DialRequest,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the calls to place", body = DialResponse),
        (status = 400, description = "`invalid_limit`, `limit_too_large`, or malformed JSON"),
        (status = 404, description = "no such campaign"),
        (status = 409, description = "the campaign is not running (`campaign_not_running`)"),
    ))]
pub async fn dial(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DialRequest>,
) -> Result<Json<DialResponse>, ApiError> {
    let limit = body.limit.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_limit", "limit is required: how many contacts to claim, 1–1000")
    })?;
    let limit = page::check_limit(i64::from(limit))?;
    let provider = body.provider.unwrap_or(app.default_provider);
    Ok(Json(claim(&app, &headers, id, limit as usize, provider).await?))
}

/// Claims due contacts and describes each call to place (`POST …/dial` and
/// `callhook campaigns dial`).
pub async fn claim(
    app: &AppState,
    headers: &HeaderMap,
    id: Uuid,
    limit: usize,
    provider: Provider,
) -> Result<DialResponse, ApiError> {
    // Whatever could fail once calls are registered is checked before: a claim
    // that committed is never answered with an error.
    app.external_url.build(headers, "/")?;
    let (campaign, registered) = app.store.claim_due(id, limit, provider).await?;
    let schedule = campaign.schedule();
    let mut calls = Vec::with_capacity(registered.len());
    for r in registered {
        calls.push(DialCall {
            status_callback_url: super::admin::status_callback_url(app, headers, &r.attempt)?,
            call_id: r.attempt.call_id,
            contact_id: r.contact.id,
            timezone: schedule.zone_for(&r.contact).name().to_owned(),
            phone_number: r.contact.phone_number,
            external_id: r.contact.external_id,
            attempt_number: r.attempt.attempt_number,
            provider: r.attempt.provider,
        });
    }
    Ok(DialResponse { campaign_id: id, calls })
}

#[derive(Debug, Deserialize)]
pub struct ContactQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A campaign's contacts, in a stable order.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/contacts", tag = "campaigns", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "campaign id"),
        ("state" = Option<ContactState>, Query, description = "only contacts in this state"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]*$", description = "`next_cursor` of the previous page, as issued"),
    ),
    responses(
        (status = 200, description = "a page of contacts", body = ContactPage),
        (status = 400, description = "`invalid_filter`, `invalid_limit`, `limit_too_large` or `invalid_cursor`"),
        (status = 404, description = "no such campaign"),
    ))]
pub async fn contacts(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ContactQuery>,
) -> Result<Json<ContactPage>, ApiError> {
    let state: Option<ContactState> = parse_filter("contact state", q.state.as_deref())?;
    let limit = q.page.limit()?;
    let filter = format!("{id}|{}", state.map_or("", ContactState::as_str));
    let after = match q.page.cursor() {
        None => None,
        Some(c) => Some(
            page::decode("contacts", &filter, c)?
                .parse::<Uuid>()
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", "the cursor is not valid"))?,
        ),
    };
    campaign_or_404(&app, id).await?;
    let contacts = app.store.contacts(id, state, after, limit).await?;
    let next_cursor = (contacts.len() as i64 == limit)
        .then(|| contacts.last().map(|c| page::encode("contacts", &filter, &c.id.to_string())))
        .flatten();
    Ok(Json(ContactPage { contacts, next_cursor }))
}

/// Rows per page read while streaming the CSV export.
const EXPORT_PAGE: i64 = 2000;

/// Per-contact results as CSV (RFC 4180), streamed page by page: the contact, its
/// state and last outcome, and its latest call.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/results.csv", tag = "campaigns", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "campaign id")),
    responses(
        (status = 200, description = "one row per contact", content_type = "text/csv", body = String),
        (status = 404, description = "no such campaign"),
    ))]
pub async fn results_csv(State(app): State<AppState>, ApiPath(id): ApiPath<Uuid>) -> Result<Response, ApiError> {
    campaign_or_404(&app, id).await?;
    let header_row = crate::export::csv_header();
    let pages = futures_util::stream::unfold(Some(None), move |after: Option<Option<Uuid>>| {
        let store = app.store.clone();
        async move {
            let after = after?;
            match store.results(id, after, EXPORT_PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = (rows.len() as i64 == EXPORT_PAGE).then(|| rows.last().map(|r| r.contact.id));
                    Some((crate::export::csv_rows(&rows), next))
                }
                // Headers are sent: a failure can only cut the body short, which
                // the client sees as an incomplete transfer.
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let body = futures_util::StreamExt::chain(futures_util::stream::iter([header_row]), pages);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"campaign-{id}-results.csv\""))
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e.to_string()))
}
