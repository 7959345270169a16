//! Hot swaps under load: a real `sluice serve` (the release binary) on the embedded default, HTTP
//! clients depositing into accounts for a fixed window, with and without a further task replacing
//! the accounts projection through the admin API. Each side runs on a host of its own, on a fresh
//! data directory, so the pauses the host lists after a side are that side's swaps only.
//!
//! The swaps alternate two builds of the projection that differ only in an extra custom section
//! (another sha256, the same code). Both builds are compiled once before the first round, by a
//! throwaway host, and every side's data directory starts with that compiled-component cache: a
//! swap then costs what a replace of an already seen build costs, and the first swap of a side
//! does not pay a compilation the side without swaps never pays.
//!
//! Per side: commands/s are the 2xx answers that arrived within the window, per second of it
//! (anything else is counted and shown, whenever it answered); projection events/s are the
//! position the projection gained over the window (`GET /admin/plugins/accounts` at its start and
//! end), per second of it; the catch-up after the window is shown when it lagged. The pauses are
//! the host's own measurement (`recentSwapPausesMicros`: the old version's last commit to the new
//! version's first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::server::{Launch, PROJECTION, Server, admin};
use crate::{SideBySide, alternating};

/// The custom section that tells build B from build A.
const BUILD_SECTION: &str = "sluice-bench-build";

/// What every side of every round runs with.
pub struct Setup {
    pub sluice: PathBuf,
    pub aggregate: PathBuf,
    /// Build A (the component as built) and build B (A with the extra custom section).
    pub builds: [Vec<u8>; 2],
    pub clients: usize,
    pub accounts: usize,
    pub window: Duration,
    pub swaps: usize,
    /// Compiled components of both builds, copied into every host's data directory.
    cache: tempfile::TempDir,
}

impl Setup {
    /// Read the components, make build B and compile both into a cache with a throwaway host.
    pub async fn new(
        sluice: PathBuf,
        aggregate: PathBuf,
        projection: &Path,
        clients: usize,
        accounts: usize,
        window: Duration,
        swaps: usize,
    ) -> Result<Self> {
        if !sluice.is_file() {
            bail!(
                "{} is missing: build the host first (`root_cargo build --release -p sluice`; scripts/bench does) or pass --sluice",
                sluice.display()
            );
        }
        ensure!(clients > 0 && accounts > 0 && swaps > 0, "clients, accounts and swaps must be at least 1");
        let a = std::fs::read(projection).with_context(|| format!("failed to read {}", projection.display()))?;
        let b = with_custom_section(&a, BUILD_SECTION, b"B");
        let cache = tempfile::Builder::new().prefix("sluice-bench-cache-").tempdir()?;
        let setup = Self { sluice, aggregate, builds: [a, b], clients, accounts, window, swaps, cache };
        let server = Server::start(&setup.launch()?).await?;
        let shas = [server.plugin().await?.sha256()?, server.replace(&setup.builds[1]).await?.sha256()?];
        ensure!(shas[0] != shas[1], "builds A and B have the same sha256 {}", shas[0]);
        server.copy_cache(setup.cache.path())?;
        server.stop().await;
        Ok(setup)
    }
}

impl Setup {
    /// What a host of this benchmark starts with: the aggregate, build A and the compiled cache.
    fn launch(&self) -> Result<Launch<'_>> {
        let aggregate =
            std::fs::read(&self.aggregate).with_context(|| format!("failed to read {}", self.aggregate.display()))?;
        Ok(Launch {
            sluice: &self.sluice,
            plugins: vec![("bank_account.wasm", aggregate), ("accounts_projection.wasm", self.builds[0].clone())],
            cache: Some(self.cache.path()),
            args: Vec::new(),
        })
    }
}

/// One side's figures.
#[derive(Debug, Default)]
pub struct Side {
    /// 2xx commands answered within the window, per second of the window.
    pub commands: f64,
    /// Projection position gained over the window, per second of the window.
    pub events: f64,
    /// Commands that did not answer 2xx (whenever they answered), by status or transport error.
    pub failed: BTreeMap<String, usize>,
    /// One answer of a failed command, to show what went wrong.
    pub failed_sample: Option<String>,
    /// The projection's lag when the window closed, and how long it took to reach 0 from then.
    pub lag_at_end: u64,
    pub catch_up: Duration,
    pub swaps: Option<Swaps>,
}

/// The swapping task's record and the host's pauses, for the side with swaps.
#[derive(Debug, Default)]
pub struct Swaps {
    pub attempted: usize,
    /// PUTs that answered 200 `"replaced": true` with the other build's sha256.
    pub replaced: usize,
    pub problems: Vec<String>,
    /// How long each PUT took, in ms.
    pub put_ms: Vec<f64>,
    /// `recentSwapPausesMicros` after the side, in ms.
    pub pauses_ms: Vec<f64>,
}

impl Side {
    fn failures(&self) -> usize {
        self.failed.values().sum()
    }
}

