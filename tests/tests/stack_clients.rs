//! What landed on the stack, seen by the servers' own clients rather than by Sluice: `kcat` reads
//! the bank topic (key = account id, envelopes in version order, event-type header), `pymongo`
//! reads the event documents from MongoDB (FerretDB), `psql` reads the read-model rows.
//!
//! Runs when the Kafka, MongoDB and PostgreSQL test servers are configured (`scripts/test` starts
//! them); skipped with the reason printed otherwise, failed when `SLUICE_REQUIRE_SERVERS=1`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use sluice_e2e::{Host, HostOptions, Plugin, Server};

/// Run a client program, returning its standard output.
fn client(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("cannot run {program}"))?;
    ensure!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Python that has pymongo: the system one, or the venv `scripts/servers` made.
fn pymongo_python() -> Result<String> {
    let mut candidates = vec!["python3".to_owned()];
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(format!("{home}/.cache/sluice/python/bin/python"));
    }
    for python in candidates {
        if Command::new(&python).args(["-c", "import pymongo"]).output().is_ok_and(|o| o.status.success()) {
            return Ok(python);
        }
    }
    bail!("no Python with pymongo: `scripts/servers start` installs it")
}

#[tokio::test]
async fn kafka_mongodb_and_postgres_clients_see_what_the_host_wrote() -> Result<()> {
    let (Some(kafka), Some(mongodb), Some(postgres)) =
        (Server::Kafka.url()?, Server::MongoDb.url()?, Server::Postgres.fresh_database_url()?)
    else {
        return Ok(());
    };
    let bootstrap = kafka.trim_start_matches("kafka://").to_owned();
    let unique = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let prefix = format!("c{unique}.");
    let database = format!("sluice_c{unique}");
    let base = mongodb.rsplit_once('/').map_or(mongodb.as_str(), |(base, _)| base).to_owned();
    let host = Host::start(
        HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection])
            .arg("--event-store")
            .arg(format!("{base}/{database}"))
            .arg("--bus")
            .arg(format!("kafka://{bootstrap}?topic_prefix={prefix}"))
            .arg("--read-store")
            .arg(&postgres),
    )
    .await?;

    // Three accounts, each with its own history; what each stream should hold, in order.
    let mut expected: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut balances: BTreeMap<String, &str> = BTreeMap::new();
    let mut position = 0;
    for (holder, deposits, balance) in [("Ada", 1, "60.25"), ("Bob", 2, "70.50"), ("Cy", 3, "80.75")] {
        let id = host.open_account(holder, "50").await?;
        let mut types = vec!["AccountOpenedEvent"];
        for _ in 0..deposits {
            position = host.deposit(&id, "10.25").await?;
            types.push("FundsDepositedEvent");
        }
        balances.insert(id.clone(), balance);
        expected.insert(id, types);
    }
    // The read model has everything once the query at the last position answers.
    host.get(&format!("/api/projections/accounts/queries/all?position={position}")).await?.expect_status(200)?;

    // kcat: every event keyed by its account, in version order per key, with the type header.
    let topic = format!("{prefix}BankAccountEvents");
    let total: usize = expected.values().map(Vec::len).sum();
    let mut lines = Vec::new();
    for _ in 0..60 {
        let out = client(
            "kcat",
            &["-C", "-b", &bootstrap, "-t", &topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%h\t%s\n"],
        )
        .unwrap_or_default();
        lines = out.lines().map(str::to_owned).collect();
        if lines.len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut seen: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for line in &lines {
        let mut fields = line.splitn(3, '\t');
        let (Some(key), Some(headers), Some(payload)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("kcat printed an odd line: {line:?}");
        };
        let envelope: Value =
            serde_json::from_str(payload).with_context(|| format!("payload is not JSON: {payload}"))?;
        let event_type = envelope["eventType"].as_str().or(envelope["event_type"].as_str()).unwrap_or_default();
        ensure!(
            headers.contains(&format!("event-type={event_type}")),
            "headers {headers:?} do not name the event type {event_type}"
        );
        let id = envelope["aggregateId"].as_str().or(envelope["aggregate_id"].as_str()).unwrap_or_default();
        ensure!(id == key, "message keyed {key:?} carries the event of {id:?}");
        let version = envelope["version"].as_u64().with_context(|| format!("no version in {envelope}"))?;
        seen.entry(key.to_owned()).or_default().push((version, event_type.to_owned()));
    }
    for (id, types) in &expected {
        let got = seen.get(id).with_context(|| format!("kcat saw nothing keyed {id}: {lines:?}"))?;
        // Duplicates are allowed on the wire; order is not negotiable.
        let mut distinct: Vec<(u64, String)> = Vec::new();
        for (version, event_type) in got {
            if distinct.last().is_some_and(|(v, _)| v >= version) {
                ensure!(distinct.iter().any(|(v, _)| v == version), "{id}: version {version} out of order in {got:?}");
                continue;
            }
            distinct.push((*version, event_type.clone()));
        }
        let want: Vec<(u64, String)> = (1u64..).zip(types.iter().map(|t| (*t).to_owned())).collect();
        ensure!(distinct == want, "{id}: kcat saw {distinct:?}, expected {want:?}");
    }

    // pymongo: the event documents, per stream, in version order.
    let python = pymongo_python()?;
    let script = format!(
        "import json, pymongo\n\
         db = pymongo.MongoClient('{base}/', serverSelectionTimeoutMS=5000)['{database}']\n\
         out = {{}}\n\
         for name in db.list_collection_names():\n\
         \x20   for doc in db[name].find({{'aggregate_id': {{'$ne': None}}, 'events': {{'$exists': True}}}}):\n\
         \x20       for e in doc['events']:\n\
         \x20           out.setdefault(doc['aggregate_id'], []).append([e['version'], e['event_type']])\n\
         print(json.dumps(out))\n"
    );
    let documents: BTreeMap<String, Vec<(u64, String)>> =
        serde_json::from_str(client(&python, &["-c", &script])?.trim()).context("pymongo printed no JSON")?;
    for (id, types) in &expected {
        let mut got = documents.get(id).cloned().with_context(|| format!("pymongo found no events of {id}"))?;
        got.sort();
        let want: Vec<(u64, String)> = (1u64..).zip(types.iter().map(|t| (*t).to_owned())).collect();
        ensure!(got == want, "{id}: MongoDB holds {got:?}, expected {want:?}");
    }

    // psql: the read-model rows of the generation the projection serves.
    let generation = client(
        "psql",
        &[&postgres, "-XAtq", "-c", "SELECT generation FROM sluice_projections WHERE name = 'accounts'"],
    )?;
    let sql = format!("SELECT id, balance FROM accounts_g{}_accounts ORDER BY id", generation.trim());
    let rows = client("psql", &[&postgres, "-XAtq", "-F", "\t", "-c", &sql])?;
    let got: BTreeMap<String, String> = rows
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, balance)| (id.to_owned(), balance.to_owned()))
        .collect();
    let want: BTreeMap<String, String> = balances.iter().map(|(id, b)| (id.clone(), (*b).to_owned())).collect();
    ensure!(got == want, "psql sees {got:?}, expected {want:?}");
    Ok(())
}
