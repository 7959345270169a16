//! Hot reload against the real binary: a projection that arrives in the plugins directory (or
//! through the admin API) catches up from the beginning of history, leaves with its routes and
//! comes back where it stopped; projections and aggregates replaced under load fail no command
//! and lose no event; a projection whose schema changes switches over whole while it is read.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use sluice_e2e::under_load::{self, AMOUNTS, Scale, TOKEN, caught_up, check_upload};
use sluice_e2e::{
    Api, Check, Host, HostOptions, LOOKUP, Ledger, Plugin, Reply, check_plugin, distinct_build, sha256_hex, wait_until,
};
use tokio::task::JoinSet;

/// The accounts projection's file, as `Host::start` copies it.
const ACCOUNTS_FILE: &str = "accounts_projection.wasm";
/// A bound on catching up or switching over on a test's small history.
const CATCH_UP: Duration = Duration::from_secs(60);

async fn start(plugins: &[Plugin]) -> Result<Host> {
    Host::start(HostOptions::with_plugins(plugins).admin_token(TOKEN)).await
}

/// Open `accounts` accounts and deposit into each `deposits` times, from one client.
async fn some_history(api: &Api, ledger: &mut Ledger, accounts: usize, deposits: usize) -> Result<()> {
    for n in 0..accounts {
        let id = ledger.open(api, &format!("holder {n}"), "100").await?;
        for k in 0..deposits {
            ledger.deposit(api, &id, ["0.25", "10", "3.5"][k % 3]).await?;
        }
    }
    Ok(())
}

/// How a component lands in the plugins directory.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// Written beside it under a name the host ignores, then renamed: it appears whole.
    Rename,
    /// Written straight to its name: the host may see it half-written first.
    InPlace,
}

fn install(dir: &Path, file_name: &str, bytes: &[u8], how: Write) -> Result<()> {
    let target = dir.join(file_name);
    match how {
        Write::Rename => {
            let temporary = dir.join(format!(".{file_name}.tmp"));
            std::fs::write(&temporary, bytes).with_context(|| format!("failed to write {}", temporary.display()))?;
            std::fs::rename(&temporary, &target).with_context(|| format!("failed to rename to {}", target.display()))
        }
        Write::InPlace => {
            std::fs::write(&target, bytes).with_context(|| format!("failed to write {}", target.display()))
        }
    }
}

/// Waits until the lookup routes answer 404 (unmounted); a 200 meanwhile is the old mount.
async fn lookup_unmounted(api: &Api) -> Result<()> {
    wait_until("the lookup routes are unmounted", CATCH_UP, || async {
        let reply = api.get(LOOKUP).await?;
        match reply.status.as_u16() {
            404 => {
                reply.check_error(404, &["route_not_found"])?;
                Ok(Check::Done(()))
            }
            200 => Ok(Check::NotYet(reply.to_string())),
            _ => bail!("{LOOKUP} answered {reply} while the projection went"),
        }
    })
    .await
}

/// The projection is gone: every lookup route and the generic query route answer 404, and the
/// admin API does not list it as running.
async fn check_gone(api: &Api, some_id: &str) -> Result<()> {
    for path in [LOOKUP.to_owned(), format!("{LOOKUP}byId/{some_id}"), "/api/v1/bankAccountLookup".to_owned()] {
        api.get(&path).await?.check_error(404, &["route_not_found"]).with_context(|| format!("GET {path}"))?;
    }
    api.get("/api/projections/accounts/queries/all").await?.check_error(404, &["unknown_projection"])?;
    let listed = api.admin_plugin("accounts").await?;
    ensure!(listed.as_ref().is_none_or(|p| p["status"] != "running"), "accounts still listed as running: {listed:?}");
    Ok(())
}

