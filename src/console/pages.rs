//! The console's pages: each reads the store (as the admin API does) and renders
//! one template. Forms POST with the session's CSRF token and redirect after.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use minijinja::context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::charts::{self, bars, percent, stacked};
use super::session::{self, Session};
use super::{render, PageError};
use crate::domain::{CampaignStatus, ContactState};
use crate::http::AppState;
use crate::store::{CampaignStats, Cutoffs, OutboxStats, ReconcileStats};

const PAGE: i64 = 50;

/// The order states are drawn in: finished first, then what is still to come.
const STATE_ORDER: [&str; 6] = ["completed", "refused", "not_reached", "excluded", "in_progress", "pending"];

type Page = Result<Html<String>, PageError>;

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    reason: Option<String>,
}

pub async fn login_form(Query(q): Query<LoginQuery>) -> Page {
    let notice = match q.reason.as_deref() {
        Some("expired") => Some("Your session expired. Sign in again."),
        Some("signin") => Some("Sign in to continue."),
        Some("bye") => Some("You are signed out."),
        _ => None,
    };
    render("login.html", context! { notice, title => "Sign in" })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

pub async fn login(State(app): State<AppState>, form: Result<Form<LoginForm>, FormRejection>) -> Response {
    let token = form.map(|Form(f)| f.token).unwrap_or_default();
    let Some(token) = session::token_matches(&app.admin_tokens, token.trim()) else {
        let page = render("login.html", context! { error => "That token is not valid.", title => "Sign in" });
        return (StatusCode::UNAUTHORIZED, page).into_response();
    };
    let cookie = session::set_cookie(Some(&session::issue(&token, chrono::Utc::now())), secure(&app));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/campaigns")).into_response()
}

pub async fn logout(
    State(app): State<AppState>,
    Extension(s): Extension<Session>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if let Err(e) = check_csrf(&s, form) {
        return e.into_response();
    }
    let cookie = session::set_cookie(None, secure(&app));
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login?reason=bye")).into_response()
}

/// Cookies are `Secure` when callhook is reached over HTTPS.
fn secure(app: &AppState) -> bool {
    app.external_url.public_base_url.as_deref().is_some_and(|u| u.starts_with("https://"))
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

fn check_csrf(s: &Session, form: Result<Form<CsrfForm>, FormRejection>) -> Result<(), PageError> {
    let submitted = form.ok().and_then(|Form(f)| f.csrf);
    if session::csrf_matches(s, submitted.as_deref()) {
        Ok(())
    } else {
        Err(PageError::Forbidden("this form is out of date or was not sent from the console; reload the page".into()))
    }
}

/// The service's health as the campaigns page's strip and the health page show
/// it: the outbox, the reconciler's gauges and this replica's spool.
#[derive(Debug, Serialize)]
struct Vitals {
    outbox: OutboxStats,
    reconcile: ReconcileStats,
    spool: Option<crate::spool::SpoolStatus>,
}

async fn vitals(app: &AppState, cutoffs: Cutoffs) -> Result<Vitals, PageError> {
    Ok(Vitals {
        outbox: app.store.outbox_stats().await?,
        reconcile: app.store.reconcile_stats(cutoffs).await?,
        spool: app.spool.as_ref().and_then(|s| s.last_status()),
    })
}

/// A campaign's contacts by state, in drawing order, and its stacked bar.
fn state_bar(stats: &CampaignStats) -> Vec<charts::Segment> {
    let parts: Vec<(&str, i64)> =
        STATE_ORDER.iter().map(|s| (*s, stats.by_state.get(*s).copied().unwrap_or(0))).collect();
    stacked(&parts)
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    /// The last campaign of the previous page: `created_at` (RFC 3339) and id.
    after_at: Option<String>,
    after_id: Option<String>,
}

pub async fn campaigns(
    State(app): State<AppState>,
    Extension(s): Extension<Session>,
    Query(q): Query<ListQuery>,
) -> Page {
    let status: Option<CampaignStatus> = filter(q.status.as_deref(), "campaign status")?;
    let after = match (q.after_at.as_deref(), q.after_id.as_deref()) {
        (Some(at), Some(id)) => {
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| PageError::BadRequest(format!("`{at}` is not an RFC 3339 instant")))?;
            Some((at.with_timezone(&chrono::Utc), uuid(id, "campaign")?))
        }
        _ => None,
    };
    let list = app.store.campaigns(status, after, PAGE).await?;
    let next = (list.len() as i64 == PAGE)
        .then(|| list.last().map(|k| context! { at => k.created_at.to_rfc3339(), id => k.id }))
        .flatten();
    let mut rows = vec![];
    for campaign in &list {
        let stats = app.store.campaign_stats(campaign.id).await?;
        rows.push(context! {
            campaign,
            contacts => stats.contacts,
            finished => percent(stats.finished_rate),
            completion => percent(stats.completion_rate),
            in_flight => stats.calls_in_flight,
            bar => state_bar(&stats),
        });
    }
    let vitals = vitals(&app, Cutoffs::at(chrono::Utc::now(), &app.timeouts)).await?;
    render(
        "campaigns.html",
        context! { title => "Campaigns", nav => "campaigns", csrf => s.csrf, rows, vitals, status => q.status, next },
    )
}

#[derive(Debug, Deserialize)]
pub struct ContactsQuery {
    state: Option<String>,
    after: Option<String>,
}

pub async fn campaign(
    State(app): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<ContactsQuery>,
) -> Page {
    let id = uuid(&id, "campaign")?;
    let campaign = app.store.campaign(id).await?.ok_or_else(|| PageError::NotFound(format!("no campaign `{id}`")))?;
    let state: Option<ContactState> = filter(q.state.as_deref(), "contact state")?;
    let after = q.after.as_deref().filter(|v| !v.is_empty()).map(|v| uuid(v, "contact")).transpose()?;
    let stats = app.store.campaign_stats(id).await?;
    let contacts = app.store.contacts(id, state, after, PAGE).await?;
    let next = (contacts.len() as i64 == PAGE).then(|| contacts.last().map(|c| c.id)).flatten();
    let tabs: Vec<_> = STATE_ORDER
        .iter()
        .map(|s| context! { state => s, count => stats.by_state.get(*s).copied().unwrap_or(0) })
        .collect();
    let mut outcomes: Vec<(String, i64)> = stats.by_last_outcome.iter().map(|(k, v)| (k.clone(), *v)).collect();
    outcomes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    render(
        "campaign.html",
        context! {
            title => campaign.name.clone(), nav => "campaigns", csrf => s.csrf, campaign, stats,
            finished => percent(stats.finished_rate), completion => percent(stats.completion_rate),
            bar => state_bar(&stats), outcomes => bars(&outcomes), tabs, contacts,
            state => state.map(|s| s.as_str()), next,
        },
    )
}

pub async fn contact(State(app): State<AppState>, Extension(s): Extension<Session>, Path(id): Path<String>) -> Page {
    let id = uuid(&id, "contact")?;
    let contact = app.store.contact(id).await?.ok_or_else(|| PageError::NotFound(format!("no contact `{id}`")))?;
    let campaign = app.store.campaign(contact.campaign_id).await?;
    let attempts = app.store.attempts_of_contact(id).await?;
    render(
        "contact.html",
        context! { title => contact.phone_number.clone(), nav => "campaigns", csrf => s.csrf, contact, campaign, attempts },
    )
}

/// One line of a call's timeline.
#[derive(Debug, Serialize)]
struct Moment {
    at: chrono::DateTime<chrono::Utc>,
    /// `callback`, `reconcile`, `spool` or `job`.
    source: String,
    what: String,
    detail: String,
    account: Option<String>,
}

pub async fn call(State(app): State<AppState>, Extension(s): Extension<Session>, Path(call_id): Path<String>) -> Page {
    let attempt =
        app.store.attempt(&call_id).await?.ok_or_else(|| PageError::NotFound(format!("no call `{call_id}`")))?;
    let events = app.store.events_for_call(&call_id).await?;
    let jobs = app.store.jobs_of_call(&call_id).await?;
    let mut timeline: Vec<Moment> = events
        .iter()
        .map(|e| Moment {
            at: e.received_at,
            source: e.source.as_str().to_owned(),
            what: e.event_type.clone().unwrap_or_else(|| e.provider_status.clone()),
            detail: format!("{} · provider status {}", e.disposition.as_str(), e.provider_status),
            account: e.account_sid.clone(),
        })
        .collect();
    timeline.extend(jobs.iter().map(|j| Moment {
        at: j.created_at,
        source: "job".into(),
        what: j.kind.clone(),
        detail: format!(
            "{} after {} attempt(s){}",
            j.status,
            j.attempts,
            j.last_error.as_deref().map(|e| format!(" · {e}")).unwrap_or_default()
        ),
        account: None,
    }));
    timeline.sort_by_key(|m| m.at);
    let contact = app.store.contact(attempt.contact_id).await?;
    render(
        "call.html",
        context! { title => format!("Call {call_id}"), nav => "campaigns", csrf => s.csrf, attempt, contact, timeline, jobs },
    )
}

#[derive(Debug, Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
    notice: Option<String>,
}

