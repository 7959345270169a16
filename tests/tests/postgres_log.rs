//! The PostgreSQL event store's global log, as processes other than the writer see it.
//!
//! - Racing writers from two processes: two `sluice serve` hosts on one PostgreSQL event store
//!   take deposits on the same accounts from 32 clients at once, while a third process, `sluice
//!   events --follow`, reads the global log as it grows. The follower sees positions 1..N in
//!   order with no gap and nothing twice, every acknowledged deposit exactly once at the version
//!   and position it was answered with, each stream's versions without a gap, and nothing that
//!   nobody was told of. (The sequence-gap problem: see `host/src/event_store/postgres.rs`.)
//! - The log-advanced signal is the store's: a host whose poll of the store is an hour still
//!   follows another host's appends at once, because PostgreSQL notifies it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::{Value, json};
use sluice_e2e::{Host, HostOptions, Plugin, Server, number, sluice_bin, sluice_command};
use tokio::io::AsyncBufReadExt;

const BANK: &[Plugin] = &[Plugin::BankAccount, Plugin::AccountsProjection];

/// An event as a follower printed it: (position, aggregate id, version).
type Seen = (u64, String, u64);

fn parse_seen(line: &Value) -> Result<Seen> {
    let field = |name: &str| line[name].as_u64().ok_or_else(|| anyhow!("no {name} in {line}"));
    let id = line["aggregateId"].as_str().ok_or_else(|| anyhow!("no aggregateId in {line}"))?;
    Ok((field("position")?, id.to_owned(), field("version")?))
}

/// `sluice events --follow` on the store at `url`, its lines collected as they come.
struct Follower {
    child: tokio::process::Child,
    seen: Arc<Mutex<Vec<Seen>>>,
    _dir: tempfile::TempDir,
}

impl Follower {
    fn start(url: &str) -> Result<Self> {
        let dir = tempfile::tempdir().context("failed to create the follower's folder")?;
        let data_dir = dir.path().display().to_string();
        let mut child = tokio::process::Command::new(sluice_bin()?)
            .args(["events", "--follow", "--event-store", url, "--data-dir", &data_dir])
            .env_remove("SLUICE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("failed to start `sluice events --follow`")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let parsed = serde_json::from_str(&line).map_err(anyhow::Error::from).and_then(|v| parse_seen(&v));
                match parsed {
                    Ok(event) => into.lock().unwrap_or_else(PoisonError::into_inner).push(event),
                    Err(e) => panic!("the follower printed {line:?}: {e}"),
                }
            }
        });
        Ok(Self { child, seen, _dir: dir })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Wait until the follower has printed `count` events (or a minute has passed).
    async fn wait_for(&self, count: usize) -> Vec<Seen> {
        for _ in 0..600 {
            let seen = self.seen();
            if seen.len() >= count {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.seen()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_in_two_processes_are_followed_without_a_gap() -> Result<()> {
    let Some(url) = Server::Postgres.fresh_database_url()? else { return Ok(()) };
    let options = || HostOptions::with_plugins(BANK).arg("--event-store").arg(url.clone());
    let (first, second) = (Host::start(options()).await?, Host::start(options()).await?);
    let mut ids = Vec::new();
    for n in 0..8 {
        let host = if n % 2 == 0 { &first } else { &second };
        ids.push(host.open_account(&format!("holder {n}"), "10").await?);
    }
    let mut follower = Follower::start(&url)?;
    // 32 clients, half on each host, deposit into the same 8 accounts: the hosts race on every
    // stream, and each host's group commits race for the log's next positions.
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let api = if client % 2 == 0 { first.api().clone() } else { second.api().clone() };
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..30 {
                    let id = &ids[(client + n) % ids.len()];
                    let reply =
                        api.put_json(&format!("/api/v1/depositFunds/{id}"), &json!({ "amount": number("1") })).await?;
                    match reply.status.as_u16() {
                        200 => {
                            acknowledged.push((reply.u64_field("position")?, id.clone(), reply.u64_field("version")?))
                        }
                        // Lost the race too often: nothing was appended.
                        409 => {}
                        status => return Err(anyhow!("a deposit answered {status}: {reply}")),
                    }
                }
                anyhow::Ok(acknowledged)
            })
        })
        .collect();
    let mut acknowledged: Vec<Seen> = Vec::new();
    for client in clients {
        acknowledged.extend(client.await??);
    }
    ensure!(acknowledged.len() > 300, "only {} of 960 deposits were acknowledged", acknowledged.len());

    let expected = ids.len() + acknowledged.len();
    let seen = follower.wait_for(expected).await;
    follower.child.kill().await.context("failed to stop the follower")?;
    let positions: Vec<u64> = seen.iter().map(|e| e.0).collect();
    let one_to_n: Vec<u64> = (1..=positions.len() as u64).collect();
    ensure!(
        positions == one_to_n,
        "the follower saw positions out of order, twice or with a gap: {:?}",
        positions.windows(2).find(|w| w[1] != w[0] + 1)
    );
    ensure!(seen.len() == expected, "the follower saw {} events, not the {expected} acknowledged", seen.len());
    let followed: BTreeSet<&Seen> = seen.iter().collect();
    for deposit in &acknowledged {
        ensure!(followed.contains(deposit), "acknowledged deposit {deposit:?} is not where the follower saw it");
    }
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (_, id, version) in &seen {
        versions.entry(id).or_default().push(*version);
    }
    for (id, versions) in &versions {
        let one_to_k: Vec<u64> = (1..=versions.len() as u64).collect();
        ensure!(*versions == one_to_k, "stream {id} reached the follower as versions {versions:?}");
    }
    // The log itself, read once afterwards, is what the follower saw.
    let log =
        sluice_command(&["events", "--event-store", &url, "--data-dir", &first.data_dir().display().to_string()])?;
    let log: Vec<Seen> = log
        .lines()
        .map(|line| serde_json::from_str(line).map_err(anyhow::Error::from).and_then(|v| parse_seen(&v)))
        .collect::<Result<_>>()?;
    ensure!(log == seen, "the log ({} events) differs from what the follower saw ({})", log.len(), seen.len());
    Ok(())
}

#[tokio::test]
async fn a_host_follows_another_hosts_appends_when_notified() -> Result<()> {
    let Some(url) = Server::Postgres.fresh_database_url()? else { return Ok(()) };
    let options = || HostOptions::with_plugins(BANK).arg("--event-store").arg(url.clone());
    let writer = Host::start(options()).await?;
    // This host reads the store's head once an hour: only a notification can wake its
    // projection within the read-your-writes wait (10 s) below.
    let reader = Host::start(options().arg("--log-poll-ms").arg("3600000")).await?;
    for round in 1..=3 {
        let id = writer.open_account(&format!("holder {round}"), "10").await?;
        let position = writer.deposit(&id, "2.5").await?;
        let balances = reader.balances_by_query(position).await?;
        ensure!(
            balances.get(&id).map(String::as_str) == Some("12.5"),
            "round {round}: the reader's projection has {balances:?}"
        );
    }
    Ok(())
}
