//! End to end: the dashboard's parked deliveries in a real headless Chromium (as
//! `dashboard_browser.rs`: Debian's `chromium`, `playwright-core` from `tests/browser/`).
//!
//! The host runs the account-notifier reactor against a webhook served by this test that refuses
//! every request until two notifications (two accounts, so two keys) are parked; then it
//! recovers, and `tests/browser/deliveries.test.mjs` retries one from the page and drops the
//! other. Afterwards this test checks through the webhook and the admin API that the page's
//! actions happened: the retried one arrived once under its message id, the dropped one never,
//! and the drop is recorded as the dashboard's.
//!
//! Without Chromium or playwright-core the test says so and passes — unless
//! `SLUICE_REQUIRE_BROWSER=1` (scripts/test sets it where it installs them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;
use sluice_e2e::{Check, Host, HostOptions, Plugin, wait_until};

const TOKEN: &str = "deliveries-browser-token";
const BROWSER_RUN: Duration = Duration::from_secs(180);

/// The webhook: refuses while `down`, records the idempotency keys it took.
#[derive(Default)]
struct Webhook {
    down: AtomicBool,
    keys: Mutex<Vec<String>>,
}

async fn notify(State(hook): State<Arc<Webhook>>, headers: HeaderMap) -> StatusCode {
    if hook.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    hook.keys.lock().unwrap_or_else(PoisonError::into_inner).push(key);
    StatusCode::OK
}

/// Chromium and the script, or why they are missing.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let chromium =
        std::env::var_os("SLUICE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.is_file() {
        return Err(format!("no Chromium at {}", chromium.display()));
    }
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !folder.join("node_modules/playwright-core/package.json").is_file() {
        return Err(format!("playwright-core is not installed: run `npm ci` in {}", folder.display()));
    }
    Ok((chromium, folder.join("deliveries.test.mjs")))
}

#[tokio::test]
async fn the_dashboard_retries_and_drops_parked_deliveries_in_headless_chromium() -> Result<()> {
    let (chromium, script) = match browser() {
        Ok(found) => found,
        Err(why) if std::env::var("SLUICE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => bail!("{why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            return Ok(());
        }
    };
    let hook = Arc::new(Webhook { down: AtomicBool::new(true), ..Webhook::default() });
    let app = axum::Router::new().route("/notify", axum::routing::post(notify)).with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("sluice.toml");
    let text = format!(
        "[channels.notifications]\nwebhook = \"http://{addr}/notify\"\n\n[delivery]\nattempts = 2\nbackoff_ms = 5\n"
    );
    std::fs::write(&config, text)?;
    let host = Host::start(
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountNotifier])
            .arg("--config")
            .arg(config.display().to_string())
            .admin_token(TOKEN),
    )
    .await?;
    let (ada, bob) = (host.open_account("Ada", "5").await?, host.open_account("Bob", "5").await?);
    let (first, second) = (host.deposit(&ada, "1").await?, host.deposit(&bob, "1").await?);
    let retry = format!("delivery:account-notifier:{first}:0");
    let drop = format!("delivery:account-notifier:{second}:0");
    wait_until("both notifications parked", Duration::from_secs(30), || async {
        let listing = host.admin_get("/admin/dead-letters").await?.expect_status(200)?;
        let parked = listing.body["deliveries"].as_array().map_or(0, Vec::len);
        Ok(if parked == 2 { Check::Done(()) } else { Check::NotYet(listing.to_string()) })
    })
    .await?;
    hook.down.store(false, Ordering::SeqCst);

    let mut node = tokio::process::Command::new("node");
    node.arg(&script)
        .env("SLUICE_URL", host.base_url())
        .env("SLUICE_ADMIN_TOKEN", TOKEN)
        .env("SLUICE_CHROMIUM", &chromium)
        .env("SLUICE_RETRY", &retry)
        .env("SLUICE_DROP", &drop)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_RUN, node.output())
        .await
        .context("the browser run did not finish in time")?
        .context("failed to run node (Node 20 is needed)")?;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("--- deliveries.test.mjs stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    ensure!(output.status.success(), "the browser run failed ({}); host log:\n{}", output.status, host.log());

    // The retried one arrived, once, under its message id; the dropped one never did.
    let retried_key = retry.trim_start_matches("delivery:").to_owned();
    wait_until("the retried notification arrived", Duration::from_secs(30), || async {
        let keys = hook.keys.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Ok(if keys.contains(&retried_key) { Check::Done(()) } else { Check::NotYet(format!("{keys:?}")) })
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys = hook.keys.lock().unwrap_or_else(PoisonError::into_inner).clone();
    ensure!(keys == [retried_key], "only the retried notification, once: {keys:?}");
    let listing = host.admin_get("/admin/dead-letters").await?.expect_status(200)?;
    ensure!(listing.body["deliveries"] == json!([]), "{listing}");
    let dropped = &listing.body["droppedDeliveries"];
    ensure!(dropped[0]["id"] == drop.as_str() && dropped[0]["droppedBy"] == "dashboard", "{listing}");
    Ok(())
}
