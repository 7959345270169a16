//! `--http-native --http-interleave N`: the Wasm aggregate ÷ native through the host over HTTP,
//! with the hosts running at once and the load switched between them in short slices.
//!
//! Why: this machine's speed drifts by a third within minutes, so two runs a minute apart
//! (`--http-pairs`) differ by as much as the sandbox costs: one 8-pair run's ratios spread
//! from 0.81 to 0.97. Here the hosts are all up, each with its own data and log, and the same
//! clients load one and then the next in slices of a few seconds, in a mirrored order (1 2 3 3 2
//! 1 …): whatever the machine does on a scale longer than a slice falls on every side alike, and
//! the mirror cancels a steady drift within each group. An idle host only finishes its
//! projection's last few events; its CPU is counted to it. The same build run against itself
//! (`--http-versus` a copy of it) comes to 1.003.
//!
//! Three sides with `--http-native`: a real `sluice serve` (the Wasm aggregate), `sluice-bench
//! serve --keep-wasm` (the same host code linked into the benchmark's binary, the Wasm aggregate)
//! and `sluice-bench serve` (the aggregate compiled natively). Wasm ÷ native is taken within the
//! one binary: two builds of the same host code can differ by several percent from where the
//! linker put things alone (a rebuild after a doc-comment change measured 0.951 against the build
//! before it), which would otherwise land in the ratio. `sluice serve`'s own rate is printed
//! beside it.
//!
//! Printed per side: commands/s over its slices, p50 and p99, host CPU per command (all the
//! process's CPU over the run, its idle slices included, over the commands it answered). Then
//! the ratios of the totals, with the median of the groups and their spread.
//!
//! With `--http-versus BINARY` in place of `--http-native`, two host builds run against each
//! other, both with the Wasm aggregate: the A/B of a change to the host, measured the same way
//! (what a host change is worth per command is often less than the drift between two runs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tokio::time::Instant;

use crate::http_load::{Connection, LoadSetup, deposit};
use crate::server::{Launch, Server};
use crate::swap::percentile;

/// The side of slice `i` among `n`: 0 1 … n-1 n-1 … 1 0, repeated.
fn side_of(slice: usize, n: usize) -> usize {
    let at = slice % (2 * n);
    if at < n { at } else { 2 * n - 1 - at }
}

/// One answered command: its side, its slice (when it was sent), when it completed (since the
/// start) and how long it took, in seconds.
struct Answer {
    side: usize,
    slice: usize,
    at: f64,
    took: f64,
}

/// One host of the run: its name as printed, the binary and the arguments it starts with.
struct Side<'a> {
    name: &'static str,
    binary: &'a std::path::Path,
    args: Vec<String>,
}

/// A ratio to print: side `a`'s rate over side `b`'s, and what it is held to.
struct Ratio {
    a: usize,
    b: usize,
    target: &'static str,
}

