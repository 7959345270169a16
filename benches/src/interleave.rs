//! `--http-native --http-interleave N`: the Wasm aggregate ÷ native through the host over HTTP,
//! with both hosts running at once and the load switched between them in short slices.
//!
//! Why: this machine's speed drifts by a third within minutes, so two runs a minute apart
//! (`--http-pairs`) differ by as much as the sandbox costs: one 8-pair run's ratios spread
//! from 0.81 to 0.97. Here a real `sluice serve` (the Wasm aggregate) and `sluice-bench serve`
//! (the same host, the aggregate compiled natively) are both up, each with its own data and log,
//! and the same clients load one and then the other in slices of a few seconds, in the order
//! W N N W W N N W …: whatever the machine does on a scale longer than a slice falls on both
//! sides alike, and the order cancels a steady drift within each group of four. The idle host
//! only finishes its projection's last few events; its CPU is counted to it.
//!
//! Printed per side: commands/s over its slices, p50 and p99, host CPU per command (all the
//! process's CPU over the run, its idle slices included, over the commands it answered). Then
//! the ratio of the totals, the median of the groups of four and their spread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tokio::time::Instant;

use crate::http_load::{Connection, LoadSetup, deposit};
use crate::server::{Launch, Server};
use crate::swap::percentile;

/// The side of slice `i`: W N N W, repeated (0 is Wasm, 1 native).
fn side_of(slice: usize) -> usize {
    [0, 1, 1, 0][slice % 4]
}

/// One answered command: its side, its slice (when it was sent), when it completed (since the
/// start) and how long it took, in seconds.
struct Answer {
    side: usize,
    slice: usize,
    at: f64,
    took: f64,
}

pub async fn bench(setup: &LoadSetup, slices: usize, slice: Duration) -> Result<()> {
    let native = setup.native.as_deref().context("the interleaved run needs the native host")?;
    ensure!(setup.clients > 0 && setup.accounts >= setup.clients, "need at least one account per client");
    // Whole groups of four, so both sides get the same time.
    let slices = slices.max(4).div_ceil(4) * 4;
    let read =
        |path: &std::path::Path| std::fs::read(path).with_context(|| format!("failed to read {}", path.display()));
    let plugins = || -> Result<_> {
        Ok(vec![("bank_account.wasm", read(&setup.aggregate)?), ("accounts_projection.wasm", read(&setup.projection)?)])
    };
    let stores = if setup.args.is_empty() { "embedded default".to_owned() } else { setup.args.join(" ") };
    println!(
        "Wasm aggregate vs the same compiled natively, through the host over HTTP, interleaved: sluice serve and sluice-bench serve (release, {stores}) both running, {} clients depositing into {} accounts of each, {slices} slices of {} s in the order W N N W …, accounts projection running",
        setup.clients,
        setup.accounts,
        slice.as_secs_f64()
    );
    let wasm =
        Server::start(&Launch { sluice: &setup.sluice, plugins: plugins()?, cache: None, args: setup.args.clone() })
            .await?;
    let native =
        Server::start(&Launch { sluice: native, plugins: plugins()?, cache: None, args: setup.args.clone() }).await?;
    let hosts = [wasm, native];
    let result = run(&hosts, setup, slices, slice).await;
    let result = result.with_context(|| {
        format!("the hosts' logs end with:\n{}\n---\n{}", hosts[0].log_tail(20), hosts[1].log_tail(20))
    });
    for host in hosts {
        host.stop().await;
    }
    result
}

async fn run(hosts: &[Server; 2], setup: &LoadSetup, slices: usize, slice: Duration) -> Result<()> {
    let mut ids = Vec::with_capacity(2);
    for host in hosts {
        ids.push(Arc::new(host.open_accounts(setup.accounts).await?));
        host.caught_up().await?;
    }
    let authorities: Arc<[String; 2]> =
        Arc::new([0, 1].map(|side| hosts[side].base.trim_start_matches("http://").to_owned()));
    let active = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..setup.clients)
        .map(|client| {
            let paths: [Vec<String>; 2] = [0, 1].map(|side| {
                ids[side]
                    .iter()
                    .skip(client)
                    .step_by(setup.clients)
                    .map(|id| format!("/api/v1/depositFunds/{id}"))
                    .collect()
            });
            let (authorities, active, stop) = (authorities.clone(), active.clone(), stop.clone());
            tokio::spawn(async move { deposits(&authorities, &paths, &active, started, &stop).await })
        })
        .collect();
    let cpu_before = [hosts[0].cpu_time(), hosts[1].cpu_time()];
    for i in 0..slices {
        active.store(i, Ordering::SeqCst);
        tokio::time::sleep_until(started + slice * u32::try_from(i + 1).unwrap_or(u32::MAX)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let cpu_after = [hosts[0].cpu_time(), hosts[1].cpu_time()];
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
        if answer.side == side_of(answer.slice) && within {
            counts[answer.slice] += 1;
        }
    }
    let per_side = |side: usize| -> usize { (0..slices).filter(|&i| side_of(i) == side).map(|i| counts[i]).sum() };
    let seconds = width * (slices / 2) as f64;
    for (side, name) in [(0, "wasm  "), (1, "native")] {
        let latencies: Vec<f64> = answers.iter().filter(|a| a.side == side).map(|a| a.took * 1000.0).collect();
        let served = answers.iter().filter(|a| a.side == side).count();
        let cpu = match (cpu_before[side], cpu_after[side]) {
            (Some(from), Some(to)) if served > 0 => {
                format!("{:.1} µs", to.saturating_sub(from).as_secs_f64() * 1e6 / served as f64)
            }
            _ => "unknown".to_owned(),
        };
        let head = hosts[side].plugin().await.ok().and_then(|p| p.u64("head").ok()).unwrap_or(0);
        println!(
            "  {name} {:>8.0} commands/s   p50 {:>6.2} ms   p99 {:>6.2} ms   host CPU/command {cpu}   log {head} events",
            per_side(side) as f64 / seconds,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
        );
    }
    let groups: Vec<f64> = counts.chunks(4).map(|g| ratio((g[0] + g[3]) as f64, (g[1] + g[2]) as f64)).collect();
    let list = groups.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" ");
    println!(
        "  ratio wasm/native: commands/s {:.3} over all slices (target >= 0.9); median of {} groups of four {:.3}, from {:.3} to {:.3} (each: {list})",
        ratio(per_side(0) as f64, per_side(1) as f64),
        groups.len(),
        percentile(&groups, 0.5),
        percentile(&groups, 0.0),
        percentile(&groups, 1.0),
    );
    if let (Some(w0), Some(w1), Some(n0), Some(n1)) = (cpu_before[0], cpu_after[0], cpu_before[1], cpu_after[1]) {
        let served = |side: usize| answers.iter().filter(|a| a.side == side).count().max(1) as f64;
        let (w, n) = ((w1 - w0).as_secs_f64() / served(0), (n1 - n0).as_secs_f64() / served(1));
        println!("  host CPU per command native/wasm {:.3}", ratio(n, w));
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
    authorities: &[String; 2],
    paths: &[Vec<String>; 2],
    active: &AtomicUsize,
    started: Instant,
    stop: &AtomicBool,
) -> (Vec<Answer>, usize, Option<String>) {
    let (mut answers, mut failed, mut sample) = (Vec::new(), 0, None);
    let mut connections: [Option<Connection>; 2] = [None, None];
    let mut next = [0usize; 2];
    while !stop.load(Ordering::SeqCst) {
        let slice = active.load(Ordering::SeqCst);
        let side = side_of(slice);
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
