//! End to end: the dashboard at `/` in a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `tests/browser/`, no browser download), against a real `sluice serve`.
//!
//! This test starts the host (the bank account and the brittle `accounts` projection, which
//! refuses every withdrawal), parks two dead letters, then runs `tests/browser/dashboard.test.mjs`
//! with node. The script types the admin token into the page and checks what an operator sees
//! and does: no console errors, the plugins listed, lag back to 0 after a burst of commands, the
//! live events, one letter dropped from the page, the fixed projection uploaded from the page,
//! the other letter retried from the page,
//! a rebuild's progress, a rollback and a roll forward through the swap history; it saves a
//! screenshot under the target folder (`<target>/tmp/dashboard.png`). Afterwards this test
//! checks through the admin API that the page's actions really happened.
//!
//! Needs `chromium` (or `SLUICE_CHROMIUM=/path`) and `npm ci` in `tests/browser/` (scripts/test
//! does both). Without them the test says so and passes — unless `SLUICE_REQUIRE_BROWSER=1`
//! (scripts/test sets it when `CI=true`), which makes a missing browser a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use sluice_e2e::{Check, Host, HostOptions, Plugin, sha256_hex, wait_until};

const TOKEN: &str = "dashboard-browser-token";
const SETTLE: Duration = Duration::from_secs(60);
/// The whole browser run, from launching Chromium to the screenshot.
const BROWSER_RUN: Duration = Duration::from_secs(240);

/// What the browser run needs, or why it cannot run here.
struct Browser {
    chromium: PathBuf,
    script: PathBuf,
}

fn browser() -> Result<Browser, String> {
    let chromium =
        std::env::var_os("SLUICE_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.is_file() {
        return Err(format!(
            "no Chromium at {} (apt-get install chromium, or set SLUICE_CHROMIUM)",
            chromium.display()
        ));
    }
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !folder.join("node_modules/playwright-core/package.json").is_file() {
        return Err(format!("playwright-core is not installed: run `npm ci` in {}", folder.display()));
    }
    Ok(Browser { chromium, script: folder.join("dashboard.test.mjs") })
}

/// Open `id` with 100 and withdraw 10 from it: the brittle projection parks the withdrawal.
async fn park_a_withdrawal(host: &Host, id: &str) -> Result<()> {
    let open = json!({ "accountHolder": id, "accountType": "SAVINGS", "openingBalance": 100 });
    host.command("BankAccount", id, "OpenAccount", &open, None).await?.expect_status(200)?;
    host.command("BankAccount", id, "WithdrawFunds", &json!({ "amount": 10 }), None).await?.expect_status(200)?;
    Ok(())
}

async fn parked_letters(host: &Host) -> Result<Vec<Value>> {
    let reply = host.admin_get("/admin/dead-letters?consumer=accounts").await?.expect_status(200)?;
    Ok(reply.body["letters"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn the_dashboard_shows_the_host_and_retries_a_dead_letter_in_headless_chromium() -> Result<()> {
    let browser = match browser() {
        Ok(browser) => browser,
        Err(missing) if std::env::var("SLUICE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            bail!("SLUICE_REQUIRE_BROWSER=1 but the browser test cannot run: {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED the dashboard browser test: {missing}");
            return Ok(());
        }
    };
    let config = tempfile::tempdir().context("failed to create a config folder")?;
    let config_file = config.path().join("sluice.toml");
    std::fs::write(&config_file, "[dead_letters]\nattempts = 2\nbackoff_ms = 50\n").context("failed to write")?;
    let options = HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjectionBrittle])
        .arg("--config")
        .arg(config_file.to_string_lossy().into_owned())
        .admin_token(TOKEN);
    let host = Host::start(options).await?;
    park_a_withdrawal(&host, "dash-1").await?;
    park_a_withdrawal(&host, "dash-2").await?;
    let letters = wait_until("both withdrawals are parked", SETTLE, || async {
        let letters = parked_letters(&host).await?;
        Ok(if letters.len() == 2 { Check::Done(letters) } else { Check::NotYet(format!("{letters:?}")) })
    })
    .await?;
    ensure!(letters.iter().all(|l| l["eventType"] == "FundsWithdrawnEvent"), "{letters:?}");

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let fixed = Plugin::AccountsProjection.path();
    let brittle = Plugin::AccountsProjectionBrittle.path();
    let mut node = tokio::process::Command::new("node");
    node.arg(&browser.script)
        .env("SLUICE_URL", host.base_url())
        .env("SLUICE_ADMIN_TOKEN", TOKEN)
        .env("SLUICE_CHROMIUM", &browser.chromium)
        .env("SLUICE_FIXED_COMPONENT", &fixed)
        .env("SLUICE_BRITTLE_COMPONENT", &brittle)
        .env("SLUICE_SCREENSHOT", &screenshot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_RUN, node.output())
        .await
        .with_context(|| format!("the browser run did not finish within {BROWSER_RUN:?}\n{}", host.log()))?
        .context("failed to run node (Node 20 is needed)")?;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("--- dashboard.test.mjs stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    ensure!(output.status.success(), "the browser run failed ({}); host log:\n{}", output.status, host.log());
    ensure!(screenshot.is_file(), "no screenshot at {}", screenshot.display());
    eprintln!("dashboard screenshot: {}", screenshot.display());

    // What the page did, seen through the admin API: the fixed version runs (rolled back and
    // forward again), the letter is gone and its withdrawal applied, nothing lags.
    let accounts = host.admin_plugin("accounts").await?.context("accounts is not loaded")?;
    ensure!(accounts["sha256"] == sha256_hex(&std::fs::read(&fixed)?), "the fixed version runs: {accounts}");
    ensure!(accounts["lag"] == 0 && accounts["status"] == "running", "{accounts}");
    ensure!(parked_letters(&host).await?.is_empty(), "one letter was retried, the other dropped from the page");
    let letters = host.admin_get("/admin/dead-letters?consumer=accounts").await?.expect_status(200)?;
    let dropped = letters.body["dropped"].as_array().cloned().unwrap_or_default();
    ensure!(dropped.len() == 1, "{letters}");
    ensure!(dropped[0]["aggregateId"] == "dash-2" && dropped[0]["droppedBy"] == "dashboard", "{letters}");
    let versions = host.admin_get("/admin/plugins/accounts/versions").await?.expect_status(200)?;
    ensure!(versions.body["versions"].as_array().is_some_and(|v| v.len() == 2), "{versions}");
    let head = accounts["head"].as_u64().context("no head")?;
    // The retried withdrawal is in the read model; the dropped one is skipped there for good.
    let ids = ["dash-1".to_owned(), "dash-2".to_owned()];
    let (truth, model) = (host.balances_by_replay(&ids).await?, host.balances_by_query(head).await?);
    ensure!(model.get("dash-1") == truth.get("dash-1"), "read model {model:?}, replay {truth:?}");
    ensure!(truth.get("dash-2").map(String::as_str) == Some("90"), "replay {truth:?}");
    ensure!(model.get("dash-2").map(String::as_str) == Some("100"), "read model {model:?}");
    Ok(())
}