pub async fn bench(setup: &LoadSetup, versus: Option<&std::path::Path>, slices: usize, slice: Duration) -> Result<()> {
    let with = |extra: &[&str]| setup.args.iter().cloned().chain(extra.iter().map(|a| (*a).to_owned())).collect();
    let (what, sides, ratios) = match versus {
        Some(other) => (
            format!(
                "host A ({}) vs host B ({}), both with the Wasm aggregate",
                setup.sluice.display(),
                other.display()
            ),
            vec![
                Side { name: "A", binary: &setup.sluice, args: with(&[]) },
                Side { name: "B", binary: other, args: with(&[]) },
            ],
            vec![Ratio { a: 0, b: 1, target: "" }],
        ),
        None => {
            let bench = setup.native.as_deref().context("the interleaved run needs the native host")?;
            (
                "Wasm aggregate vs the same compiled natively".to_owned(),
                vec![
                    Side { name: "wasm, sluice serve", binary: &setup.sluice, args: with(&[]) },
                    Side { name: "wasm, sluice-bench serve", binary: bench, args: with(&["--keep-wasm"]) },
                    Side { name: "native, sluice-bench serve", binary: bench, args: with(&[]) },
                ],
                vec![
                    Ratio { a: 1, b: 2, target: " (target >= 0.9; one binary)" },
                    Ratio { a: 0, b: 2, target: " (two binaries)" },
                ],
            )
        }
    };
    ensure!(setup.clients > 0 && setup.accounts >= setup.clients, "need at least one account per client");
    // Whole mirrored groups, so every side gets the same time.
    let group = 2 * sides.len();
    let slices = slices.max(group).div_ceil(group) * group;
    let read =
        |path: &std::path::Path| std::fs::read(path).with_context(|| format!("failed to read {}", path.display()));
    let stores = if setup.args.is_empty() { "embedded default".to_owned() } else { setup.args.join(" ") };
    println!(
        "{what}, through the host over HTTP, interleaved: {} hosts running at once (release, {stores}), {} clients depositing into {} accounts of each, {slices} slices of {} s in mirrored order, accounts projection running",
        sides.len(),
        setup.clients,
        setup.accounts,
        slice.as_secs_f64()
    );
    let mut hosts = Vec::with_capacity(sides.len());
    for side in &sides {
        let plugins = vec![
            ("bank_account.wasm", read(&setup.aggregate)?),
            ("accounts_projection.wasm", read(&setup.projection)?),
        ];
        let launch = Launch { sluice: side.binary, plugins, cache: None, args: side.args.clone() };
        match Server::start(&launch).await {
            Ok(host) => hosts.push(host),
            Err(e) => {
                for host in hosts {
                    host.stop().await;
                }
                return Err(e.context(format!("{} did not start", side.name)));
            }
        }
    }
    let result = run(&hosts, &sides, &ratios, setup, slices, slice).await;
    let result = result.with_context(|| {
        let tails: Vec<String> = hosts.iter().map(|h| h.log_tail(20)).collect();
        format!("the hosts' logs end with:\n{}", tails.join("\n---\n"))
    });
    for host in hosts {
        host.stop().await;
    }
    result
}