/// The accounts projection comes, goes and comes back through the plugins directory.
async fn directory_round_trip(how: Write) -> Result<()> {
    let host = start(&[Plugin::BankAccount]).await?;
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger, 10, 3).await?;
    host.get(LOOKUP).await?.check_error(404, &["route_not_found"])?;
    ensure!(host.admin_plugin("accounts").await?.is_none(), "accounts listed before it arrived");

    // Arrives: catches up from position 0, every account with its exact balance.
    let component = Plugin::AccountsProjection.bytes()?;
    install(&host.plugins_dir(), ACCOUNTS_FILE, &component, how)?;
    let reply = ledger.wait_for_lookup(&host, CATCH_UP).await?;
    ensure!(reply.body.get("schemaVersion").is_none(), "version 1 answered with a schemaVersion: {reply}");
    let plugin = caught_up(&host, "accounts", CATCH_UP).await?;
    check_plugin(&plugin, "accounts", "projection")?;
    ensure!(plugin["sha256"] == sha256_hex(&component), "sha256 of another component: {plugin}");
    ensure!(plugin["source"].as_str().is_some_and(|s| s.contains(ACCOUNTS_FILE)), "source: {plugin}");
    ensure!(plugin["position"].as_u64() >= Some(ledger.last_position()), "position behind the history: {plugin}");

    // Goes: its routes with it.
    std::fs::remove_file(host.plugins_dir().join(ACCOUNTS_FILE)).context("failed to remove the component")?;
    lookup_unmounted(&host).await?;
    let ids = ledger.ids();
    check_gone(&host, &ids[0]).await?;

    // History goes on while it is away.
    for id in &ids {
        ledger.deposit(&host, id, "0.05").await?;
    }
    host.get(LOOKUP).await?.check_error(404, &["route_not_found"])?;

    // Comes back: resumes where it stopped, every event applied once.
    install(&host.plugins_dir(), ACCOUNTS_FILE, &component, how)?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    let plugin = caught_up(&host, "accounts", CATCH_UP).await?;
    ensure!(plugin["sha256"] == sha256_hex(&component), "sha256 of another component: {plugin}");
    ensure!(host.balances_by_query(ledger.last_position()).await? == ledger.balances(), "generic query differs");
    Ok(())
}

#[tokio::test]
async fn a_projection_renamed_into_the_directory_catches_up_leaves_and_resumes() -> Result<()> {
    directory_round_trip(Write::Rename).await
}

#[tokio::test]
async fn a_projection_written_in_place_into_the_directory_catches_up_leaves_and_resumes() -> Result<()> {
    directory_round_trip(Write::InPlace).await
}

#[tokio::test]
async fn the_admin_api_adds_replaces_removes_and_adds_back_a_projection() -> Result<()> {
    let host = start(&[Plugin::BankAccount]).await?;
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger, 10, 3).await?;
    let uploaded = host.plugins_dir().join("accounts.wasm");

    // Created: written into the plugins directory as `<name>.wasm`, caught up from position 0.
    let component = Plugin::AccountsProjection.bytes()?;
    let reply = host.admin_put_wasm("accounts", component.clone()).await?.expect_status(201)?;
    check_upload(&reply, "created", &component)?;
    ensure!(std::fs::read(&uploaded).ok() == Some(component.clone()), "the upload is not in {}", uploaded.display());
    ledger.wait_for_lookup(&host, CATCH_UP).await?;

    // The same bytes again: nothing to do.
    let reply = host.admin_put_wasm("accounts", component.clone()).await?.expect_status(200)?;
    check_upload(&reply, "unchanged", &component)?;

    // Another build: replaced, in the same file, and it follows new events.
    let build = distinct_build(&component, "second");
    let reply = host.admin_put_wasm("accounts", build.clone()).await?.expect_status(200)?;
    check_upload(&reply, "replaced", &build)?;
    ensure!(std::fs::read(&uploaded).ok() == Some(build.clone()), "the replacement is not in {}", uploaded.display());
    for id in ledger.ids() {
        ledger.deposit(&host, &id, "1.5").await?;
    }
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    let running = caught_up(&host, "accounts", CATCH_UP).await?;
    ensure!(running["sha256"] == sha256_hex(&build), "the replacement is not running: {running}");

    // Removed: its routes answer 404 as soon as the removal is answered.
    let reply = host.admin_delete("/admin/plugins/accounts").await?.expect_status(200)?;
    ensure!(reply.body["removed"] == "accounts", "expected `removed: accounts`: {reply}");
    let ids = ledger.ids();
    check_gone(&host, &ids[0]).await?;
    ensure!(!uploaded.exists(), "{} is still in the plugins directory: a restart would load it", uploaded.display());

    // History goes on; uploaded again, it shows every balance exactly.
    for id in &ids {
        ledger.deposit(&host, id, "0.01").await?;
    }
    let reply = host.admin_put_wasm("accounts", component.clone()).await?.expect_status(201)?;
    check_upload(&reply, "created", &component)?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_a_projection_under_load_fails_no_command_and_loses_no_event() -> Result<()> {
    under_load::replace_projection(HostOptions::default(), &Scale::EMBEDDED).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_the_aggregate_under_load_fails_no_command_and_leaves_gapless_streams() -> Result<()> {
    under_load::replace_aggregate(HostOptions::default(), &Scale::EMBEDDED).await
}

/// Events in the log before the schema change.
const EVENTS: usize = 50_000;
const ACCOUNTS: usize = 100;
const WRITERS: usize = 8;

/// `deposits` deposits spread over the ledger's accounts by [`WRITERS`] concurrent clients, each
/// recorded in the ledger.
async fn deposit_from_writers(host: &Host, ledger: &mut Ledger, deposits: usize) -> Result<()> {
    let ids = ledger.ids();
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let (api, ids) = (host.api().clone(), ids.clone());
        let count = deposits / WRITERS + usize::from(writer < deposits % WRITERS);
        writers.spawn(async move {
            let mut done = Vec::with_capacity(count);
            for n in 0..count {
                let id = &ids[(writer + n * WRITERS) % ids.len()];
                let amount = AMOUNTS[n % AMOUNTS.len()];
                done.push((id.clone(), amount, api.deposit(id, amount).await?));
            }
            anyhow::Ok(done)
        });
    }
    while let Some(writer) = writers.join_next().await {
        for (id, amount, position) in writer.context("a writer panicked")?? {
            ledger.record_deposit(&id, amount, position)?;
        }
    }
    Ok(())
}

