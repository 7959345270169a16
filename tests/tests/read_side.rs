//! The read side against the real binary: the seed's bank queries on SQLite, PostgreSQL and
//! MariaDB; read-your-writes; effectively-once after a crash in a burst; isolation between
//! projections; rebuilds in place and into another database while queries keep answering.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sluice_e2e::{Api, Host, HostOptions, Plugin, Server, decimal, number, sluice_command};

const BANK_AND_ACCOUNTS: &[Plugin] = &[Plugin::BankAccount, Plugin::AccountsProjection];

async fn bank_host(read_store: Option<&str>) -> Result<Host> {
    let mut options = HostOptions::with_plugins(BANK_AND_ACCOUNTS);
    if let Some(url) = read_store {
        options = options.arg("--read-store").arg(url);
    }
    Host::start(options).await
}

/// Accounts of a lookup answer, by id, with exact balances.
fn accounts(reply: &Value) -> Result<BTreeMap<String, (String, String)>> {
    let list = reply["accounts"].as_array().with_context(|| format!("no accounts list in {reply}"))?;
    let mut by_id = BTreeMap::new();
    for account in list {
        let id = account["id"].as_str().with_context(|| format!("no id in {account}"))?.to_owned();
        let holder = account["accountHolder"].as_str().unwrap_or_default().to_owned();
        by_id.insert(id, (holder, decimal(&account["balance"])?));
    }
    Ok(by_id)
}

/// The seed's bank flow, then every seed query, on the read store at `url` (SQLite if none).
async fn seed_bank_queries(url: Option<&str>) -> Result<()> {
    let host = bank_host(url).await?;
    let ada = host.open_account("Ada", "50.00").await?;
    let bob = host.open_account("Bob", "10").await?;
    let gone = host.open_account("Ada", "1").await?;
    host.deposit(&ada, "0.10").await?;
    host.deposit(&ada, "0.20").await?;
    host.put_json(&format!("/api/v1/withdrawFunds/{bob}"), &json!({ "amount": number("2.5") }))
        .await?
        .expect_status(200)?;
    let last =
        host.delete(&format!("/api/v1/closeBankAccount/{gone}")).await?.expect_status(200)?.u64_field("position")?;

    // Read-your-writes through the header: the answer reflects everything up to `last`.
    let all = host
        .send(
            host.request(reqwest::Method::GET, "/api/v1/bankAccountLookup/")
                .header("Sluice-Position", last.to_string()),
        )
        .await?
        .expect_status(200)?;
    ensure!(all.str_field("message").is_ok_and(|m| !m.is_empty()), "no message: {all}");
    let listed = accounts(&all.body)?;
    ensure!(listed.len() == 2, "a closed account must leave the read model: {all}");
    ensure!(listed[&ada] == ("Ada".to_owned(), "50.3".to_owned()), "exact balance of Ada: {all}");
    ensure!(listed[&bob] == ("Bob".to_owned(), "7.5".to_owned()), "exact balance of Bob: {all}");

    let one = host.get(&format!("/api/v1/bankAccountLookup/byId/{ada}")).await?.expect_status(200)?;
    ensure!(accounts(&one.body)?.len() == 1, "byId lists one account: {one}");
    let account = &one.body["accounts"][0];
    for field in ["id", "accountHolder", "creationDate", "accountType", "balance"] {
        ensure!(!account[field].is_null(), "field {field} missing: {one}");
    }
    host.get(&format!("/api/v1/bankAccountLookup/byId/{gone}")).await?.expect_status(204)?;
    let by_holder = host.get("/api/v1/bankAccountLookup/byHolder/Ada").await?.expect_status(200)?;
    ensure!(accounts(&by_holder.body)?.keys().eq([&ada]), "byHolder Ada: {by_holder}");
    host.get("/api/v1/bankAccountLookup/byHolder/Nobody").await?.expect_status(204)?;
    let richer = host.get("/api/v1/bankAccountLookup/withBalance/GREATER_THAN/10").await?.expect_status(200)?;
    ensure!(accounts(&richer.body)?.keys().eq([&ada]), "GREATER_THAN 10: {richer}");
    let poorer = host.get("/api/v1/bankAccountLookup/withBalance/LESS_THAN/7.51").await?.expect_status(200)?;
    ensure!(accounts(&poorer.body)?.keys().eq([&bob]), "LESS_THAN 7.51: {poorer}");
    host.get("/api/v1/bankAccountLookup/withBalance/LESS_THAN/7.5").await?.expect_status(204)?;
    host.get("/api/v1/bankAccountLookup/withBalance/SIDEWAYS/1").await?.check_error(400, &["invalid_query"])?;

    // The generic route answers the same, and knows no other query.
    let generic = host
        .get(&format!("/api/projections/accounts/queries/byId?id={bob}&position={last}"))
        .await?
        .expect_status(200)?;
    ensure!(accounts(&generic.body)?.get(&bob) == listed.get(&bob), "generic byId of Bob: {generic}");
    host.get("/api/projections/accounts/queries/nope").await?.check_error(404, &["unknown_query"])?;
    host.get("/api/projections/nope/queries/all").await?.check_error(404, &["unknown_projection"])?;

    // Rebuilding gives the same answers.
    host.send_raw(reqwest::Method::POST, "/api/v1/restoreReadDb", Vec::new()).await?.expect_status(201)?;
    let rebuilt = host.get("/api/v1/bankAccountLookup/").await?.expect_status(200)?;
    ensure!(accounts(&rebuilt.body)? == listed, "rebuild changed the answers: {rebuilt} vs {all}");
    Ok(())
}

