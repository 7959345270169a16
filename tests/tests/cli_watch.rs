//! End to end: the operator commands that watch a running host through its admin API —
//! `sluice status`, `sluice tail` and `sluice rebuild --url` with its progress — run as the real
//! binary against a real `sluice serve`, and the `/admin` routes they read (`/admin/events`, a
//! rebuild's progress), including how those refuse bad parameters.
//!
//! What each command prints is what an operator reads, so that is what is checked, against the
//! admin API and the positions the commands were answered with.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sluice_e2e::under_load::caught_up;
use sluice_e2e::{Host, HostOptions, Plugin, sha256_hex, sluice_bin};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "cli-watch-token";
const CATCH_UP: Duration = Duration::from_secs(60);

/// A `sluice` command with no inherited `SLUICE_*` variable.
fn sluice_command(args: &[&str]) -> Result<tokio::process::Command> {
    let mut command = std::process::Command::new(sluice_bin()?);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(&name);
        }
    }
    command.env("NO_COLOR", "1");
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    Ok(command)
}

/// Run `sluice ARGS…` to completion (bounded): success, stdout, stderr.
async fn sluice(args: &[&str]) -> Result<(bool, String, String)> {
    let output = tokio::time::timeout(Duration::from_secs(120), sluice_command(args)?.output())
        .await
        .with_context(|| format!("sluice {args:?} did not finish within 120 s"))?
        .context("failed to run sluice")?;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("sluice {args:?} -> {}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}", output.status);
    Ok((output.status.success(), stdout.into_owned(), stderr.into_owned()))
}

async fn host() -> Result<Host> {
    Host::start(HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection]).admin_token(TOKEN)).await
}

/// Open `id` and deposit into it `deposits` times; answers the events' positions.
async fn history(host: &Host, id: &str, deposits: usize) -> Result<Vec<u64>> {
    let open = json!({ "accountHolder": id, "accountType": "SAVINGS", "openingBalance": 10 });
    let mut positions = vec![
        host.command("BankAccount", id, "OpenAccount", &open, None).await?.expect_status(200)?.u64_field("position")?,
    ];
    for _ in 0..deposits {
        let reply = host.command("BankAccount", id, "DepositFunds", &json!({ "amount": 1 }), None).await?;
        positions.push(reply.expect_status(200)?.u64_field("position")?);
    }
    Ok(positions)
}

