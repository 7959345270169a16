//! The sandbox, from outside: a plugin that traps, spins, hogs memory or breaks its contract
//! fails that one call with a 500 and a generic message, appends nothing, and neither the host
//! nor the other plugins notice.
//!
//! No tight timing: each call must merely finish within the client's 30 s timeout.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use serde_json::json;
use sluice_e2e::{Api, Host, HostOptions, Plugin, Reply, check_stream, decimal};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// One test's plugins at a time: each spins guests for seconds, and on a two-core machine the
/// spinners of tests running side by side starve the host another test watches for starvation.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FAULTY: &str = "Faulty";
const BANK: &str = "BankAccount";

/// Each misbehaving command and the code it must answer.
const FAULTS: [(&str, &str); 4] = [
    ("Trap", "plugin_trapped"),
    ("Spin", "plugin_timeout"),
    ("Hog", "plugin_out_of_memory"),
    ("Undeclared", "plugin_fault"),
];

async fn start() -> Result<Host> {
    let options =
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::Faulty]).request_timeout(Duration::from_secs(30));
    Host::start(options).await
}

/// A fault answer: 500, the code, and a message that gives nothing of the plugin away.
fn check_fault(reply: &Reply, code: &str) -> Result<()> {
    reply.check_error(500, &[code])?;
    let message = reply.body["message"].as_str().unwrap_or_default().to_lowercase();
    for internal in ["panicked", "backtrace", "wasm trap", ".rs:", "unreachable", "0x"] {
        ensure!(!message.contains(internal), "the message shows internals ({internal:?}): {reply}");
    }
    Ok(())
}

async fn faulty(api: &Api, id: &str, command: &str) -> Result<Reply> {
    api.command(FAULTY, id, command, &json!({}), None).await
}

/// The stream does not exist: nothing was appended.
async fn check_absent(api: &Api, id: &str) -> Result<()> {
    api.state(FAULTY, id, None).await?.check_error(404, &["aggregate_not_found"])?;
    api.get(&format!("/api/aggregates/{FAULTY}/{id}/events")).await?.check_error(404, &["aggregate_not_found"])
}

/// Opens an account with 10, deposits 1 `deposits` times, checks the balance.
async fn bank_round(api: &Api, deposits: u64) -> Result<()> {
    let id = api.open_account("Ada", "10").await?;
    for _ in 0..deposits {
        api.put_json(&format!("/api/v1/depositFunds/{id}"), &json!({"amount": 1})).await?.expect_status(200)?;
    }
    let state = api.state(BANK, &id, None).await?.expect_status(200)?;
    ensure!(decimal(&state.body["state"]["balance"])? == (10 + deposits).to_string(), "balance: {state}");
    Ok(())
}

/// A guest that keeps what it allocates grows the instance that serves it call after call: the
/// host starts a fresh one once its memory passes a quarter of the cap, so 60 commands that
/// leak 4 MiB each (240 MiB, against a 64 MiB cap) all succeed, where an instance kept for a
/// count of calls alone would run out of memory within 16.
#[tokio::test]
async fn a_leaking_plugin_is_given_fresh_instances_before_it_runs_out_of_memory() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut host = start().await?;
    for n in 0..60 {
        let id = Uuid::new_v4().to_string();
        let reply = faulty(&host, &id, "Leak").await?;
        ensure!(reply.status == 200, "leak {n}: {reply}");
    }
    ensure!(host.is_running(), "sluice exited\n{}", host.log());
    Ok(())
}

#[tokio::test]
async fn each_fault_fails_only_its_own_call() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut host = start().await?;
    for (command, code) in FAULTS {
        let id = Uuid::new_v4().to_string();
        check_fault(&faulty(&host, &id, command).await?, code)?;
        check_absent(&host, &id).await?;

        // The host and both plugins carry on.
        host.healthy().await?;
        let ok = Uuid::new_v4().to_string();
        let reply = faulty(&host, &ok, "Ok").await?.expect_status(200)?;
        ensure!(reply.u64_field("version")? == 1, "{reply}");
        ensure!(reply.body["events"][0]["eventType"] == "Happened", "{reply}");
        bank_round(&host, 1).await?;
    }
    ensure!(host.is_running(), "sluice exited\n{}", host.log());
    Ok(())
}

