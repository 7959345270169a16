//! The `log` capability of projections (WIT 0.2.0) against the real binary: a projection's
//! lines reach the host's log under its name, a flood of them is cut by the host's rate limit
//! with a note of how many were suppressed, and 0.1.0 projections (no `log`) load beside 0.2.0
//! ones.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use sluice_e2e::{Check, Host, HostOptions, Plugin, wait_until};

/// Lines the flood asks for: far past the host's burst (200) and a second's refill (100).
const FLOOD: u64 = 5000;

/// The host's JSON log lines (stderr) from the `chatty` projection, by `target` and plugin name.
fn chatty_lines(host: &Host) -> Vec<Value> {
    host.log()
        .lines()
        .filter_map(|l| l.split_once("err] ").map(|(_, line)| line))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "sluice::plugin" && v["fields"]["plugin"] == "chatty")
        .collect()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// Wait until `chatty`'s holders include `holder` (its event was handled).
async fn handled(host: &Host, holder: &str) -> Result<()> {
    wait_until(&format!("chatty handled {holder}"), Duration::from_secs(20), || async {
        let reply = host.get("/api/test/chatty/holders").await?;
        let seen = reply.body["holders"].as_array().is_some_and(|h| h.iter().any(|h| h == holder));
        Ok(if seen { Check::Done(()) } else { Check::NotYet(reply.to_string()) })
    })
    .await
}

#[tokio::test]
async fn a_projections_lines_reach_the_host_log_under_its_name_and_a_flood_is_cut() -> Result<()> {
    let plugins = [Plugin::BankAccount, Plugin::ChattyProjection, Plugin::AccountsProjection, Plugin::SnoopProjection];
    let options = HostOptions::with_plugins(&plugins).arg("--log-format").arg("json").admin_token("log-test");
    let host = Host::start(options).await?;

    // A 0.1.0 projection (snoop, no `log`) loads and serves beside the 0.2.0 ones.
    for name in ["chatty", "accounts", "snoop"] {
        ensure!(host.admin_plugin(name).await?.is_some(), "{name} is not loaded:\n{}", host.log());
    }
    let notes = host.get("/api/test/snoop/notes").await?;
    ensure!(notes.status == 200 || notes.status == 204, "the 0.1.0 projection does not answer: {notes}");

    // One line per event, under the projection's name.
    let quiet = host.open_account("quiet one", "1").await?;
    handled(&host, "quiet one").await?;
    let said = wait_until("chatty's line is in the log", Duration::from_secs(10), || async {
        let found = chatty_lines(&host).into_iter().find(|l| message(l).starts_with("chatty saw holder quiet one"));
        Ok(found.map_or_else(|| Check::NotYet("no line yet".into()), Check::Done))
    })
    .await?;
    ensure!(said["level"] == "INFO", "the line keeps its level: {said}");
    // The 0.2.0 accounts projection still answers.
    wait_until("the accounts projection answers", Duration::from_secs(20), || async {
        let reply = host.get(&format!("/api/v1/bankAccountLookup/byId/{quiet}")).await?;
        Ok(if reply.status == 200 { Check::Done(()) } else { Check::NotYet(reply.to_string()) })
    })
    .await?;

    // A flood in one call: a bounded number of lines gets through…
    host.open_account(&format!("flood {FLOOD}"), "1").await?;
    handled(&host, &format!("flood {FLOOD}")).await?;
    let flood_lines = || chatty_lines(&host).iter().filter(|l| message(l).starts_with("chatty flood line")).count();
    let admitted = u64::try_from(flood_lines())?;
    ensure!((100..=1000).contains(&admitted), "{admitted} of {FLOOD} flood lines reached the log");

    // …each resumption after a suppression, the next line the plugin writes included, is
    // preceded by a note of how many lines were suppressed: together they make the flood.
    host.open_account("quiet two", "1").await?;
    handled(&host, "quiet two").await?;
    let lines = wait_until("chatty's next line is in the log", Duration::from_secs(10), || async {
        let lines = chatty_lines(&host);
        let next = lines.iter().position(|l| message(l).starts_with("chatty saw holder quiet two"));
        Ok(match next {
            Some(at) => Check::Done(lines[..=at].to_vec()),
            None => Check::NotYet("no line yet".into()),
        })
    })
    .await?;
    let notes: Vec<&Value> = lines.iter().filter(|l| message(l).contains("suppressed by the rate limit")).collect();
    ensure!(!notes.is_empty(), "no note of the suppressed lines");
    let mut suppressed = 0;
    for note in &notes {
        ensure!(note["level"] == "WARN", "the note is a warning: {note}");
        suppressed += note["fields"]["dropped"].as_u64().with_context(|| format!("the note counts nothing: {note}"))?;
    }
    ensure!(
        admitted + suppressed == FLOOD,
        "{admitted} lines logged and {suppressed} suppressed do not make the flood's {FLOOD}"
    );
    let before_next = lines.len().checked_sub(2).and_then(|i| lines.get(i)).context("no line before the next")?;
    ensure!(message(before_next).contains("suppressed by the rate limit"), "the last note is not next: {before_next}");
    Ok(())
}
