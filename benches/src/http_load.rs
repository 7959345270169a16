//! Load over real HTTP as the log grows: a real release `sluice serve` with the bank-account
//! aggregate and the accounts projection, `clients` HTTP clients depositing into accounts of their
//! own (no two race for a stream) for several back-to-back windows. Per window: commands/s (2xx
//! answers completed in it), p50 and p99 latency, the log's size and the projection's lag at its
//! end; then the last window's rate against the first. A rate that falls as the log grows is a
//! defect this benchmark exists to show.
//!
//! The host runs on the embedded default unless `args` name other stores or a bus (the scale-out
//! stack: `--event-store mongodb://… --bus kafka://… --read-store postgres://…`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tokio::time::Instant;

use crate::server::{Launch, Server};
use crate::swap::percentile;

/// What the benchmark runs with.
pub struct LoadSetup {
    pub sluice: PathBuf,
    pub aggregate: PathBuf,
    pub projection: PathBuf,
    pub clients: usize,
    pub accounts: usize,
    pub windows: usize,
    pub window: Duration,
    /// More `sluice serve` arguments.
    pub args: Vec<String>,
}

/// One answered command: when it completed (since the start) and how long it took, in seconds.
type Answer = (f64, f64);

/// What one client saw.
#[derive(Default)]
struct Record {
    answers: Vec<Answer>,
    failed: usize,
    sample: Option<String>,
}

pub async fn bench(setup: &LoadSetup) -> Result<()> {
    ensure!(setup.clients > 0 && setup.accounts >= setup.clients, "need at least one account per client");
    let read = |path: &PathBuf| std::fs::read(path).with_context(|| format!("failed to read {}", path.display()));
    let launch = Launch {
        sluice: &setup.sluice,
        plugins: vec![
            ("bank_account.wasm", read(&setup.aggregate)?),
            ("accounts_projection.wasm", read(&setup.projection)?),
        ],
        cache: None,
        args: setup.args.clone(),
    };
    let stores = if setup.args.is_empty() { "embedded default".to_owned() } else { setup.args.join(" ") };
    println!(
        "load over HTTP as the log grows: sluice serve (release, {stores}), {} clients depositing into {} accounts, {} back-to-back windows of {} s, accounts projection running",
        setup.clients,
        setup.accounts,
        setup.windows,
        setup.window.as_secs_f64()
    );
    let server = Server::start(&launch).await?;
    let result = run(&server, setup).await;
    let result = result.with_context(|| format!("the host's log ends with:\n{}", server.log_tail(30)));
    server.stop().await;
    result
}

async fn run(server: &Server, setup: &LoadSetup) -> Result<()> {
    let ids = Arc::new(server.open_accounts(setup.accounts).await?);
    server.caught_up().await?;
    let started = Instant::now();
    let deadline = started + setup.window * u32::try_from(setup.windows).unwrap_or(u32::MAX);
    let clients: Vec<_> = (0..setup.clients)
        .map(|client| {
            let mine: Vec<String> = ids.iter().skip(client).step_by(setup.clients).cloned().collect();
            let (http, base) = (server.http.clone(), server.base.clone());
            tokio::spawn(async move { deposits(&http, &base, &mine, started, deadline).await })
        })
        .collect();
    // At each window's end: the projection's position (events in the log it has applied) and lag,
    // and the CPU time the host has used.
    let mut cpu = vec![server.cpu_time()];
    let threads_before = server.thread_cpu_times();
    let mut marks = Vec::with_capacity(setup.windows);
    for window in 1..=setup.windows {
        tokio::time::sleep_until(started + setup.window * u32::try_from(window).unwrap_or(u32::MAX)).await;
        cpu.push(server.cpu_time());
        let plugin = server.plugin().await?;
        marks.push((plugin.u64("head").unwrap_or(0), plugin.u64("lag").unwrap_or(0)));
    }
    let threads_after = server.thread_cpu_times();
    let mut all = Record::default();
    for client in clients {
        let record = client.await.context("a client task failed")?;
        all.answers.extend(record.answers);
        all.failed += record.failed;
        all.sample = all.sample.or(record.sample);
    }
    let caught_up_from = Instant::now();
    server.caught_up().await?;
    let catch_up = caught_up_from.elapsed();

    let width = setup.window.as_secs_f64();
    let mut rates = Vec::with_capacity(setup.windows);
    for (index, (head, lag)) in marks.iter().enumerate() {
        let (from, to) = (index as f64 * width, (index + 1) as f64 * width);
        let latencies: Vec<f64> =
            all.answers.iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, took)| took * 1000.0).collect();
        let rate = latencies.len() as f64 / width;
        rates.push(rate);
        println!(
            "  window {:>2}: {rate:>8.0} commands/s   p50 {:>6.2} ms   p99 {:>6.2} ms   log {head:>8} events   projection lag {lag} events   {}",
            index + 1,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            cpu_per_command(cpu[index], cpu[index + 1], latencies.len(), width),
        );
    }
    let all_latencies: Vec<f64> = all.answers.iter().map(|(_, took)| took * 1000.0).collect();
    println!(
        "  host CPU over all windows: {}",
        cpu_per_command(cpu[0], cpu[setup.windows], all_latencies.len(), width * setup.windows as f64)
    );
    if let (Some(before), Some(after), Some(from), Some(to)) =
        (threads_before, threads_after, cpu[0], cpu[setup.windows])
    {
        println!(
            "  host CPU by thread over all windows: {}",
            by_thread(&before, &after, to.saturating_sub(from), all_latencies.len())
        );
    }
    let (first, last) = (rates.first().copied().unwrap_or(0.0), rates.last().copied().unwrap_or(0.0));
    println!(
        "  all:        {:>8.0} commands/s   p50 {:>6.2} ms   p99 {:>6.2} ms   last/first window {:.3} (target >= 0.9)   projection caught up {:.2} s after the load",
        all_latencies.len() as f64 / (width * setup.windows as f64),
        percentile(&all_latencies, 0.5),
        percentile(&all_latencies, 0.99),
        if first > 0.0 { last / first } else { 0.0 },
        catch_up.as_secs_f64(),
    );
    if all.failed > 0 {
        println!("  PROBLEM     {} commands did not answer 2xx, e.g. {}", all.failed, all.sample.unwrap_or_default());
    }
    Ok(())
}