async fn run(
    hosts: &[Server],
    sides: &[Side<'_>],
    ratios: &[Ratio],
    setup: &LoadSetup,
    slices: usize,
    slice: Duration,
) -> Result<()> {
    let n = hosts.len();
    let mut ids = Vec::with_capacity(n);
    for host in hosts {
        ids.push(Arc::new(host.open_accounts(setup.accounts).await?));
        host.caught_up().await?;
    }
    let authorities: Arc<Vec<String>> =
        Arc::new(hosts.iter().map(|host| host.base.trim_start_matches("http://").to_owned()).collect());
    let active = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..setup.clients)
        .map(|client| {
            let paths: Vec<Vec<String>> = ids
                .iter()
                .map(|ids| {
                    ids.iter()
                        .skip(client)
                        .step_by(setup.clients)
                        .map(|id| format!("/api/v1/depositFunds/{id}"))
                        .collect()
                })
                .collect();
            let (authorities, active, stop) = (authorities.clone(), active.clone(), stop.clone());
            tokio::spawn(async move { deposits(&authorities, &paths, &active, started, &stop).await })
        })
        .collect();
    let cpu_before: Vec<_> = hosts.iter().map(Server::cpu_time).collect();
    for i in 0..slices {
        active.store(i, Ordering::SeqCst);
        tokio::time::sleep_until(started + slice * u32::try_from(i + 1).unwrap_or(u32::MAX)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let cpu_after: Vec<_> = hosts.iter().map(Server::cpu_time).collect();
    let mut answers = Vec::new();
    let mut failed = (0, None);
    for client in clients {
        let (mine, fails, sample) = client.await.context("a client task failed")?;
        answers.extend(mine);
        failed.0 += fails;
        failed.1 = failed.1.or(sample);
    }
    for host in hosts {
        host.caught_up().await?;
    }

    // Per slice, the commands of its side that completed within it.
    let width = slice.as_secs_f64();
    let mut counts = vec![0usize; slices];
    for answer in &answers {
        let within = answer.at >= answer.slice as f64 * width && answer.at < (answer.slice + 1) as f64 * width;
        if answer.side == side_of(answer.slice, n) && within {
            counts[answer.slice] += 1;
        }
    }
    let per_side = |side: usize| -> usize { (0..slices).filter(|&i| side_of(i, n) == side).map(|i| counts[i]).sum() };
    let seconds = width * (slices / n) as f64;
    let served = |side: usize| answers.iter().filter(|a| a.side == side).count();
    let cpu_per_command = |side: usize| match (cpu_before[side], cpu_after[side]) {
        (Some(from), Some(to)) if served(side) > 0 => {
            Some(to.saturating_sub(from).as_secs_f64() * 1e6 / served(side) as f64)
        }
        _ => None,
    };
    for (side, Side { name, .. }) in sides.iter().enumerate() {
        let latencies: Vec<f64> = answers.iter().filter(|a| a.side == side).map(|a| a.took * 1000.0).collect();
        let cpu = cpu_per_command(side).map_or_else(|| "unknown".to_owned(), |cpu| format!("{cpu:.1} µs"));
        let head = hosts[side].plugin().await.ok().and_then(|p| p.u64("head").ok()).unwrap_or(0);
        println!(
            "  {name:<27} {:>8.0} commands/s   p50 {:>6.2} ms   p99 {:>6.2} ms   host CPU/command {cpu}   log {head} events",
            per_side(side) as f64 / seconds,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
        );
    }
    for Ratio { a, b, target } in ratios {
        // Each mirrored group gives a ratio of its own.
        let groups: Vec<f64> = counts
            .chunks(2 * n)
            .map(|g| {
                let of = |side: usize| {
                    g.iter().enumerate().filter(|(i, _)| side_of(*i, n) == side).map(|(_, c)| *c).sum::<usize>()
                };
                ratio(of(*a) as f64, of(*b) as f64)
            })
            .collect();
        let list = groups.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" ");
        let cpu = match (cpu_per_command(*a), cpu_per_command(*b)) {
            (Some(a), Some(b)) => format!("{:.3}", ratio(b, a)),
            _ => "unknown".to_owned(),
        };
        println!(
            "  {} ÷ {}: commands/s {:.3} over all slices{target}; median of {} groups {:.3}, from {:.3} to {:.3} (each: {list}); host CPU per command, the other way round, {cpu}",
            sides[*a].name,
            sides[*b].name,
            ratio(per_side(*a) as f64, per_side(*b) as f64),
            groups.len(),
            percentile(&groups, 0.5),
            percentile(&groups, 0.0),
            percentile(&groups, 1.0),
        );
    }
    if failed.0 > 0 {
        println!("  PROBLEM     {} commands did not answer 2xx, e.g. {}", failed.0, failed.1.unwrap_or_default());
    }
    Ok(())
}

/// `a / b`, 0 when `b` is not positive.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Deposit 1.00 into the accounts of the side of the current slice, in turn, until `stop`, over
/// one keep-alive connection per host.
async fn deposits(
    authorities: &[String],
    paths: &[Vec<String>],
    active: &AtomicUsize,
    started: Instant,
    stop: &AtomicBool,
) -> (Vec<Answer>, usize, Option<String>) {
    let (mut answers, mut failed, mut sample) = (Vec::new(), 0, None);
    let mut connections: Vec<Option<Connection>> = (0..paths.len()).map(|_| None).collect();
    let mut next = vec![0usize; paths.len()];
    while !stop.load(Ordering::SeqCst) {
        let slice = active.load(Ordering::SeqCst);
        let side = side_of(slice, paths.len());
        let path = &paths[side][next[side] % paths[side].len()];
        next[side] += 1;
        let sent_at = Instant::now();
        match deposit(&mut connections[side], &authorities[side], path).await {
            Ok(()) => {
                let done = Instant::now();
                answers.push(Answer {
                    side,
                    slice,
                    at: (done - started).as_secs_f64(),
                    took: (done - sent_at).as_secs_f64(),
                });
            }
            Err(e) => {
                connections[side] = None;
                failed += 1;
                sample.get_or_insert(format!("{e:#}"));
            }
        }
    }
    (answers, failed, sample)
}
