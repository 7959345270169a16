//! The deploy-time check against the real host: a store holding events the bank account plugin
//! cannot read (an `AccountOpenedEvent` at schema version 3, written by some later version, and
//! an event type it does not declare) makes the host refuse the plugin at start and on upload,
//! listing what it cannot read; the `accounts` projection is refused too once its aggregate is
//! loaded, since that aggregate cannot deliver the event. `?force=true` installs either anyway,
//! and the mismatch stays in `GET /admin/plugins`. The 0.1.0 `post` component loads beside them.
//!
//! A forced version stays forced: after a restart both load again with their mismatch listed
//! (the projection's held, at start too, to what its aggregate delivers), while another build of
//! the projection put in its place while the host was down is refused at start.
//!
//! On SQLite, and on MongoDB (FerretDB), whose counts the host takes over the commits.

use anyhow::{Result, anyhow, ensure};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use sluice_e2e::stored::{self, RawEvent};
use sluice_e2e::{Api, Host, HostOptions, Plugin, Reply, Stack, WASM, distinct_build};

const TOKEN: &str = "deploy-check-token";
const PLUGINS: &[Plugin] = &[Plugin::BankAccount, Plugin::AccountsProjection, Plugin::Post];
const ID: &str = "00000000-0000-4000-8000-00000000c003";

