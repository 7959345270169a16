//! Optimistic concurrency seen from outside: many withdrawals at once can never overdraw, and
//! the stream they leave has no gaps and no duplicates.

use std::sync::Arc;

use anyhow::{Result, bail, ensure};
use serde_json::json;
use sluice_e2e::{Api, Host, HostOptions, Reply, check_stream, decimal};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

const BANK: &str = "BankAccount";
const OPENING: u64 = 100;
const AMOUNT: u64 = 10;
const WITHDRAWALS: usize = 30;

/// Which API a withdrawal goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Seed,
    Generic,
}

async fn withdraw(api: &Api, route: Route, id: &str) -> Result<Reply> {
    let body = json!({"amount": AMOUNT});
    match route {
        Route::Seed => api.put_json(&format!("/api/v1/withdrawFunds/{id}"), &body).await,
        Route::Generic => api.command(BANK, id, "WithdrawFunds", &body, None).await,
    }
}

/// Open an account with 100, fire 30 withdrawals of 10 at the same moment (`route_of(i)` picks
/// each one's route), then check every answer, the balance and the stream.
async fn race(route_of: fn(usize) -> Route) -> Result<()> {
    let host = Host::start(HostOptions::default()).await?;
    let id = host.open_account("Leslie Lamport", &OPENING.to_string()).await?;

    let barrier = Arc::new(Barrier::new(WITHDRAWALS));
    let mut tasks = JoinSet::new();
    for i in 0..WITHDRAWALS {
        let (api, id, barrier) = (host.api().clone(), id.clone(), barrier.clone());
        let route = route_of(i);
        tasks.spawn(async move {
            barrier.wait().await;
            (route, withdraw(&api, route, &id).await)
        });
    }

    let (mut successes, mut rejected, mut conflicts) = (0_u64, 0_u64, 0_u64);
    let mut versions = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (route, reply) = joined?;
        let reply = reply?;
        match reply.status.as_u16() {
            200 => {
                successes += 1;
                ensure!(reply.body["id"] == id.as_str(), "{route:?} answered another id: {reply}");
                versions.push(reply.u64_field("version")?);
            }
            400 => {
                reply.check_error(400, &["rejected"])?;
                rejected += 1;
            }
            409 => {
                reply.check_error(409, &["conflict"])?;
                conflicts += 1;
            }
            _ => bail!("{route:?} withdrawal answered {reply}"),
        }
    }
    eprintln!("{successes} withdrawn, {rejected} refused, {conflicts} conflicts");

    let max_successes = OPENING / AMOUNT;
    ensure!(successes >= 1, "no withdrawal succeeded: someone always wins the race");
    ensure!(successes <= max_successes, "{successes} withdrawals of {AMOUNT} from {OPENING}: overdrawn");
    // A refusal means the balance was below 10 when it was decided; balances only go down, so
    // after any refusal the account must end empty.
    if rejected > 0 {
        ensure!(
            successes == max_successes,
            "{rejected} withdrawals refused for lack of funds, but only {successes} succeeded"
        );
    }

    // Every success got its own version: exactly 2..=n.
    versions.sort_unstable();
    let n = 1 + successes;
    ensure!(versions == (2..=n).collect::<Vec<_>>(), "versions answered: {versions:?}");

    let state = host.state(BANK, &id, None).await?.expect_status(200)?;
    ensure!(state.u64_field("version")? == n, "state at the wrong version: {state}");
    let balance = decimal(&state.body["state"]["balance"])?;
    let expected = (OPENING - AMOUNT * successes).to_string();
    ensure!(balance == expected, "balance {balance}, expected {expected} after {successes} withdrawals");

    let events = host.events(BANK, &id).await?;
    check_stream(&events, BANK, &id)?;
    ensure!(events.len() as u64 == n, "{} events for {successes} withdrawals", events.len());
    let withdrawn = events.iter().filter(|e| e["eventType"] == "FundsWithdrawnEvent").count() as u64;
    ensure!(withdrawn == successes, "{withdrawn} FundsWithdrawnEvent for {successes} successes");
    for event in &events[1..] {
        ensure!(decimal(&event["data"]["amount"])? == AMOUNT.to_string(), "wrong amount: {event}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_never_overdraw() -> Result<()> {
    race(|_| Route::Seed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_withdrawals_through_both_apis_never_overdraw() -> Result<()> {
    race(|i| if i % 2 == 0 { Route::Seed } else { Route::Generic }).await
}