/// The host's CPU time between two samples per command answered in between (what a rate becomes
/// on a quiet machine: 2 cores at 100 µs per command serve at most 20,000 commands/s), and the
/// cores it kept busy.
fn cpu_per_command(from: Option<Duration>, to: Option<Duration>, commands: usize, seconds: f64) -> String {
    match (from, to) {
        (Some(from), Some(to)) if commands > 0 => {
            let used = to.saturating_sub(from).as_secs_f64();
            format!("host CPU {:>6.1} µs/command ({:.2} cores)", used * 1e6 / commands as f64, used / seconds)
        }
        _ => "host CPU unknown".to_owned(),
    }
}

/// Where the host's CPU went, per command, by thread name (tokio names its workers and its
/// blocking threads alike; the rest name themselves), largest first; what is left of `total` was
/// used by threads that exited in between.
fn by_thread(
    before: &BTreeMap<u32, (String, Duration)>,
    after: &BTreeMap<u32, (String, Duration)>,
    total: Duration,
    commands: usize,
) -> String {
    let mut names: BTreeMap<&str, (Duration, usize)> = BTreeMap::new();
    for (tid, (name, time)) in after {
        let earlier = before.get(tid).map_or(Duration::ZERO, |(_, t)| *t);
        let entry = names.entry(name.as_str()).or_default();
        entry.0 += time.saturating_sub(earlier);
        entry.1 += 1;
    }
    let live: Duration = names.values().map(|(time, _)| *time).sum();
    let mut rows: Vec<(&str, Duration, usize)> = names.into_iter().map(|(name, (time, n))| (name, time, n)).collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1));
    let per = |time: Duration| time.as_secs_f64() * 1e6 / commands.max(1) as f64;
    let mut parts: Vec<String> = rows
        .iter()
        .filter(|(_, time, _)| !time.is_zero())
        .map(|(name, time, n)| format!("{name} ×{n} {:.1} µs", per(*time)))
        .collect();
    parts.push(format!("exited threads {:.1} µs", per(total.saturating_sub(live))));
    parts.join(", ")
}

/// Deposit 1.00 into `ids` in turn until `deadline`, keeping when each 2xx answer came and how
/// long it took.
async fn deposits(http: &reqwest::Client, base: &str, ids: &[String], started: Instant, deadline: Instant) -> Record {
    let mut record = Record::default();
    let urls: Vec<String> = ids.iter().map(|id| format!("{base}/api/v1/depositFunds/{id}")).collect();
    for url in urls.iter().cycle() {
        let sent_at = Instant::now();
        if sent_at >= deadline {
            break;
        }
        let sent = http.put(url).header("content-type", "application/json").body(r#"{"amount": 1.00}"#).send().await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => match response.bytes().await {
                Ok(_) => None,
                Err(e) => Some(format!("body unreadable: {e}")),
            },
            Ok(response) => {
                let status = response.status();
                Some(format!("{status}: {}", response.text().await.unwrap_or_default()))
            }
            Err(e) => Some(format!("transport error: {e:#}")),
        };
        let done = Instant::now();
        match failure {
            None => record.answers.push(((done - started).as_secs_f64(), (done - sent_at).as_secs_f64())),
            Some(what) => {
                record.failed += 1;
                record.sample.get_or_insert(what);
            }
        }
    }
    record
}