/// Which version of the accounts projection gave a lookup answer, after checking it is whole:
/// 200, every account with its exact balance, and in version 2 each account's transactions.
fn whole_answer(ledger: &Ledger, reply: &Reply) -> Result<u32> {
    ensure!(reply.status == 200, "answered {reply}");
    let version = match reply.body.get("schemaVersion") {
        None => 1,
        Some(v) if v == 2 => 2,
        Some(other) => bail!("schemaVersion {other}: {reply}"),
    };
    ledger.check(&reply.body).with_context(|| format!("a version {version} answer is not whole"))?;
    let accounts = reply.body["accounts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let counted = accounts.iter().filter(|a| a.get("transactions").is_some()).count();
    let expected = if version == 2 { accounts.len() } else { 0 };
    ensure!(counted == expected, "{counted} of {} accounts count transactions in version {version}", accounts.len());
    Ok(version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_change_switches_over_whole_while_queries_read() -> Result<()> {
    let host = start(&[Plugin::BankAccount, Plugin::AccountsProjection]).await?;
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger, ACCOUNTS, 0).await?;

    // Fill the log to 50,000 events from several clients.
    deposit_from_writers(&host, &mut ledger, EVENTS - ACCOUNTS).await?;
    let reply = ledger.wait_for_lookup(&host, Duration::from_secs(180)).await?;
    ensure!(whole_answer(&ledger, &reply)? == 1, "version 1 is not the one answering");

    // A reader that never stops looking, sequentially: before it sees version 2 every answer is
    // the whole old model, after it the whole new one; it stops a little after the switch.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (api, ledger, stop) = (host.api().clone(), ledger.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut old, mut new) = (0_usize, 0_usize);
            while !stop.load(Ordering::Relaxed) && new < 20 {
                let reply = api.get(LOOKUP).await?;
                let answer = old + new + 1;
                match whole_answer(&ledger, &reply).with_context(|| format!("answer {answer} of the reader"))? {
                    1 if new > 0 => bail!("answer {answer} is version 1 again after {new} of version 2: {reply}"),
                    1 => old += 1,
                    _ => new += 1,
                }
            }
            anyhow::Ok((old, new))
        })
    };

    let v2 = Plugin::AccountsProjectionV2.bytes()?;
    let reply = host.admin_put_wasm("accounts", v2.clone()).await?.expect_status(200)?;
    check_upload(&reply, "replaced", &v2)?;

    // Bounded: the switch comes, or the reader is stopped and the test fails.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !reader.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (old, new) = reader.await.context("the reader panicked")??;
    eprintln!("the reader saw {old} answers of version 1, then {new} of version 2");
    ensure!(new > 0, "version 2 never answered within 300 s ({old} answers of version 1)");

    let running = caught_up(&host, "accounts", CATCH_UP).await?;
    ensure!(running["sha256"] == sha256_hex(&v2), "version 2 is not the one running: {running}");
    let reply = ledger.wait_for_lookup(&host, CATCH_UP).await?;
    ensure!(whole_answer(&ledger, &reply)? == 2, "version 2 is not the one answering");
    Ok(())
}