#[tokio::test]
async fn status_prints_each_plugin_with_its_position_head_lag_and_letters() -> Result<()> {
    let host = host().await?;
    let positions = history(&host, "status-1", 4).await?;
    let head = *positions.last().context("no events")?;
    caught_up(&host, "accounts", CATCH_UP).await?;
    let url = host.base_url().to_owned();

    let (ok, stdout, _) = sluice(&["status", "--url", &url, "--token", TOKEN]).await?;
    ensure!(ok, "sluice status failed");
    let mut lines = stdout.lines();
    ensure!(lines.next() == Some(format!("head {head}, 2 plugin(s)").as_str()), "the first line: {stdout}");
    let header: Vec<&str> = lines.next().context("no header")?.split_whitespace().collect();
    ensure!(header == ["NAME", "KIND", "STATUS", "SHA256", "POSITION", "HEAD", "LAG", "LETTERS"], "{header:?}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let row = |name: &str| rows.iter().find(|r| r.first() == Some(&name)).cloned();
    let bank_sha = sha256_hex(&Plugin::BankAccount.bytes()?);
    let accounts_sha = sha256_hex(&Plugin::AccountsProjection.bytes()?);
    let head = head.to_string();
    ensure!(
        row("BankAccount") == Some(vec!["BankAccount", "aggregate", "running", &bank_sha[..12], "-", &head, "-", "-"]),
        "{rows:?}"
    );
    ensure!(
        row("accounts") == Some(vec!["accounts", "projection", "running", &accounts_sha[..12], &head, &head, "0", "0"]),
        "{rows:?}"
    );
    ensure!(rows.len() == 2, "{rows:?}");

    // A wrong token is refused with the host's reason; no --url says what to pass.
    let (ok, _, stderr) = sluice(&["status", "--url", &url, "--token", "wrong"]).await?;
    ensure!(!ok && stderr.contains("401") && stderr.contains("not the admin token"), "{stderr}");
    let (ok, _, stderr) = sluice(&["status"]).await?;
    ensure!(!ok && stderr.contains("pass --url"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn tail_follows_the_events_appended_while_it_runs() -> Result<()> {
    let host = host().await?;
    let before = history(&host, "tail-0", 1).await?;
    let after = before.last().context("no events")?.to_string();
    let url = host.base_url().to_owned();

    // Started first: it waits (long polls) until the events come.
    let mut tail =
        sluice_command(&["tail", "--url", &url, "--token", TOKEN, "--after", &after, "--count", "6"])?.spawn()?;
    let stdout = tail.stdout.take().context("no stdout")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut positions = history(&host, "tail-1", 2).await?;
    positions.extend(history(&host, "tail-2", 2).await?);
    positions.sort_unstable();

    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            printed.push(serde_json::from_str::<Value>(&line).with_context(|| format!("not JSON: {line}"))?);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.context("tail printed too little in 60 s")??;
    let status = tokio::time::timeout(Duration::from_secs(10), tail.wait()).await.context("tail did not stop")??;
    ensure!(status.success(), "tail exited with {status}");

    let seen: Vec<u64> = printed.iter().filter_map(|e| e["position"].as_u64()).collect();
    ensure!(seen == positions, "tail printed positions {seen:?}, the commands appended {positions:?}");
    let first = &printed[0];
    ensure!(first["aggregateType"] == "BankAccount" && first["aggregateId"] == "tail-1", "{first}");
    ensure!(first["eventType"] == "AccountOpenedEvent" && first["version"] == 1, "{first}");
    ensure!(first["data"].is_object() && first["recordedAt"].is_string(), "{first}");
    let types: Vec<&str> = printed.iter().filter_map(|e| e["eventType"].as_str()).collect();
    ensure!(types.iter().filter(|t| **t == "FundsDepositedEvent").count() == 4, "{types:?}");
    Ok(())
}

#[tokio::test]
async fn tail_without_after_starts_at_the_head() -> Result<()> {
    let host = host().await?;
    let before = *history(&host, "head-0", 3).await?.last().context("no events")?;
    let url = host.base_url().to_owned();
    let tail = sluice_command(&["tail", "--url", &url, "--token", TOKEN, "--count", "2"])?.spawn()?;
    let finished = tail.wait_with_output();
    tokio::pin!(finished);
    // When tail has read the head is not visible from outside: append until it has printed two.
    let mut appended = Vec::new();
    let output = loop {
        tokio::select! {
            output = &mut finished => break output?,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                ensure!(appended.len() < 300, "tail printed fewer than two events in 60 s");
                let reply = host.command("BankAccount", "head-0", "DepositFunds", &json!({ "amount": 1 }), None).await?;
                appended.push(reply.expect_status(200)?.u64_field("position")?);
            }
        }
    };
    ensure!(output.status.success(), "tail exited with {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Vec<u64> = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).with_context(|| format!("not JSON: {line}")))
        .collect::<Result<Vec<_>>>()?
        .iter()
        .filter_map(|e| e["position"].as_u64())
        .collect();
    ensure!(seen.len() == 2 && seen[1] == seen[0] + 1, "two events in a row: {stdout}");
    ensure!(seen[0] > before, "nothing from before tail started (head was {before}): {stdout}");
    ensure!(appended.contains(&seen[0]) && appended.contains(&seen[1]), "{seen:?} among {appended:?}");
    Ok(())
}

#[tokio::test]
async fn rebuild_over_the_admin_api_shows_its_progress_to_the_head() -> Result<()> {
    let host = host().await?;
    let mut head = 0;
    for n in 0..5 {
        head = *history(&host, &format!("rebuild-{n}"), 20).await?.last().context("no events")?;
    }
    caught_up(&host, "accounts", CATCH_UP).await?;
    let url = host.base_url().to_owned();

    let progress = host.admin_get("/admin/projections/accounts/rebuild").await?.expect_status(200)?;
    ensure!(progress.body["rebuild"].is_null(), "not rebuilt yet: {progress}");

    let (ok, stdout, stderr) = sluice(&["rebuild", "accounts", "--url", &url, "--token", TOKEN]).await?;
    ensure!(ok, "sluice rebuild failed");
    ensure!(stdout.trim() == format!("rebuilt accounts up to position {head}"), "{stdout}");
    // Not a terminal: each step of the progress is a line, the last one at the head.
    let steps: Vec<(u64, u64)> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rebuilding accounts: ")?.strip_suffix(" events")?.split_once('/'))
        .filter_map(|(done, of)| Some((done.parse().ok()?, of.parse().ok()?)))
        .collect();
    ensure!(steps.last() == Some(&(head, head)), "the last step is the head: {steps:?}\n{stderr}");
    ensure!(steps.windows(2).all(|w| w[0].0 <= w[1].0), "progress never goes back: {steps:?}");

    let progress = host.admin_get("/admin/projections/accounts/rebuild").await?.expect_status(200)?;
    let rebuild = &progress.body["rebuild"];
    ensure!(rebuild["running"] == false && rebuild["position"] == head && rebuild["head"] == head, "{progress}");
    ensure!(rebuild["finishedAt"].is_string() && rebuild["error"].is_null(), "{progress}");
    let listed = host.admin_plugin("accounts").await?.context("accounts is not listed")?;
    ensure!(listed["rebuild"] == *rebuild, "the listing shows the same rebuild: {listed}");
    ensure!(
        host.get("/api/projections/accounts/queries/all").await?.expect_status(200)?.body["accounts"]
            .as_array()
            .is_some_and(|a| a.len() == 5),
        "the rebuilt model has every opening"
    );

    // An unknown projection: the host's 404 reason, and a non-zero exit.
    let (ok, _, stderr) = sluice(&["rebuild", "nothing-here", "--url", &url, "--token", TOKEN]).await?;
    ensure!(!ok && stderr.contains("404"), "{stderr}");
    host.admin_get("/admin/projections/nothing-here/rebuild").await?.check_error(404, &["unknown_projection"])?;
    Ok(())
}

#[tokio::test]
async fn the_events_route_pages_the_log_and_refuses_bad_parameters() -> Result<()> {
    let host = host().await?;
    let positions = history(&host, "page-1", 4).await?;

    let page = host.admin_get("/admin/events?after=0&limit=2").await?.expect_status(200)?;
    let listed: Vec<u64> =
        page.body["events"].as_array().context("no events")?.iter().filter_map(|e| e["position"].as_u64()).collect();
    ensure!(listed == positions[..2], "{page}");
    ensure!(page.body["nextAfter"] == positions[1] && page.body["head"] == positions[4], "{page}");
    let page = host.admin_get(&format!("/admin/events?after={}", positions[1])).await?.expect_status(200)?;
    ensure!(page.body["events"].as_array().is_some_and(|e| e.len() == 3), "{page}");

    // At the head with a wait: answers empty once the wait is over, next_after unchanged.
    let at_head = format!("/admin/events?after={}&wait_ms=300", positions[4]);
    let started = std::time::Instant::now();
    let page = host.admin_get(&at_head).await?.expect_status(200)?;
    ensure!(page.body["events"] == json!([]) && page.body["nextAfter"] == positions[4], "{page}");
    ensure!(started.elapsed() >= Duration::from_millis(250), "it waited: {:?}", started.elapsed());

    for bad in ["limit=0", "limit=1001", "after=-1", "after=x", "wait_ms=25001", "since=3"] {
        host.admin_get(&format!("/admin/events?{bad}")).await?.check_error(400, &["bad_query"])?;
    }
    let reply = host.api().send(host.api().request_with_token(reqwest::Method::GET, "/admin/events", None)).await?;
    reply.check_error(401, &["unauthorized"])?;
    Ok(())
}