pub async fn outbox(
    State(app): State<AppState>,
    Extension(s): Extension<Session>,
    Query(q): Query<OutboxQuery>,
) -> Page {
    let status = q.status.as_deref().filter(|v| !v.is_empty()).unwrap_or("dead");
    if !["pending", "dead", "done", "expired"].contains(&status) {
        return Err(PageError::BadRequest(format!("unknown job status `{status}`")));
    }
    let jobs = app.store.outbox_in(status, 200).await?;
    let stats = app.store.outbox_stats().await?;
    let notice = match q.notice.as_deref() {
        Some("retried") => Some("The job is due again; the dispatcher picks it up within its poll interval."),
        Some("not_retried") => Some("The job was not retried: it was delivered, expired or is being delivered now."),
        _ => None,
    };
    render("outbox.html", context! { title => "Outbox", nav => "outbox", csrf => s.csrf, jobs, stats, status, notice })
}

pub async fn retry(
    State(app): State<AppState>,
    Extension(s): Extension<Session>,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Redirect, PageError> {
    check_csrf(&s, form)?;
    let id = uuid(&id, "job")?;
    let notice = if app.store.retry_job(id).await? { "retried" } else { "not_retried" };
    Ok(Redirect::to(&format!("/ui/outbox?status=dead&notice={notice}")))
}

pub async fn health(State(app): State<AppState>, Extension(s): Extension<Session>) -> Page {
    let now = chrono::Utc::now();
    let cutoffs = Cutoffs::at(now, &app.timeouts);
    let quiet = app.store.quiet_calls(cutoffs, 100).await?;
    let vitals = vitals(&app, cutoffs).await?;
    let oldest_pending = vitals.outbox.oldest_pending_at.map(|t| (now - t).num_seconds());
    render(
        "health.html",
        context! { title => "Health", nav => "health", csrf => s.csrf, quiet, vitals, oldest_pending },
    )
}

/// A filter from the query string: absent or empty is none; anything else must parse.
fn filter<T: std::str::FromStr>(value: Option<&str>, what: &str) -> Result<Option<T>, PageError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map(Some).map_err(|_| PageError::BadRequest(format!("unknown {what} `{v}`"))),
        None => Ok(None),
    }
}

fn uuid(text: &str, what: &str) -> Result<Uuid, PageError> {
    text.parse().map_err(|_| PageError::BadRequest(format!("`{text}` is not a {what} id")))
}