#[tokio::test]
async fn a_broken_file_in_the_directory_is_refused_and_the_running_plugins_carry_on() -> Result<()> {
    let host = start(&[Plugin::BankAccount, Plugin::AccountsProjection]).await?;
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger, 5, 2).await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    let component = Plugin::AccountsProjection.bytes()?;
    let running = sha256_hex(&component);

    // A new file that is no component, and a replacement that is none: both refused, listed.
    let garbage = b"not a component at all".to_vec();
    install(&host.plugins_dir(), "broken.wasm", &garbage, Write::Rename)?;
    install(&host.plugins_dir(), ACCOUNTS_FILE, &garbage, Write::Rename)?;
    let sha = sha256_hex(&garbage);
    for file in ["broken.wasm", ACCOUNTS_FILE] {
        let refusal = wait_until(&format!("{file} is listed as refused"), CATCH_UP, || async {
            let (_, refused) = host.admin_plugins().await?;
            let found = refused.iter().find(|r| r["source"].as_str().is_some_and(|s| s.contains(file)));
            Ok(match found {
                Some(refusal) => Check::Done(refusal.clone()),
                None => Check::NotYet(format!("{refused:?}")),
            })
        })
        .await?;
        ensure!(refusal["sha256"] == sha, "refused another file: {refusal}");
        ensure!(refusal["reason"].as_str().is_some_and(|r| !r.trim().is_empty()), "no reason: {refusal}");
        ensure!(refusal["at"].as_str().is_some_and(|t| !t.is_empty()), "no time: {refusal}");
    }

    // The running version keeps running and answering, and follows new events.
    let plugin = host.admin_plugin("accounts").await?.context("accounts is no longer listed")?;
    ensure!(plugin["sha256"] == running && plugin["status"] == "running", "the refusal changed accounts: {plugin}");
    for id in ledger.ids() {
        ledger.deposit(&host, &id, "2").await?;
    }
    ledger.wait_for_lookup(&host, CATCH_UP).await?;

    // A good build in its place is taken.
    let build = distinct_build(&component, "good again");
    install(&host.plugins_dir(), ACCOUNTS_FILE, &build, Write::Rename)?;
    wait_until("the good build runs", CATCH_UP, || async {
        let plugin = host.admin_plugin("accounts").await?;
        Ok(match plugin {
            Some(p) if p["sha256"] == sha256_hex(&build) && p["status"] == "running" => Check::Done(()),
            other => Check::NotYet(format!("{other:?}")),
        })
    })
    .await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    Ok(())
}

/// A new schema version put into the plugins directory while the host is down: after the
/// restart the earlier version (kept by sha256 in the data directory) serves its tables while
/// the new one builds fresh ones, so a reader sees the whole old model, then the whole new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_change_made_while_the_host_was_down_switches_over_whole() -> Result<()> {
    let mut host = start(&[Plugin::BankAccount, Plugin::AccountsProjection]).await?;
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger, 20, 0).await?;
    // Enough history that the new version takes a moment to build.
    deposit_from_writers(&host, &mut ledger, 4_000).await?;
    let reply = ledger.wait_for_lookup(&host, CATCH_UP).await?;
    ensure!(whole_answer(&ledger, &reply)? == 1, "version 1 is not the one answering");

    host.stop().await?;
    let v2 = Plugin::AccountsProjectionV2.bytes()?;
    std::fs::write(host.plugins_dir().join(ACCOUNTS_FILE), &v2).context("failed to put version 2 in place")?;
    host.restart().await?;

    // From the first answer after the restart: whole version 1, then whole version 2, never back.
    let (mut old, mut new) = (0_usize, 0_usize);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while new < 20 {
        ensure!(tokio::time::Instant::now() < deadline, "version 2 never answered ({old} answers of version 1)");
        let reply = host.get(LOOKUP).await?;
        let answer = old + new + 1;
        match whole_answer(&ledger, &reply).with_context(|| format!("answer {answer} after the restart"))? {
            1 if new > 0 => bail!("answer {answer} is version 1 again after {new} of version 2: {reply}"),
            1 => old += 1,
            _ => new += 1,
        }
    }
    eprintln!("after the restart the reader saw {old} answers of version 1, then {new} of version 2");
    let running = caught_up(&host, "accounts", CATCH_UP).await?;
    ensure!(running["sha256"] == sha256_hex(&v2), "version 2 is not the one running: {running}");
    Ok(())
}