/// A command that runs for 200 ms (twenty epoch ticks, at each of which it yields its async
/// worker) is no fault: it is answered once, counted as an `ok` call and not as a timeout, and
/// the plugin's later commands are answered too.
#[tokio::test]
async fn a_slow_command_that_yields_at_every_tick_is_answered_once() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let host = start().await?;
    let id = Uuid::new_v4().to_string();
    let reply = faulty(&host, &id, "Slow").await?.expect_status(200)?;
    ensure!(reply.u64_field("version")? == 1, "{reply}");
    let reply = faulty(&host, &id, "Ok").await?.expect_status(200)?;
    ensure!(reply.u64_field("version")? == 2, "{reply}");
    let events = host.events(FAULTY, &id).await?;
    check_stream(&events, FAULTY, &id)?;
    ensure!(events.len() == 2, "the slow command appended other than once: {events:?}");

    let metrics = host.get("/metrics").await?.expect_status(200)?;
    let counted = |outcome: &str| {
        metrics.text.lines().any(|line| {
            line.starts_with("sluice_plugin_calls_total{")
                && line.contains(r#"plugin="Faulty""#)
                && line.contains(&format!(r#"outcome="{outcome}""#))
        })
    };
    ensure!(counted("ok"), "no ok call counted:\n{}", metrics.text);
    ensure!(!counted("time"), "the slow command counted as a timeout:\n{}", metrics.text);
    bank_round(&host, 1).await
}

#[tokio::test]
async fn faults_leave_an_existing_stream_untouched() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let host = start().await?;
    let id = Uuid::new_v4().to_string();
    faulty(&host, &id, "Ok").await?.expect_status(200)?;
    let before = host.events(FAULTY, &id).await?;

    for (command, code) in FAULTS {
        check_fault(&faulty(&host, &id, command).await?, code)?;
        ensure!(host.events(FAULTY, &id).await? == before, "{command} changed the stream");
    }
    // With If-Match too: a fault is not a conflict and appends nothing.
    let reply = host.command(FAULTY, &id, "Trap", &json!({}), Some(1)).await?;
    check_fault(&reply, "plugin_trapped")?;

    let reply = faulty(&host, &id, "Ok").await?.expect_status(200)?;
    ensure!(reply.u64_field("version")? == 2, "the stream did not go on at version 2: {reply}");
    let events = host.events(FAULTY, &id).await?;
    check_stream(&events, FAULTY, &id)?;
    ensure!(events.len() == 2, "{events:?}");
    let state = host.state(FAULTY, &id, None).await?.expect_status(200)?;
    ensure!(state.u64_field("version")? == 2, "{state}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spinning_and_hogging_plugins_do_not_stop_bank_commands() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut host = start().await?;

    // More spinners than this machine has cores, hogs and a trap, all at once.
    let started = Instant::now();
    let mut faults = Vec::new();
    for command in ["Spin", "Spin", "Spin", "Hog", "Hog", "Trap"] {
        let api = host.api().clone();
        faults.push(tokio::spawn(async move {
            let id = Uuid::new_v4().to_string();
            let reply = faulty(&api, &id, command).await;
            (command, id, reply, started.elapsed())
        }));
    }
    let running = |faults: &[JoinHandle<_>]| faults.iter().any(|f| !f.is_finished());

    // Meanwhile, bank commands keep being served. A round that ends while a fault is still
    // running overlapped it all along: every fault was sent before the first round.
    let (mut rounds, mut rounds_while_faulting) = (0_u64, 0_u64);
    loop {
        bank_round(&host, 2).await?;
        rounds += 1;
        if running(&faults) {
            rounds_while_faulting += 1;
        } else if rounds >= 3 {
            break;
        }
        if rounds >= 200 {
            break;
        }
    }

    let mut slowest = Duration::ZERO;
    for fault in faults {
        let (command, id, reply, took) = fault.await?;
        let code = match FAULTS.iter().find(|(c, _)| *c == command) {
            Some((_, code)) => *code,
            None => bail!("unexpected command {command}"),
        };
        check_fault(&reply?, code)?;
        check_absent(&host, &id).await?;
        slowest = slowest.max(took);
    }
    eprintln!("{rounds} bank rounds, {rounds_while_faulting} while faults ran; slowest fault took {slowest:?}");
    // Only meaningful when the faults ran long enough to overlap a round.
    if slowest >= Duration::from_secs(1) {
        ensure!(
            rounds_while_faulting >= 1,
            "no bank command completed during {slowest:?} of spinning plugins: they starve the host"
        );
    }

    // Afterwards everything still works.
    bank_round(&host, 3).await?;
    faulty(&host, &Uuid::new_v4().to_string(), "Ok").await?.expect_status(200)?;
    host.healthy().await?;
    ensure!(host.is_running(), "sluice exited\n{}", host.log());
    Ok(())
}

/// Instances are reused from one command to the next (a batch per instance), and every reused
/// call gets the whole time budget: with `plugin_timeout_ms = 500`, a 200 ms command on an
/// instance that last ran more than 500 ms ago is answered, not stopped. A fault between two
/// commands leaves nothing behind for the next one.
#[tokio::test]
async fn a_reused_instance_gets_a_fresh_deadline_and_a_faulted_one_is_not_reused() -> Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("sluice.toml");
    std::fs::write(&file, "[limits]\nplugin_timeout_ms = 500\n")?;
    let options = HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::Faulty])
        .request_timeout(Duration::from_secs(30))
        .arg("--config")
        .arg(file.to_string_lossy().into_owned());
    let host = Host::start(options).await?;
    let id = Uuid::new_v4().to_string();
    let mut version = 0;
    for round in 0..3 {
        for _ in 0..3 {
            version += 1;
            let reply = faulty(&host, &id, "Ok").await?.expect_status(200)?;
            ensure!(reply.u64_field("version")? == version, "round {round}: {reply}");
        }
        // Past the budget of the instance's last call.
        tokio::time::sleep(Duration::from_millis(700)).await;
        version += 1;
        let reply = faulty(&host, &id, "Slow").await?.expect_status(200)?;
        ensure!(reply.u64_field("version")? == version, "round {round}: the slow command on a warm instance: {reply}");
        check_fault(&faulty(&host, &id, "Trap").await?, "plugin_trapped")?;
        check_fault(&faulty(&host, &id, "Spin").await?, "plugin_timeout")?;
    }
    let events = host.events(FAULTY, &id).await?;
    check_stream(&events, FAULTY, &id)?;
    ensure!(events.len() as u64 == version, "{events:?}");
    let metrics = host.get("/metrics").await?.expect_status(200)?;
    let timeouts: Vec<&str> = metrics
        .text
        .lines()
        .filter(|l| {
            l.starts_with("sluice_plugin_calls_total{")
                && l.contains(r#"plugin="Faulty""#)
                && l.contains(r#"outcome="time""#)
        })
        .collect();
    ensure!(
        timeouts.len() == 1 && timeouts[0].trim_end().ends_with(" 3"),
        "only the three Spin commands may time out: {timeouts:?}"
    );
    bank_round(&host, 3).await
}
