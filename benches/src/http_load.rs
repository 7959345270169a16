//! Load over real HTTP as the log grows: a real release `sluice serve` with the bank-account
//! aggregate and the accounts projection, `clients` HTTP clients depositing into accounts of their
//! own (no two race for a stream) for several back-to-back windows. Per window: commands/s (2xx
//! answers completed in it), p50 and p99 latency, the log's size and the projection's lag at its
//! end; then the last window's rate against the first. A rate that falls as the log grows is a
//! defect this benchmark exists to show.
//!
//! The host runs on the embedded default unless `args` name other stores or a bus (the scale-out
//! stack: `--event-store mongodb://… --bus kafka://… --read-store postgres://…`).
//!
//! With `native`, the same load then runs against the same host with the aggregate compiled
//! natively (`sluice-bench serve`, [`crate::native_host`]), and the two are printed side by side:
//! the Wasm aggregate ÷ native through the host, over HTTP, at the rate the host serves. With
//! `pairs` > 1 the two run that many times, the first side alternating (Wasm first, then native
//! first, ...), and the median of the pairs' ratios is printed: this machine's speed drifts by a
//! third within minutes (the same binary measured 7,898 and then 11,871 commands/s a minute
//! later), and a ratio of two runs taken one after the other is only as good as the drift
//! between them; alternating cancels a steady drift, the median a burst.
//!
//! A long run (`min_events`) adds windows until the log holds that many events. Every
//! [`SAMPLE`] the benchmark notes the log's head and the projection's position (the host's admin
//! status) and, on the stack, the relay's saved position (read from the event store the host
//! uses); a position's lag in time is how long ago the head passed it, and the p99 of those lags
//! over the run is printed for the relay and the projection.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Keep adding windows (at most [`MAX_WINDOWS`]) until the log holds this many events.
    pub min_events: u64,
    /// More `sluice serve` arguments.
    pub args: Vec<String>,
    /// The `sluice-bench` binary, to run the load again with the aggregate compiled natively.
    pub native: Option<PathBuf>,
    /// How many times to run the Wasm and the native side (at least 1), alternating which first.
    pub pairs: usize,
}

/// What one side's run came to.
struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    /// Host CPU per command, µs (when /proc could tell).
    cpu: Option<f64>,
}

/// How often the lags are sampled.
const SAMPLE: Duration = Duration::from_millis(200);
/// The most windows a long run adds.
const MAX_WINDOWS: usize = 100;

/// One sample: seconds since the start, the log's head, the projection's position, the relay's
/// saved position (when there is a relay).
type Sample = (f64, u64, u64, Option<u64>);

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
    let wasm_host = (setup.sluice.as_path(), "sluice serve");
    let Some(native_host) = &setup.native else {
        side(setup, wasm_host.0, wasm_host.1).await?;
        return Ok(());
    };
    let native_host = (native_host.as_path(), "sluice-bench serve, the aggregate compiled natively");
    let mut pairs = Vec::with_capacity(setup.pairs.max(1));
    for pair in 0..setup.pairs.max(1) {
        let (first, second) = if pair % 2 == 0 { (wasm_host, native_host) } else { (native_host, wasm_host) };
        let first = side(setup, first.0, first.1).await?;
        let second = side(setup, second.0, second.1).await?;
        let (wasm, native) = if pair % 2 == 0 { (first, second) } else { (second, first) };
        println!("Wasm aggregate vs the same compiled natively, through the host over HTTP (pair {}):", pair + 1);
        print_pair(&wasm, &native);
        pairs.push((wasm, native));
    }
    if pairs.len() > 1 {
        let mut rates: Vec<f64> = pairs.iter().map(|(w, n)| ratio(w.rate, n.rate)).collect();
        let mut cpus: Vec<f64> = pairs.iter().filter_map(|(w, n)| Some(ratio(n.cpu?, w.cpu?))).collect();
        rates.sort_by(f64::total_cmp);
        cpus.sort_by(f64::total_cmp);
        let list = |v: &[f64]| v.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" ");
        println!(
            "  over {} pairs (alternating which side ran first): median ratio wasm/native commands/s {:.3} (target >= 0.9; each: {}), host CPU per command native/wasm {:.3} (each: {})",
            pairs.len(),
            percentile(&rates, 0.5),
            list(&rates),
            percentile(&cpus, 0.5),
            list(&cpus),
        );
    }
    Ok(())
}

