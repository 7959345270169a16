//! Acknowledged means durable: with group commit on (appends that arrive together share one
//! fsync), a host killed with SIGKILL in a burst of concurrent commands has every command it
//! answered 2xx in its streams after the restart, at the version and position it answered.

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::json;
use sluice_e2e::{Host, HostOptions, Plugin, check_stream, number};

#[tokio::test]
async fn every_acknowledged_command_survives_a_sigkill_in_a_burst() -> Result<()> {
    let mut host = Host::start(HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection])).await?;
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
    let mut stored = std::collections::HashMap::new();
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
