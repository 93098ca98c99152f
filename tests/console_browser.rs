//! The console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver, against the real server on both
//! stores: sign in, open a campaign and find the API's numbers, retry a dead job,
//! sign out; a wrong token sees nothing; no page logs a console error.
//! `CALLHOOK_REQUIRE_BROWSER=1` (CI) makes a missing browser a failure.

#[macro_use]
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use callhook::domain::{EventType, Provider};
use callhook::http::Limits;
use callhook::store::{NewAttempt, NewCampaign, NewContact, Store};
use common::*;

const NAME: &str = "Autumn <b>NPS</b> <img src=x onerror=alert(1)>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_operator_works_through_the_console_in_a_real_browser() {
    an_operator_works_through_the_console(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_operator_works_through_the_console_in_a_real_browser() {
    let Some(db) = postgres().await else { return };
    an_operator_works_through_the_console(db).await;
}

/// chromedriver on a free port, or `None` (skipped) when it is not installed.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Option<Driver> {
    let path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(path) = path else {
        assert!(
            std::env::var_os("CALLHOOK_REQUIRE_BROWSER").is_none(),
            "chromedriver is not installed (chromium-driver)"
        );
        eprintln!("Browser test SKIPPED: chromedriver is not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(path).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    // Owned by the guard at once, so that it is killed and reaped whatever happens.
    let driver = Driver { child: child.expect("start chromedriver"), url: format!("http://127.0.0.1:{port}") };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium",
               "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// chromedriver's browser log (`POST /session/{id}/se/log`), emptied by each read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// The console errors (and failed loads) logged since the last call.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits for `css` to be on the page (a click's navigation may still be going on).
async fn wait_for(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
}

async fn click(c: &Client, css: &str, then: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    wait_for(c, then).await;
}

async fn text(c: &Client, css: &str) -> String {
    wait_for(c, css).await;
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap().trim().to_owned()
}

async fn sign_in(c: &Client, base: &str, token: &str, then: &str) {
    c.goto(&format!("{base}/ui/login")).await.unwrap();
    c.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    click(c, "#signin", then).await;
}

async fn an_operator_works_through_the_console(db: TestDb) {
    let Some(driver) = driver().await else { return };
    let store = db.store.clone();
    let (campaign, job) = seed(&store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = callhook::http::router(state(store.clone()), Limits::default());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = browser(&driver).await;
    let mut visited = vec![];

    // Not signed in, and a wrong token: the login page, nothing else.
    c.goto(&format!("{base}/ui/campaigns/{}", campaign.id)).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    sign_in(&c, &base, "not-the-token", "#login-error").await;
    assert_eq!(text(&c, "#login-error").await, "That token is not valid.");
    assert!(!c.source().await.unwrap().contains("Autumn"));
    assert!(c.get_all_cookies().await.unwrap().is_empty());
    // The 401 is logged as a failed load: proof that the log is read at all.
    let refused = console_errors(&c).await;
    assert!(refused.iter().any(|e| e.contains("401")), "{refused:?}");

    // Signed in: the campaigns list, the campaign's name shown as text.
    sign_in(&c, &base, ADMIN_TOKEN, "#campaigns").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/campaigns"));
    let cookie = c.get_named_cookie("callhook_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site().map(|s| s.to_string()).as_deref(), Some("Strict"));
    let row = format!("tr[data-campaign='{}'] a.name", campaign.id);
    assert_eq!(text(&c, &row).await, NAME);
    let injected: serde_json::Value =
        c.execute("return document.querySelectorAll('main img, main b, script').length", vec![]).await.unwrap();
    assert_eq!(injected, json!(0), "nothing stored became markup");
    visited.push(("campaigns", console_errors(&c).await));

    // The campaign: the same numbers as the API.
    click(&c, &row, "#stat-contacts").await;
    let (_, stats) = send(
        &callhook::http::router(state(store.clone()), Limits::default()),
        admin("GET", &format!("/api/v1/campaigns/{}/stats", campaign.id), None),
    )
    .await;
    assert_eq!(text(&c, "#stat-contacts").await, stats["contacts"].to_string());
    assert_eq!(text(&c, "#stat-completed").await, stats["by_state"]["completed"].to_string());
    assert_eq!(text(&c, "#stat-in-flight").await, stats["calls_in_flight"].to_string());
    click(&c, "#state-tabs a[data-state='pending']", "#state-tabs a[data-state='pending'][aria-current]").await;
    assert_eq!(c.find_all(Locator::Css("#contacts tbody tr")).await.unwrap().len(), 2);
    visited.push(("campaign", console_errors(&c).await));

    // A contact, then its call's timeline.
    c.goto(&format!("{base}/ui/campaigns/{}?state=in_progress", campaign.id)).await.unwrap();
    click(&c, "#contacts tbody a", "#attempts").await;
    visited.push(("contact", console_errors(&c).await));
    click(&c, "#attempts tbody a", "#call-status").await;
    assert_eq!(text(&c, "#call-status").await, "answered");
    assert_eq!(c.find_all(Locator::Css("#timeline li")).await.unwrap().len(), 2);
    visited.push(("call", console_errors(&c).await));

    // The outbox: retry the dead job.
    c.goto(&format!("{base}/ui/outbox")).await.unwrap();
    assert_eq!(text(&c, "#count-dead").await, "1");
    click(&c, &format!("tr[data-job='{job}'] button.retry"), "#notice").await;
    assert!(text(&c, "#notice").await.contains("due again"));
    assert_eq!(text(&c, "#count-dead").await, "0");
    assert_eq!(store.outbox_in("pending", 10).await.unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), [job]);
    visited.push(("outbox", console_errors(&c).await));

    c.goto(&format!("{base}/ui/health")).await.unwrap();
    assert_eq!(text(&c, "#stranded").await, "0");
    visited.push(("health", console_errors(&c).await));

    // Sign out: back to the login page, and the console is closed again.
    click(&c, "#logout", "#notice").await;
    assert_eq!(text(&c, "#notice").await, "You are signed out.");
    c.goto(&format!("{base}/ui/outbox")).await.unwrap();
    wait_for(&c, "#token").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    visited.push(("login", console_errors(&c).await));

    for (page, errors) in &visited {
        assert!(errors.is_empty(), "{page} logged console errors: {errors:?}");
    }
    if let Some(dir) = std::env::var_os("CALLHOOK_CONSOLE_SCREENSHOTS") {
        sign_in(&c, &base, ADMIN_TOKEN, "#campaigns").await;
        c.goto(&format!("{base}/ui/campaigns/{}", campaign.id)).await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join("browser-campaign.png"), c.screenshot().await.unwrap()).unwrap();
    }
    c.close().await.unwrap();
    db.cleanup().await;
}

/// A campaign with a completed, an answered (with a dead dialogue.start) and two
/// pending contacts.
async fn seed(store: &Arc<dyn Store>) -> (callhook::domain::Campaign, uuid::Uuid) {
    let new = NewCampaign { timezone: Some(daytime_zone()), ..NewCampaign::named(NAME) };
    let campaign = store.create_campaign(new).await.unwrap();
    let phones = ["+14155550141", "+14155550142", "+14155550143", "+14155550144"];
    let contacts = add_contacts(store, &campaign, phones.into_iter().map(NewContact::phone).collect()).await;
    let done = store.register_attempt(NewAttempt::new(contacts[0].id, Provider::Twilio)).await.unwrap().attempt.call_id;
    for (status, t) in [("in-progress", EventType::Answered), ("completed", EventType::Completed)] {
        store.record_event(&call_event(&done, "CA-b1", status, t)).await.unwrap();
    }
    store.record_outcome(&done, callhook::domain::Outcome::Completed).await.unwrap();
    let claimed = store.claim_jobs(10, Duration::from_secs(30)).await.unwrap();
    store.complete_jobs(claimed.lease, &claimed.jobs.iter().map(|j| j.id).collect::<Vec<_>>()).await.unwrap();
    let live = store.register_attempt(NewAttempt::new(contacts[1].id, Provider::Twilio)).await.unwrap().attempt.call_id;
    store.record_event(&call_event(&live, "CA-b2", "in-progress", EventType::Answered)).await.unwrap();
    let claimed = store.claim_jobs(10, Duration::from_secs(30)).await.unwrap();
    let job = claimed.jobs[0].id;
    store.fail_job(claimed.lease, job, "HTTP 503 from the orchestrator", None).await.unwrap();
    (campaign, job)
}