/// Every round's sides in alternating order, printed as they come, then the medians, the dips
/// and the pauses of all rounds against their targets.
pub async fn bench(setup: &Setup, rounds: usize) -> Result<()> {
    println!(
        "hot swaps under load: sluice serve (release, embedded default, a fresh host per side), {} clients depositing into {} accounts for {} s, without and with {} replacements of the accounts projection through the admin API (two builds, compiled before the first round), {rounds} rounds",
        setup.clients,
        setup.accounts,
        setup.window.as_secs_f64(),
        setup.swaps
    );
    let mut commands =
        SideBySide::new("commands    ", ("with swaps", "commands/s"), ("without swaps", "commands/s"), 0.95);
    let mut events = SideBySide::new("projection  ", ("with swaps", "events/s"), ("without swaps", "events/s"), 0.95);
    let (mut pauses, mut failed) = (Vec::new(), 0);
    for round in 1..=rounds {
        let (with, without) =
            alternating(round, async || side(setup, true).await, async || side(setup, false).await).await?;
        commands.record(round, with.commands, without.commands);
        events.record(round, with.events, without.events);
        let swaps = with.swaps.as_ref().context("the side with swaps has no swap record")?;
        println!(
            "  swaps       round {round}: {} of {} PUTs answered 200 \"replaced\": true (PUT p50 {:.1} ms, max {:.1} ms); pauses {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            swaps.replaced,
            setup.swaps,
            percentile(&swaps.put_ms, 0.5),
            percentile(&swaps.put_ms, 1.0),
            swaps.pauses_ms.len(),
            percentile(&swaps.pauses_ms, 0.5),
            percentile(&swaps.pauses_ms, 0.99),
            percentile(&swaps.pauses_ms, 1.0),
        );
        println!(
            "  checks      round {round}: non-2xx commands {} with swaps, {} without; projection lag at the window's end {} with swaps{}, {} without{}",
            with.failures(),
            without.failures(),
            with.lag_at_end,
            caught_up(&with),
            without.lag_at_end,
            caught_up(&without),
        );
        for (name, side) in [("with swaps", &with), ("without swaps", &without)] {
            for (what, n) in &side.failed {
                println!("  PROBLEM     round {round}, {name}: {n} commands answered {what}");
            }
            if let Some(sample) = &side.failed_sample {
                println!("  PROBLEM     round {round}, {name}: for example {sample}");
            }
        }
        for problem in &swaps.problems {
            println!("  PROBLEM     round {round}: {problem}");
        }
        failed +=
            with.failures() + without.failures() + swaps.problems.len() + setup.swaps.saturating_sub(swaps.attempted);
        pauses.extend_from_slice(&swaps.pauses_ms);
    }
    let (commands, events) = (commands.finish(), events.finish());
    println!(
        "  dip         median:  commands {:.1}%   projection events {:.1}%   (1 - median ratio with/without; target <= 5%)",
        (1.0 - commands) * 100.0,
        (1.0 - events) * 100.0
    );
    println!(
        "  pauses      all rounds: {} swaps: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 10 ms)",
        pauses.len(),
        percentile(&pauses, 0.5),
        percentile(&pauses, 0.99),
        percentile(&pauses, 1.0)
    );
    if failed > 0 {
        println!("  {failed} failed commands or swaps: see PROBLEM above");
    }
    Ok(())
}

fn caught_up(side: &Side) -> String {
    match side.lag_at_end {
        0 => String::new(),
        _ => format!(" (caught up {:.2} s after)", side.catch_up.as_secs_f64()),
    }
}

/// One side: a fresh host, the accounts opened, then the load for the window (and the swaps
/// when `swapping`).
pub async fn side(setup: &Setup, swapping: bool) -> Result<Side> {
    let server = Server::start(&setup.launch()?).await?;
    let result = measure(&server, setup, swapping).await;
    let result = result.with_context(|| format!("the host's log ends with:\n{}", server.log_tail(30)));
    server.stop().await;
    result
}

