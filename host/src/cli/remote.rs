//! The binary's operator commands against a running host (`--url`, `--token`): `sluice status`,
//! `sluice tail` and `sluice rebuild --url` with a progress bar. They speak only the `/admin`
//! routes, so they work the same from the host's machine or another one. (A module of the
//! `sluice` binary, not of the library.)

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use sluice::admin::PluginStatus;
use sluice::admin::rebuilds::RebuildProgress;

use super::Remote;

/// How long one read of the log waits for new events (the host bounds it at 25 s).
const TAIL_WAIT_MS: u64 = 10_000;
/// How often `rebuild` asks how far the rebuild has come.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// `sluice status --url`: one line per plugin, under the log's head.
pub async fn status(remote: &Remote) -> anyhow::Result<()> {
    need_url(remote, "status")?;
    let answer = remote.call(Method::GET, "/admin/plugins", None).await?;
    let plugins: Vec<PluginStatus> = serde_json::from_value(answer["plugins"].clone()).context("unexpected answer")?;
    let letters = remote.call(Method::GET, "/admin/dead-letters", None).await?;
    let parked = |consumer: &str| {
        letters["letters"].as_array().map_or(0, |all| all.iter().filter(|l| l["consumer"] == consumer).count())
    };
    let head = match plugins.first() {
        Some(p) => p.head,
        None => remote.call(Method::GET, "/admin/events?limit=1", None).await?["head"].as_u64().unwrap_or(0),
    };
    println!("head {head}, {} plugin(s)", plugins.len());
    println!(
        "{:<24} {:<10} {:<22} {:<12} {:>10} {:>10} {:>8} {:>7}",
        "NAME", "KIND", "STATUS", "SHA256", "POSITION", "HEAD", "LAG", "LETTERS"
    );
    let dash = || "-".to_owned();
    for p in &plugins {
        let is_consumer = p.position.is_some();
        println!(
            "{:<24} {:<10} {:<22} {:<12} {:>10} {:>10} {:>8} {:>7}",
            p.name,
            p.kind.to_string(),
            p.status,
            p.sha256.get(..12).unwrap_or(&p.sha256),
            p.position.map_or_else(dash, |v| v.to_string()),
            p.head,
            p.lag.map_or_else(dash, |v| v.to_string()),
            if is_consumer { parked(&p.name).to_string() } else { dash() },
        );
    }
    if let Some(refused) = answer["refused"].as_array() {
        for r in refused {
            println!("refused {}: {}", r["source"].as_str().unwrap_or("?"), r["reason"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

/// `sluice tail --url`: the events appended from now on (or after `after`) as JSON lines, until
/// interrupted or `count` were printed.
pub async fn tail(remote: &Remote, after: Option<u64>, count: Option<u64>) -> anyhow::Result<()> {
    need_url(remote, "tail")?;
    let mut after = match after {
        Some(after) => after,
        None => page_head(&remote.call(Method::GET, "/admin/events?limit=1", None).await?)?,
    };
    let mut printed = 0u64;
    loop {
        if count.is_some_and(|count| printed >= count) {
            return Ok(());
        }
        let path = format!("/admin/events?after={after}&limit=1000&wait_ms={TAIL_WAIT_MS}");
        let page = remote.call(Method::GET, &path, None).await?;
        for event in page["events"].as_array().context("unexpected answer: no events")? {
            println!("{event}");
            printed += 1;
            if count.is_some_and(|count| printed >= count) {
                return Ok(());
            }
        }
        after = page["nextAfter"].as_u64().context("unexpected answer: no nextAfter")?;
    }
}

/// `sluice rebuild NAME --url`: run the rebuild in the host and show its progress as it goes —
/// a bar on a terminal, else a line on stderr at each step.
pub async fn rebuild(remote: &Remote, projection: &str, into: Option<String>) -> anyhow::Result<()> {
    let path = format!("/admin/projections/{projection}/rebuild");
    // The rebuild before this one, if any, so its end is not shown as this one's progress.
    let earlier = progress(&remote.call(Method::GET, &path, None).await?)?.map(|p| p.started_at);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} events")
            .context("bad progress template")?,
    );
    bar.set_message(format!("rebuilding {projection}"));
    let plain = !std::io::stderr().is_terminal();
    let mut shown = None;
    let mut show = |p: &RebuildProgress| {
        if earlier.as_ref() == Some(&p.started_at) || shown == Some((p.position, p.head)) {
            return;
        }
        shown = Some((p.position, p.head));
        bar.set_length(p.head);
        bar.set_position(p.position);
        if plain {
            eprintln!("rebuilding {projection}: {}/{} events", p.position, p.head);
        }
    };
    let run = remote.call(Method::POST, &path, Some(serde_json::json!({ "into": into })));
    tokio::pin!(run);
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    let answer = loop {
        tokio::select! {
            answer = &mut run => break answer?,
            _ = ticks.tick() => {
                if let Ok(Some(p)) = remote.call(Method::GET, &path, None).await.and_then(|a| progress(&a)) {
                    show(&p);
                }
            }
        }
    };
    if let Some(p) = progress(&remote.call(Method::GET, &path, None).await?)? {
        show(&p);
    }
    bar.finish();
    println!("rebuilt {projection} up to position {}", answer["position"]);
    Ok(())
}

fn progress(answer: &serde_json::Value) -> anyhow::Result<Option<RebuildProgress>> {
    serde_json::from_value(answer["rebuild"].clone()).context("unexpected answer: no rebuild progress")
}

fn page_head(page: &serde_json::Value) -> anyhow::Result<u64> {
    page["head"].as_u64().context("unexpected answer: no head")
}

fn need_url(remote: &Remote, command: &str) -> anyhow::Result<()> {
    if remote.url.is_none() {
        anyhow::bail!("sluice {command} asks a running host: pass --url (or set SLUICE_URL) and --token");
    }
    Ok(())
}