/// A stream the bank account plugin cannot replay: opened at a schema version it does not know,
/// then an event type it does not declare; the deposit between them it reads.
fn unreadable_history() -> Vec<RawEvent> {
    vec![
        RawEvent::new("BankAccount", ID, 1, "AccountOpenedEvent", 3).data(&format!(
            r#"{{"id":"{ID}","holder":{{"name":"Ada"}},"accountType":"SAVINGS","openedAt":"2026-01-01T00:00:00Z","openingBalance":1}}"#
        )),
        RawEvent::new("BankAccount", ID, 2, "FundsDepositedEvent", 1).data(&format!(r#"{{"id":"{ID}","amount":1}}"#)),
        RawEvent::new("BankAccount", ID, 3, "AccountFrozenEvent", 1).data(&format!(r#"{{"id":"{ID}"}}"#)),
    ]
}

/// `PUT /admin/plugins/{name}[?force=...]` with `component`.
async fn upload(api: &Api, name: &str, component: Vec<u8>, force: Option<&str>) -> Result<Reply> {
    let path = match force {
        Some(force) => format!("/admin/plugins/{name}?force={force}"),
        None => format!("/admin/plugins/{name}"),
    };
    api.send(api.admin_request(Method::PUT, &path).header(CONTENT_TYPE, WASM).body(component)).await
}

/// The `mismatch` list of a plugin status, as (event type, schema version, count).
fn mismatch(status: &Value) -> Result<Vec<(String, u64, u64)>> {
    let list = status.get("mismatch").and_then(Value::as_array).ok_or_else(|| anyhow!("no mismatch in {status}"))?;
    list.iter()
        .map(|m| {
            ensure!(m["aggregateType"] == "BankAccount", "mismatch of another aggregate: {m}");
            ensure!(m["reason"].as_str().is_some_and(|r| !r.is_empty()), "mismatch without a reason: {m}");
            let field = |name: &str| m[name].as_u64().ok_or_else(|| anyhow!("no {name} in {m}"));
            Ok((m["eventType"].as_str().unwrap_or_default().to_owned(), field("schemaVersion")?, field("count")?))
        })
        .collect()
}

/// What both backends must show, on a host started over [`unreadable_history`].
async fn check_refusals_and_force(api: &Api) -> Result<()> {
    let (plugins, refused) = api.admin_plugins().await?;
    let names: Vec<&str> = plugins.iter().filter_map(|p| p["name"].as_str()).collect();
    ensure!(!names.contains(&"BankAccount"), "loaded over events it cannot read: {names:?}");
    ensure!(names.contains(&"Post"), "the 0.1.0 post component loads: {names:?}");
    ensure!(names.contains(&"accounts"), "no aggregate delivers to the projection yet: {names:?}");
    let refusal = refused
        .iter()
        .find(|r| r["source"] == Plugin::BankAccount.file_name())
        .ok_or_else(|| anyhow!("the refusal is not listed: {refused:?}"))?;
    let reason = refusal["reason"].as_str().unwrap_or_default();
    for listed in ["AccountOpenedEvent v3 (1 event)", "1..=2", "AccountFrozenEvent v1", "does not declare"] {
        ensure!(reason.contains(listed), "the refusal does not list {listed:?}: {reason}");
    }
    ensure!(!reason.contains("FundsDepositedEvent"), "a readable event listed: {reason}");

    // An upload is refused the same way, unless forced.
    let bank = Plugin::BankAccount.bytes()?;
    let reply = upload(api, "BankAccount", bank.clone(), None).await?;
    reply.check_error(409, &["unreadable_events"])?;
    ensure!(reply.str_field("message")?.contains("AccountOpenedEvent v3"), "{reply}");
    upload(api, "BankAccount", bank.clone(), Some("maybe")).await?.check_error(400, &["bad_query"])?;
    let forced = upload(api, "BankAccount", bank, Some("true")).await?.expect_status(201)?;
    let expected = vec![("AccountFrozenEvent".to_owned(), 1, 1), ("AccountOpenedEvent".to_owned(), 3, 1)];
    ensure!(mismatch(&forced.body["plugin"])? == expected, "forced install: {forced}");
    let listed = api.admin_plugin("BankAccount").await?.ok_or_else(|| anyhow!("BankAccount not listed"))?;
    ensure!(mismatch(&listed)? == expected, "the listing keeps the mismatch: {listed}");

    // Now that the aggregate is loaded, a projection of its events is held to what it delivers:
    // the version 3 event, which it cannot upcast (the undeclared type is not subscribed to).
    let projection = distinct_build(&Plugin::AccountsProjection.bytes()?, "deploy-check");
    let reply = upload(api, "accounts", projection.clone(), None).await?;
    reply.check_error(409, &["unreadable_events"])?;
    let message = reply.str_field("message")?;
    ensure!(message.contains("AccountOpenedEvent v3") && !message.contains("AccountFrozenEvent"), "{reply}");
    let forced = upload(api, "accounts", projection, Some("true")).await?.expect_status(200)?;
    ensure!(mismatch(&forced.body["plugin"])? == [("AccountOpenedEvent".to_owned(), 3, 1)], "{forced}");
    let listed = api.admin_plugin("accounts").await?.ok_or_else(|| anyhow!("accounts not listed"))?;
    ensure!(mismatch(&listed)?.len() == 1, "the listing keeps the projection's mismatch: {listed}");
    let post = api.admin_plugin("Post").await?.ok_or_else(|| anyhow!("Post not listed"))?;
    ensure!(post.get("mismatch").is_none(), "a plugin that reads everything shows no mismatch: {post}");
    Ok(())
}

/// After [`check_refusals_and_force`]: a restart loads both forced versions again (the files are
/// loaded without `force`), each with its mismatch; an unforced build of the projection dropped
/// in while the host is down is refused at start, since the aggregate, loaded first, cannot
/// deliver a stored event to it.
async fn check_force_survives_a_restart(host: &mut Host) -> Result<()> {
    host.restart().await?;
    let (plugins, refused) = host.api().admin_plugins().await?;
    ensure!(refused.is_empty(), "nothing refused after a restart: {refused:?}");
    let listed = |name: &str| {
        plugins.iter().find(|p| p["name"] == name).cloned().ok_or_else(|| anyhow!("{name} not loaded: {plugins:?}"))
    };
    let expected = vec![("AccountFrozenEvent".to_owned(), 1, 1), ("AccountOpenedEvent".to_owned(), 3, 1)];
    ensure!(mismatch(&listed("BankAccount")?)? == expected, "BankAccount after a restart");
    let accounts = listed("accounts")?;
    ensure!(
        mismatch(&accounts)? == [("AccountOpenedEvent".to_owned(), 3, 1)],
        "the projection is checked against its aggregate at start: {accounts}"
    );

    host.stop().await?;
    let unforced = distinct_build(&Plugin::AccountsProjection.bytes()?, "deploy-check-unforced");
    std::fs::write(host.plugins_dir().join(Plugin::AccountsProjection.file_name()), unforced)?;
    host.restart().await?;
    let (plugins, refused) = host.api().admin_plugins().await?;
    let names: Vec<&str> = plugins.iter().filter_map(|p| p["name"].as_str()).collect();
    ensure!(names.contains(&"BankAccount") && !names.contains(&"accounts"), "{names:?}");
    let refusal = refused
        .iter()
        .find(|r| r["source"] == Plugin::AccountsProjection.file_name())
        .ok_or_else(|| anyhow!("the projection's refusal is not listed: {refused:?}"))?;
    let reason = refusal["reason"].as_str().unwrap_or_default();
    ensure!(reason.contains("AccountOpenedEvent v3") && !reason.contains("AccountFrozenEvent"), "{refusal}");
    Ok(())
}

#[tokio::test]
async fn sqlite_a_plugin_that_cannot_read_stored_versions_is_refused_unless_forced() -> Result<()> {
    let mut host = Host::start(HostOptions::with_plugins(PLUGINS).admin_token(TOKEN)).await?;
    host.stop().await?;
    stored::sqlite_append(&stored::sqlite_path(&host.data_dir()), &unreadable_history())?;
    host.restart().await?;
    check_refusals_and_force(host.api()).await?;
    check_force_survives_a_restart(&mut host).await
}

#[tokio::test]
async fn mongodb_a_plugin_that_cannot_read_stored_versions_is_refused_unless_forced() -> Result<()> {
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    stored::mongo_write(&stack.mongodb, &unreadable_history()).await?;
    let mut host = Host::start(stack.options_with(PLUGINS).admin_token(TOKEN)).await?;
    check_refusals_and_force(host.api()).await?;
    check_force_survives_a_restart(&mut host).await
}
