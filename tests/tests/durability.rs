//! Acknowledged means durable, and two hosts on one store never overdraw: with group commit on
//! (appends that arrive together share one commit), a host killed with SIGKILL in a burst of
//! concurrent commands has every command it answered 2xx in its streams after the restart, at
//! the version and position it answered — on the embedded SQLite event store and on the
//! PostgreSQL one. Two hosts sharing one PostgreSQL event store decide withdrawals against each
//! other's appends and never overdraw.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::json;
use sluice_e2e::{Host, HostOptions, Plugin, Server, check_stream, decimal, number, race_withdrawals};

const BANK: &[Plugin] = &[Plugin::BankAccount, Plugin::AccountsProjection];

async fn every_acknowledged_command_survives_a_sigkill(options: HostOptions) -> Result<()> {
    let mut host = Host::start(options).await?;
    let mut ids = Vec::new();
    for n in 0..16 {
        ids.push(host.open_account(&format!("holder {n}"), "10").await?);
    }
    // 32 clients deposit as fast as the host answers until it dies; each keeps what was answered.
    let api = host.api().clone();
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let (api, ids) = (api.clone(), ids.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let id = &ids[(client + n) % ids.len()];
                    let body = json!({ "amount": number("1.25") });
                    match api.put_json(&format!("/api/v1/depositFunds/{id}"), &body).await {
                        Ok(reply) if reply.status == 200 => {
                            acknowledged.push((id.clone(), reply.u64_field("version")?, reply.u64_field("position")?));
                        }
                        // A lost race for the same account answers 409; the host's death ends the loop.
                        Ok(reply) if reply.status == 409 => {}
                        _ => break,
                    }
                }
                anyhow::Ok(acknowledged)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    host.kill()?;
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await??);
    }
    ensure!(acknowledged.len() > 100, "only {} deposits were acknowledged before the kill", acknowledged.len());

    host.restart().await?;
    let mut stored = HashMap::new();
    for id in &ids {
        let events = host.events("BankAccount", id).await?;
        check_stream(&events, "BankAccount", id)?;
        for event in events {
            stored.insert((id.clone(), event["version"].as_u64().unwrap_or(0)), event);
        }
    }
    for (id, version, position) in &acknowledged {
        let event = stored.get(&(id.clone(), *version));
        ensure!(
            event.is_some_and(|e| e["position"].as_u64() == Some(*position) && e["eventType"] == "FundsDepositedEvent"),
            "acknowledged deposit {id} v{version} at position {position} is not in the store after the kill: {event:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_acknowledged_command_survives_a_sigkill_in_a_burst() -> Result<()> {
    every_acknowledged_command_survives_a_sigkill(HostOptions::with_plugins(BANK)).await
}

#[tokio::test]
async fn every_acknowledged_command_survives_a_sigkill_on_a_postgres_event_store() -> Result<()> {
    let Some(url) = Server::Postgres.fresh_database_url()? else { return Ok(()) };
    every_acknowledged_command_survives_a_sigkill(HostOptions::with_plugins(BANK).arg("--event-store").arg(url)).await
}

#[tokio::test]
async fn two_hosts_on_one_postgres_event_store_never_overdraw() -> Result<()> {
    let Some(url) = Server::Postgres.fresh_database_url()? else { return Ok(()) };
    let options = || HostOptions::with_plugins(BANK).arg("--event-store").arg(url.clone());
    let (first, second) = (Host::start(options()).await?, Host::start(options()).await?);
    let id = first.open_account("Shared", "100").await?;
    // 30 withdrawals of 10, half through each host, all at once: exactly 10 succeed.
    let succeeded = race_withdrawals(&first, &second, &id).await?;
    ensure!(succeeded == 10, "{succeeded} withdrawals of 10 from 100 succeeded");
    for host in [&first, &second] {
        let state = host.state("BankAccount", &id, None).await?.expect_status(200)?;
        ensure!(decimal(&state.body["state"]["balance"])? == "0", "balance by replay: {state}");
        let events = host.events("BankAccount", &id).await?;
        check_stream(&events, "BankAccount", &id)?;
        ensure!(events.len() == 11, "{} events in the stream, not 11", events.len());
        // Each host's projection follows the shared log, whoever appended.
        let position = events.last().and_then(|e| e["position"].as_u64()).unwrap_or(0);
        let balances = host.balances_by_query(position).await?;
        ensure!(balances.get(&id).map(String::as_str) == Some("0"), "read model {balances:?}");
    }
    Ok(())
}