/// `a / b`, 0 when `b` is not positive.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// One pair's figures, side by side, and its ratios.
fn print_pair(wasm: &Summary, native: &Summary) {
    let cpu = |s: &Summary| s.cpu.map_or_else(|| "unknown".to_owned(), |cpu| format!("{cpu:.1} µs"));
    for (name, side) in [("wasm  ", wasm), ("native", native)] {
        println!(
            "  {name} {:>8.0} commands/s   p50 {:>6.2} ms   p99 {:>6.2} ms   host CPU/command {}",
            side.rate,
            side.p50,
            side.p99,
            cpu(side)
        );
    }
    let cpu_ratio = match (wasm.cpu, native.cpu) {
        (Some(w), Some(n)) if w > 0.0 => format!("{:.3}", n / w),
        _ => "unknown".to_owned(),
    };
    println!(
        "  ratio wasm/native: commands/s {:.3} (target >= 0.9), host CPU per command native/wasm {cpu_ratio}",
        ratio(wasm.rate, native.rate),
    );
}

/// Run the load against a host started from `sluice` (`host` names it in the heading).
async fn side(setup: &LoadSetup, sluice: &std::path::Path, host: &str) -> Result<Summary> {
    let read = |path: &PathBuf| std::fs::read(path).with_context(|| format!("failed to read {}", path.display()));
    let launch = Launch {
        sluice,
        plugins: vec![
            ("bank_account.wasm", read(&setup.aggregate)?),
            ("accounts_projection.wasm", read(&setup.projection)?),
        ],
        cache: None,
        args: setup.args.clone(),
    };
    let stores = if setup.args.is_empty() { "embedded default".to_owned() } else { setup.args.join(" ") };
    println!(
        "load over HTTP as the log grows: {host} (release, {stores}), {} clients depositing into {} accounts, {} back-to-back windows of {} s, accounts projection running",
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

async fn run(server: &Server, setup: &LoadSetup) -> Result<Summary> {
    let ids = Arc::new(server.open_accounts(setup.accounts).await?);
    server.caught_up().await?;
    let relay = runs_a_relay(&setup.args);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..setup.clients)
        .map(|client| {
            let mine: Vec<String> = ids.iter().skip(client).step_by(setup.clients).cloned().collect();
            let (base, stop) = (server.base.clone(), stop.clone());
            tokio::spawn(async move { deposits(&base, &mine, started, &stop).await })
        })
        .collect();
    let sampler = {
        let stop = stop.clone();
        let (http, base) = (server.http.clone(), server.base.clone());
        tokio::spawn(async move { sample_lags(&http, &base, relay, started, &stop).await })
    };
    // At each window's end: the log's head and the projection's lag (in events), when the host
    // answers its status in time (a host that cannot is part of the result, not the end of it).
    // And the CPU time the host has used.
    let mut cpu = vec![server.cpu_time()];
    let threads_before = server.thread_cpu_times();
    let mut marks = Vec::with_capacity(setup.windows);
    for window in 1..=MAX_WINDOWS {
        tokio::time::sleep_until(started + setup.window * u32::try_from(window).unwrap_or(u32::MAX)).await;
        cpu.push(server.cpu_time());
        let (mark, head) = match server.plugin().await {
            Ok(plugin) => {
                let head = plugin.u64("head").unwrap_or(0);
                (format!("log {head:>8} events   projection lag {} events", plugin.u64("lag").unwrap_or(0)), head)
            }
            Err(e) => (format!("status unreadable: {e:#}"), 0),
        };
        marks.push(mark);
        if window >= setup.windows && head >= setup.min_events {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let threads_after = server.thread_cpu_times();
    // The load ran until now (later than the last window's end if a status answer was slow).
    let loaded_for = started.elapsed().as_secs_f64();
    let samples = sampler.await.context("the sampling task failed")?;
    let mut all = Record::default();
    for client in clients {
        let record = client.await.context("a client task failed")?;
        all.answers.extend(record.answers);
        all.failed += record.failed;
        all.sample = all.sample.or(record.sample);
    }
    let caught_up_from = Instant::now();
    let catch_up = match server.caught_up().await {
        Ok(_) => format!("{:.2} s", caught_up_from.elapsed().as_secs_f64()),
        Err(e) => format!("not within its limit ({e:#})"),
    };

    let width = setup.window.as_secs_f64();
    let mut rates = Vec::with_capacity(setup.windows);
    for (index, mark) in marks.iter().enumerate() {
        let (from, to) = (index as f64 * width, (index + 1) as f64 * width);
        let latencies: Vec<f64> =
            all.answers.iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, took)| took * 1000.0).collect();
        let rate = latencies.len() as f64 / width;
        rates.push(rate);
        println!(
            "  window {:>2}: {rate:>8.0} commands/s   p50 {:>6.2} ms   p99 {:>6.2} ms   {mark}   {}",
            index + 1,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            cpu_per_command(cpu[index], cpu[index + 1], latencies.len(), width),
        );
    }
    let all_latencies: Vec<f64> = all.answers.iter().map(|(_, took)| took * 1000.0).collect();
    let windows = marks.len();
    let summary = Summary {
        rate: all_latencies.len() as f64 / loaded_for,
        p50: percentile(&all_latencies, 0.5),
        p99: percentile(&all_latencies, 0.99),
        cpu: match (cpu[0], cpu[windows]) {
            (Some(from), Some(to)) if !all_latencies.is_empty() => {
                Some(to.saturating_sub(from).as_secs_f64() * 1e6 / all_latencies.len() as f64)
            }
            _ => None,
        },
    };
    println!(
        "  host CPU over all windows: {}",
        cpu_per_command(cpu[0], cpu[windows], all_latencies.len(), width * windows as f64)
    );
    if let (Some(before), Some(after), Some(from), Some(to)) = (threads_before, threads_after, cpu[0], cpu[windows]) {
        println!(
            "  host CPU by thread over all windows: {}",
            by_thread(&before, &after, to.saturating_sub(from), all_latencies.len())
        );
    }
    let (first, last) = (rates.first().copied().unwrap_or(0.0), rates.last().copied().unwrap_or(0.0));
    println!(
        "  all:        {:>8.0} commands/s   p50 {:>6.2} ms   p99 {:>6.2} ms   last/first window {:.3} (target >= 0.9)   projection caught up {} after the load",
        all_latencies.len() as f64 / loaded_for,
        percentile(&all_latencies, 0.5),
        percentile(&all_latencies, 0.99),
        if first > 0.0 { last / first } else { 0.0 },
        catch_up,
    );
    let (relay_lag, projection_lag) = lag_p99(&samples);
    println!(
        "  lag p99 over {} samples every {} ms: relay {} s, projection {:.2} s (target < 2 s each)",
        samples.len(),
        SAMPLE.as_millis(),
        relay_lag.map_or_else(|| "(no relay)".to_owned(), |lag| format!("{lag:.2}")),
        projection_lag,
    );
    if all.failed > 0 {
        println!("  PROBLEM     {} commands did not answer 2xx, e.g. {}", all.failed, all.sample.unwrap_or_default());
    }
    Ok(summary)
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

/// Deposit 1.00 into `ids` in turn until `stop`, keeping when each 2xx answer came and how
/// long it took; over one keep-alive connection, as a load generator's client does.
///
/// The requests go through hyper's HTTP/1 client connection rather than `reqwest`: the load
/// generator shares the host's two cores, and `reqwest` spent about 40 µs of CPU per request
/// (its pool, URL parsing and header maps), a fifth of what the host spends on the command.
async fn deposits(base: &str, ids: &[String], started: Instant, stop: &AtomicBool) -> Record {
    let mut record = Record::default();
    let mut connection = None;
    let paths: Vec<String> = ids.iter().map(|id| format!("/api/v1/depositFunds/{id}")).collect();
    let authority = base.trim_start_matches("http://").to_owned();
    for path in paths.iter().cycle() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let sent_at = Instant::now();
        let failure = match deposit(&mut connection, &authority, path).await {
            Ok(()) => None,
            Err(e) => {
                // A refused or broken request: the next one opens a fresh connection.
                connection = None;
                Some(format!("{e:#}"))
            }
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

pub(crate) type Connection = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// One deposit over `connection`, opened to `authority` when there is none; `Ok` for a 2xx whose
/// body arrived whole.
pub(crate) async fn deposit(connection: &mut Option<Connection>, authority: &str, path: &str) -> Result<()> {
    use http_body_util::BodyExt;
    let sender = match connection {
        Some(sender) => sender,
        None => {
            let stream = tokio::net::TcpStream::connect(authority).await.context("connect")?;
            stream.set_nodelay(true).context("TCP_NODELAY")?;
            let (sender, driver) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .context("HTTP/1 handshake")?;
            tokio::spawn(driver);
            connection.insert(sender)
        }
    };
    sender.ready().await.context("connection closed")?;
    let request = hyper::Request::put(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(br#"{"amount": 1.00}"#)))
        .context("request")?;
    let response = sender.send_request(request).await.context("transport error")?;
    let status = response.status();
    let body = response.into_body().collect().await.context("body unreadable")?.to_bytes();
    ensure!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body));
    Ok(())
}

/// Whether the host's arguments give it a relay (an event store other than the embedded default
/// and a bus): then the relay's saved position is sampled too.
fn runs_a_relay(args: &[String]) -> bool {
    let named = |flag: &str| args.iter().any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
    named("--event-store") && named("--bus")
}

/// The relay's saved position as the host reports it (`sluice_relay_position` in `/metrics`).
/// Read from the host rather than from the store: a second client of the store would add its
/// own reads to what is measured (on FerretDB each costs a scan of the log).
async fn relay_position(http: &reqwest::Client, base: &str) -> Option<u64> {
    let text = http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("sluice_relay_position ")?.trim().parse::<f64>().ok().map(|p| p as u64))
}

/// Sample the head, the projection's position and the relay's position every [`SAMPLE`] until
/// `stop`.
async fn sample_lags(
    http: &reqwest::Client,
    base: &str,
    relay: bool,
    started: Instant,
    stop: &AtomicBool,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let at = Instant::now();
        let path = format!("/admin/plugins/{}", crate::server::PROJECTION);
        let status = crate::server::admin(http, base, reqwest::Method::GET, &path).send().await;
        let json = match status {
            Ok(response) => response.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        let relayed = if relay { relay_position(http, base).await } else { None };
        if let Some(json) = json
            && let (Some(head), Some(lag)) = (json["head"].as_u64(), json["lag"].as_u64())
        {
            samples.push(((at - started).as_secs_f64(), head, head.saturating_sub(lag), relayed));
        }
        tokio::time::sleep_until(at + SAMPLE).await;
    }
    samples
}

/// The p99 lag in seconds of the relay (when sampled) and of the projection: at each sample, how
/// long ago the head first passed the position (0 when the position is the head).
fn lag_p99(samples: &[Sample]) -> (Option<f64>, f64) {
    // When the head first reached `position + 1`: the first sample whose head is past it.
    let passed = |position: u64| -> f64 {
        let i = samples.partition_point(|(_, head, _, _)| *head <= position);
        samples.get(i).map_or(0.0, |(at, ..)| *at)
    };
    let lag = |at: f64, head: u64, position: u64| if position >= head { 0.0 } else { (at - passed(position)).max(0.0) };
    let projection: Vec<f64> = samples.iter().map(|&(at, head, applied, _)| lag(at, head, applied)).collect();
    let relay: Vec<f64> =
        samples.iter().filter_map(|&(at, head, _, relayed)| relayed.map(|r| lag(at, head, r))).collect();
    let relay = (!relay.is_empty()).then(|| percentile(&relay, 0.99));
    (relay, percentile(&projection, 0.99))
}