#[tokio::test]
async fn seed_bank_queries_on_sqlite() -> Result<()> {
    seed_bank_queries(None).await
}

#[tokio::test]
async fn seed_bank_queries_on_postgres() -> Result<()> {
    let Some(url) = Server::Postgres.fresh_database_url()? else { return Ok(()) };
    seed_bank_queries(Some(&url)).await
}

#[tokio::test]
async fn seed_bank_queries_on_mariadb() -> Result<()> {
    let Some(url) = Server::MariaDb.fresh_database_url()? else { return Ok(()) };
    seed_bank_queries(Some(&url)).await
}

/// The last position in the store, from the events of every account.
async fn head(api: &Api, ids: &[String]) -> Result<u64> {
    let mut head = 0;
    for id in ids {
        for event in api.events("BankAccount", id).await? {
            head = head.max(event["position"].as_u64().unwrap_or(0));
        }
    }
    Ok(head)
}

#[tokio::test]
async fn a_crash_in_a_burst_changes_no_row_twice() -> Result<()> {
    let mut host = bank_host(None).await?;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(host.open_account(&format!("holder {n}"), "100").await?);
    }
    // 1000 deposits from 16 clients; the host is killed (SIGKILL) part way through.
    let api = host.api().clone();
    let burst: Vec<_> = (0..16)
        .map(|client| {
            let (api, ids) = (api.clone(), ids.clone());
            tokio::spawn(async move {
                let mut acknowledged = 0;
                for n in 0..63 {
                    let id = &ids[(client + n) % ids.len()];
                    let sent =
                        api.put_json(&format!("/api/v1/depositFunds/{id}"), &json!({ "amount": number("1.01") })).await;
                    if matches!(sent, Ok(ref reply) if reply.status == 200) {
                        acknowledged += 1;
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    host.kill()?;
    let mut acknowledged = 0;
    for client in burst {
        acknowledged += client.await?;
    }
    host.restart().await?;
    let position = head(&host, &ids).await?;
    let truth = host.balances_by_replay(&ids).await?;
    let read_model = host.balances_by_query(position).await?;
    ensure!(
        read_model == truth,
        "read model {read_model:?} differs from replay {truth:?} ({acknowledged} acknowledged)"
    );

    // The same events seen again (a full replay into fresh tables) give the same rows.
    host.send_raw(reqwest::Method::POST, "/api/v1/restoreReadDb", Vec::new()).await?.expect_status(201)?;
    let rebuilt = host.balances_by_query(position).await?;
    ensure!(rebuilt == truth, "rebuild {rebuilt:?} differs from replay {truth:?}");
    // And a restart (the projection resumes at its committed position) changes nothing.
    host.restart().await?;
    ensure!(host.balances_by_query(position).await? == truth, "a restart changed the read model");
    Ok(())
}

#[tokio::test]
async fn a_projection_cannot_touch_another_projections_tables() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[
        Plugin::BankAccount,
        Plugin::AccountsProjection,
        Plugin::SnoopProjection,
    ]))
    .await?;
    let id = host.open_account("Eve", "5").await?;
    let position = host.deposit(&id, "1").await?;
    // The accounts projection carries on.
    let reply = host.get(&format!("/api/projections/accounts/queries/byId?id={id}&position={position}")).await?;
    ensure!(accounts(&reply.expect_status(200)?.body)?[&id].1 == "6", "accounts projection broken");
    // The snoop's query that reads `accounts` fails with a clear error in the log, not data.
    host.get("/api/test/snoop/peek").await?.check_error(500, &["query_failed"])?;
    // Its event handler failed the same way: the event is dead-lettered with the reason…
    let mut letters = String::new();
    for _ in 0..50 {
        letters = sluice_command(&["dead-letters", "--data-dir", &host.data_dir().to_string_lossy()])?;
        if letters.contains("snoop") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(letters.contains("\"consumer\":\"snoop\""), "no dead letter for snoop: {letters}");
    ensure!(letters.contains("is not a table of projection snoop"), "dead letter does not say why: {letters}");
    ensure!(host.log().contains("is not a table of projection snoop"), "the log does not say why");
    // …and its own write in the failed transaction was rolled back.
    let notes = host.get("/api/test/snoop/notes").await?;
    ensure!(
        notes.status == 204 || notes.body["notes"].as_array().is_some_and(Vec::is_empty),
        "snoop kept a row: {notes}"
    );
    // Commands keep working.
    let position = host.deposit(&id, "1").await?;
    // A rebuild meets the same refusals again (in its staging database): it completes, the
    // letters stay, and the other projection's answers survive it.
    host.get(&format!("/api/projections/accounts/queries/byId?id={id}&position={position}"))
        .await?
        .expect_status(200)?;
    host.send_raw(reqwest::Method::POST, "/api/v1/restoreReadDb", Vec::new()).await?.expect_status(201)?;
    let after = sluice_command(&["dead-letters", "--data-dir", &host.data_dir().to_string_lossy()])?;
    ensure!(
        after.contains("is not a table of projection snoop"),
        "a rebuild lost the dead letters: {after} (before: {letters})"
    );
    let reply = host.get(&format!("/api/projections/accounts/queries/byId?id={id}")).await?;
    ensure!(accounts(&reply.expect_status(200)?.body)?[&id].1 == "7", "the rebuild changed the accounts answers");
    Ok(())
}

#[tokio::test]
async fn queries_keep_answering_during_a_rebuild_and_a_rebuild_into_postgres_agrees() -> Result<()> {
    let postgres = Server::Postgres.fresh_database_url()?;
    let host = bank_host(None).await?;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(host.open_account(&format!("holder {n}"), "10").await?);
    }
    let mut position = 0;
    for round in 0..30 {
        for id in &ids {
            position = host.deposit(id, if round % 2 == 0 { "0.05" } else { "1" }).await?;
        }
    }
    let before = host.balances_by_query(position).await?;
    ensure!(before.len() == ids.len(), "all accounts listed");

    let api = host.api().clone();
    let probe_id = ids[0].clone();
    let probe = tokio::spawn(async move {
        let mut answers = 0;
        let mut bad = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            match api.get(&format!("/api/v1/bankAccountLookup/byId/{probe_id}")).await {
                Ok(reply) if reply.status == 200 => answers += 1,
                Ok(reply) => bad.push(reply.to_string()),
                Err(e) => bad.push(e.to_string()),
            }
            if answers > 5 && !bad.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            if answers >= 400 {
                break;
            }
        }
        (answers, bad)
    });
    host.send_raw(reqwest::Method::POST, "/api/v1/restoreReadDb", Vec::new()).await?.expect_status(201)?;
    let (answers, bad) = probe.await?;
    ensure!(bad.is_empty(), "queries failed during the rebuild ({answers} answered): {bad:?}");
    ensure!(host.balances_by_query(position).await? == before, "in-place rebuild changed the answers");

    // Into another kind of database, by the operator command, while the host runs.
    let Some(postgres) = postgres else { return Ok(()) };
    let data_dir = host.data_dir().to_string_lossy().into_owned();
    let plugins_dir = host.plugins_dir().to_string_lossy().into_owned();
    let out = sluice_command(&[
        "rebuild",
        "accounts",
        "--data-dir",
        &data_dir,
        "--plugins",
        &plugins_dir,
        "--into",
        &postgres,
    ])?;
    ensure!(out.contains("rebuilt accounts"), "rebuild said: {out}");
    let on_postgres = Host::start(
        HostOptions::with_plugins(BANK_AND_ACCOUNTS)
            .arg("--event-store")
            .arg(format!("sqlite://{data_dir}/events.db"))
            .arg("--read-store")
            .arg(&postgres),
    )
    .await?;
    ensure!(on_postgres.balances_by_query(position).await? == before, "the PostgreSQL read model differs");
    for query in
        ["/api/v1/bankAccountLookup/withBalance/GREATER_THAN/25", "/api/v1/bankAccountLookup/byHolder/holder%203"]
    {
        let a = host.get(query).await?;
        let b = on_postgres.get(query).await?;
        ensure!(a.status == b.status && accounts(&a.body)? == accounts(&b.body)?, "{query}: {a} vs {b}");
    }
    Ok(())
}