async fn measure(server: &Server, setup: &Setup, swapping: bool) -> Result<Side> {
    let ids = Arc::new(server.open_accounts(setup.accounts).await?);
    let before = server.caught_up().await?;
    let start_position = before.u64("position")?;

    let started = Instant::now();
    let deadline = started + setup.window;
    // Each client deposits into accounts of its own, so no two commands race for one stream.
    let clients: Vec<_> = (0..setup.clients)
        .map(|client| {
            let mine: Vec<String> = ids.iter().skip(client).step_by(setup.clients).cloned().collect();
            let (http, base) = (server.http.clone(), server.base.clone());
            tokio::spawn(async move { deposits(&http, &base, &mine, deadline).await })
        })
        .collect();
    let swapper = swapping.then(|| {
        let (http, base) = (server.http.clone(), server.base.clone());
        let builds = setup.builds.clone();
        let (swaps, window) = (setup.swaps, setup.window);
        let first = before.sha256().unwrap_or_default();
        tokio::spawn(async move { swap_builds(&http, &base, &builds, first, swaps, started, window).await })
    });

    tokio::time::sleep_until(deadline).await;
    let end = server.plugin().await?;
    let end_read = Instant::now();
    let mut side = Side::default();
    let mut ok = 0;
    for client in clients {
        let record = client.await.context("a client task failed")?;
        ok += record.ok;
        for (what, n) in record.failed {
            *side.failed.entry(what).or_default() += n;
        }
        side.failed_sample = side.failed_sample.or(record.sample);
    }
    let window = setup.window.as_secs_f64();
    side.commands = ok as f64 / window;
    side.events = end.u64("position")?.saturating_sub(start_position) as f64 / window;
    side.lag_at_end = end.u64("lag")?;
    // A PUT sent just before the deadline may still be answering.
    let swaps = match swapper {
        Some(swapper) => Some(swapper.await.context("the swapping task failed")?),
        None => None,
    };
    let after = server.caught_up().await?;
    side.catch_up = if side.lag_at_end == 0 { Duration::ZERO } else { end_read.elapsed() };
    if let Some(mut swaps) = swaps {
        swaps.pauses_ms = after.0["recentSwapPausesMicros"]
            .as_array()
            .map(|pauses| pauses.iter().filter_map(Value::as_u64).map(|us| us as f64 / 1000.0).collect())
            .unwrap_or_default();
        side.swaps = Some(swaps);
    }
    if let Some(error) = after.0["lastError"].as_str() {
        bail!("the projection reports an error after the window: {error}");
    }
    Ok(side)
}

/// What one client did.
#[derive(Default)]
struct Deposits {
    ok: usize,
    failed: BTreeMap<String, usize>,
    sample: Option<String>,
}

/// Deposit 1.00 into `ids` in turn until `deadline`; 2xx answers that arrive by the deadline count.
async fn deposits(http: &reqwest::Client, base: &str, ids: &[String], deadline: Instant) -> Deposits {
    let mut record = Deposits::default();
    let urls: Vec<String> = ids.iter().map(|id| format!("{base}/api/v1/depositFunds/{id}")).collect();
    for url in urls.iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        let sent = http.put(url).header("content-type", "application/json").body(r#"{"amount": 1.00}"#).send().await;
        let (what, body) = match sent {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await;
                match (status.is_success(), body) {
                    (true, Ok(_)) => {
                        if Instant::now() <= deadline {
                            record.ok += 1;
                        }
                        continue;
                    }
                    (_, Ok(body)) => (status.to_string(), body),
                    (_, Err(e)) => (format!("{status}, body unreadable"), e.to_string()),
                }
            }
            Err(e) => ("transport error".to_owned(), format!("{e:#}")),
        };
        *record.failed.entry(what.clone()).or_default() += 1;
        record.sample.get_or_insert_with(|| format!("{what}: {body}"));
    }
    record
}

/// Replace the projection `swaps` times, evenly spaced over the window, alternating build B and
/// build A (the host starts on A, whose sha256 is `first`).
async fn swap_builds(
    http: &reqwest::Client,
    base: &str,
    builds: &[Vec<u8>; 2],
    first: String,
    swaps: usize,
    started: Instant,
    window: Duration,
) -> Swaps {
    let mut record = Swaps::default();
    let interval = window / u32::try_from(swaps).unwrap_or(u32::MAX);
    let mut shas = [first, String::new()];
    for n in 0..swaps {
        tokio::time::sleep_until(started + interval * u32::try_from(n).unwrap_or(u32::MAX) + interval / 2).await;
        let build = (n + 1) % 2;
        let put = Instant::now();
        let answer = admin(http, base, Method::PUT, &format!("/admin/plugins/{PROJECTION}"))
            .header("content-type", "application/wasm")
            .body(builds[build].clone())
            .send()
            .await;
        let answer = match answer {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                (status, body)
            }
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("transport error: {e:#}")),
        };
        record.attempted += 1;
        record.put_ms.push(put.elapsed().as_secs_f64() * 1000.0);
        let (status, body) = answer;
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let sha = json["plugin"]["sha256"].as_str().unwrap_or_default().to_owned();
        let other = &shas[1 - build];
        let expected = &shas[build];
        if status != StatusCode::OK || json["replaced"] != Value::Bool(true) {
            record.problems.push(format!("swap {} answered {status}: {body}", n + 1));
        } else if sha == *other || (!expected.is_empty() && sha != *expected) {
            record.problems.push(format!("swap {} is running sha256 {sha}, not the other build", n + 1));
        } else {
            shas[build] = sha;
            record.replaced += 1;
        }
    }
    record
}

/// `component` with one more top-level custom section: id 0, the LEB128 size, then `name` as a
/// LEB128-length-prefixed string and `payload`. Another sha256, the same behaviour.
fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut contents = Vec::new();
    leb128(name.len(), &mut contents);
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(payload);
    let mut bytes = component.to_vec();
    bytes.push(0);
    leb128(contents.len(), &mut bytes);
    bytes.extend_from_slice(&contents);
    bytes
}

fn leb128(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Nearest-rank percentile (`p` in 0..=1) of `values`, 0 when there are none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
