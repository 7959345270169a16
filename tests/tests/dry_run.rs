//! Dry runs of a candidate projection against a real `sluice serve`:
//! `POST /admin/plugins/{name}/dry-run` and `sluice plugins dry-run NAME FILE`.
//!
//! A candidate that changes a query's answer (`accounts-projection-shouting`, holder names
//! upper-cased) is reported with the differing rows; one that fails on some events
//! (`accounts-projection-brittle`, refuses withdrawals) is reported with each failing event; the
//! live version compared with itself reports no difference; a projection that does not run yet
//! reports every row as added; and bad candidates are refused. After each one, everything live
//! is byte-identical: every table of the read store row by row (the projection's rows, its
//! position, bus offsets, dead letters), the admin listing, the stored versions and the query
//! answers. On the embedded default, and with a PostgreSQL read store.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use sluice_e2e::under_load::caught_up;
use sluice_e2e::{Api, Host, HostOptions, Plugin, Reply, Server, WASM, number, sha256_hex, sluice_bin};
use sqlx::{Connection, Row};

const TOKEN: &str = "dry-run-test-token";
const CATCH_UP: Duration = Duration::from_secs(60);
const REFUSAL: &str = "this version cannot apply withdrawals";

/// The accounts the history opens: holder, opening balance, deposit, withdrawal (if any), and
/// the balance that leaves.
const ACCOUNTS: [(&str, &str, &str, Option<&str>, &str); 3] = [
    ("Ada Lovelace", "100", "5", Some("10"), "95.00"),
    ("Grace Hopper", "200.25", "0.5", None, "200.75"),
    ("Alan Turing", "30", "1", Some("2.5"), "28.50"),
];

/// What the history wrote.
struct History {
    /// Account ids, in [`ACCOUNTS`] order.
    ids: Vec<String>,
    /// The withdrawals' (position, account id), oldest first.
    withdrawals: Vec<(u64, String)>,
    /// The log's head.
    head: u64,
}

/// Open [`ACCOUNTS`], deposit into each, withdraw from some: 8 events.
async fn history(api: &Api) -> Result<History> {
    let (mut ids, mut withdrawals, mut head) = (Vec::new(), Vec::new(), 0);
    for (holder, opening, deposit, withdrawal, _) in ACCOUNTS {
        let id = api.open_account(holder, opening).await?;
        head = api.deposit(&id, deposit).await?;
        if let Some(amount) = withdrawal {
            let body = json!({ "amount": number(amount) });
            let reply = api.put_json(&format!("/api/v1/withdrawFunds/{id}"), &body).await?.expect_status(200)?;
            head = reply.u64_field("position")?;
            withdrawals.push((head, id.clone()));
        }
        ids.push(id);
    }
    Ok(History { ids, withdrawals, head })
}

/// A host with the bank account aggregate, `projections` and the admin API, on `read_store`
/// (the embedded default when `None`).
async fn start(projections: &[Plugin], read_store: Option<&str>) -> Result<Host> {
    let mut plugins = vec![Plugin::BankAccount];
    plugins.extend_from_slice(projections);
    let mut options = HostOptions::with_plugins(&plugins).admin_token(TOKEN);
    if let Some(url) = read_store {
        options = options.arg("--read-store").arg(url);
    }
    Host::start(options).await
}

/// `POST /admin/plugins/{name}/dry-run` with `component` as `application/wasm`.
async fn dry_run(api: &Api, name: &str, component: Vec<u8>) -> Result<Reply> {
    let request = api
        .admin_request(Method::POST, &format!("/admin/plugins/{name}/dry-run"))
        .header(CONTENT_TYPE, WASM)
        .body(component);
    api.send(request).await
}

/// The read store's URL for a direct, read-only look.
fn read_store_url(host: &Host, read_store: Option<&str>) -> String {
    match read_store {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}?mode=ro", host.data_dir().join("read.db").display()),
    }
}

/// Every table of the read store, row by row, each value as text, rows sorted.
async fn dump_read_store(url: &str) -> Result<BTreeMap<String, Vec<String>>> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.with_context(|| format!("failed to open {url}"))?;
    let postgres = url.starts_with("postgres");
    let list = if postgres {
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    };
    let tables: Vec<String> = sqlx::query(list)
        .fetch_all(&mut conn)
        .await
        .context("failed to list the tables")?
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    let mut dump = BTreeMap::new();
    for table in tables {
        let columns = if postgres {
            format!(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
            )
        } else {
            format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")
        };
        let columns: Vec<String> = sqlx::query(&columns)
            .fetch_all(&mut conn)
            .await
            .with_context(|| format!("failed to list the columns of {table}"))?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        let casts: Vec<String> = columns.iter().map(|c| format!("CAST(\"{c}\" AS TEXT)")).collect();
        let rows = sqlx::query(&format!("SELECT {} FROM \"{table}\"", casts.join(", ")))
            .fetch_all(&mut conn)
            .await
            .with_context(|| format!("failed to read {table}"))?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            let values = (0..columns.len())
                .map(|i| row.try_get::<Option<String>, _>(i).map(|v| v.unwrap_or_else(|| "NULL".into())))
                .collect::<Result<Vec<_>, _>>()?;
            lines.push(values.join(" | "));
        }
        lines.sort();
        dump.insert(format!("{table} ({})", columns.join(", ")), lines);
    }
    conn.close().await?;
    Ok(dump)
}

/// Everything live a dry run must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct LiveState {
    read_store: BTreeMap<String, Vec<String>>,
    /// `GET /admin/plugins` (plugins with positions and lag, refusals), as text.
    plugins: String,
    /// `GET /admin/plugins/accounts/versions`, as text (404 when it never ran).
    versions: String,
    /// The `accounts` projection's `all` answer, as text (404 when it does not run).
    answer: String,
}

async fn live_state(host: &Host, read_store: Option<&str>) -> Result<LiveState> {
    let plugins = host.admin_get("/admin/plugins").await?.expect_status(200)?;
    let versions = host.admin_get("/admin/plugins/accounts/versions").await?;
    let answer = host.get("/api/projections/accounts/queries/all").await?;
    Ok(LiveState {
        read_store: dump_read_store(&read_store_url(host, read_store)).await?,
        plugins: plugins.text,
        versions: format!("{} {}", versions.status, versions.text),
        answer: format!("{} {}", answer.status, answer.text),
    })
}

/// What `before` and `after` differ in, if anything.
fn check_unchanged(before: &LiveState, after: &LiveState, what: &str) -> Result<()> {
    ensure!(before.read_store == after.read_store, "{what} changed the read store:\n{before:#?}\n{after:#?}");
    ensure!(
        before.plugins == after.plugins,
        "{what} changed the plugin listing:\n{}\n{}",
        before.plugins,
        after.plugins
    );
    ensure!(before.versions == after.versions, "{what} changed the versions:\n{}\n{}", before.versions, after.versions);
    ensure!(before.answer == after.answer, "{what} changed a query's answer:\n{}\n{}", before.answer, after.answer);
    Ok(())
}

/// The report's diff of table `name`.
fn table<'a>(report: &'a Value, name: &str) -> Result<&'a Value> {
    report["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|t| t["table"] == name))
        .ok_or_else(|| anyhow!("no table {name} in {report}"))
}

/// The counts of a table diff: added, removed, changed, unchanged.
fn counts(diff: &Value) -> (Value, Value, Value, Value) {
    (diff["added"].clone(), diff["removed"].clone(), diff["changed"].clone(), diff["unchanged"].clone())
}

/// `row` without `column`.
fn without(row: &Value, column: &str) -> Value {
    let mut row = row.clone();
    if let Some(object) = row.as_object_mut() {
        object.remove(column);
    }
    row
}

/// The shouting candidate's report: every account changed, in its holder's name only.
fn check_shouting(report: &Value, history: &History, live: &[u8], candidate: &[u8]) -> Result<()> {
    ensure!(report["projection"] == "accounts", "{report}");
    ensure!(report["sha256"] == sha256_hex(candidate), "the candidate's sha256: {report}");
    ensure!(report["liveSha256"] == sha256_hex(live), "the live version's sha256: {report}");
    ensure!(report["position"] == history.head, "compared at the live position {}: {report}", history.head);
    ensure!(report["eventsHandled"] == 8, "every event handled: {report}");
    ensure!(report["failures"] == json!([]), "no failures: {report}");
    ensure!(report["notes"] == json!([]), "same schema, nothing to note: {report}");
    let accounts = table(report, "accounts")?;
    ensure!(counts(accounts) == (json!(0), json!(0), json!(3), json!(0)), "three rows changed: {accounts}");
    let samples = accounts["samples"].as_array().context("no samples")?;
    ensure!(samples.len() == 3, "each changed row as a sample: {accounts}");
    for sample in samples {
        ensure!(sample["change"] == "changed", "{sample}");
        let id = sample["key"]["id"].as_str().with_context(|| format!("no key id: {sample}"))?;
        let index = history.ids.iter().position(|i| i == id).with_context(|| format!("unknown id: {sample}"))?;
        let holder = ACCOUNTS[index].0;
        ensure!(sample["live"]["account_holder"] == holder, "live holder {holder}: {sample}");
        ensure!(sample["candidate"]["account_holder"] == holder.to_uppercase(), "shouted holder: {sample}");
        ensure!(sample["live"]["balance"] == ACCOUNTS[index].4, "live balance: {sample}");
        ensure!(
            without(&sample["live"], "account_holder") == without(&sample["candidate"], "account_holder"),
            "only the holder differs: {sample}"
        );
    }
    Ok(())
}

/// The brittle candidate's report: each withdrawal a failure, the balances they moved changed.
fn check_brittle(report: &Value, history: &History) -> Result<()> {
    ensure!(report["position"] == history.head, "{report}");
    ensure!(report["eventsHandled"] == 8 - history.withdrawals.len(), "all but the withdrawals handled: {report}");
    let failures = report["failures"].as_array().context("no failures list")?;
    ensure!(failures.len() == history.withdrawals.len(), "each withdrawal fails: {report}");
    for (failure, (position, id)) in failures.iter().zip(&history.withdrawals) {
        ensure!(failure["position"] == *position, "at the withdrawal's position: {failure}");
        ensure!(failure["aggregateId"] == id.as_str(), "{failure}");
        ensure!(failure["eventType"] == "FundsWithdrawnEvent", "{failure}");
        let reason = failure["reason"].as_str().unwrap_or_default();
        ensure!(reason.contains(REFUSAL), "the candidate's own reason: {failure}");
    }
    let accounts = table(report, "accounts")?;
    ensure!(counts(accounts) == (json!(0), json!(0), json!(2), json!(1)), "two balances differ: {accounts}");
    for sample in accounts["samples"].as_array().context("no samples")? {
        let id = sample["key"]["id"].as_str().with_context(|| format!("no key id: {sample}"))?;
        let index = history.ids.iter().position(|i| i == id).with_context(|| format!("unknown id: {sample}"))?;
        let (_, _, _, withdrawal, balance) = ACCOUNTS[index];
        ensure!(withdrawal.is_some(), "an account without a withdrawal differs: {sample}");
        let without_withdrawal = match index {
            0 => "105.00",
            _ => "31.00",
        };
        ensure!(sample["live"]["balance"] == balance, "live balance: {sample}");
        ensure!(sample["candidate"]["balance"] == without_withdrawal, "candidate balance: {sample}");
    }
    Ok(())
}

/// The live version against itself: nothing differs.
fn check_itself(report: &Value, history: &History, live: &[u8]) -> Result<()> {
    ensure!(report["sha256"] == sha256_hex(live) && report["liveSha256"] == sha256_hex(live), "{report}");
    ensure!(report["position"] == history.head && report["eventsHandled"] == 8, "{report}");
    ensure!(report["failures"] == json!([]) && report["notes"] == json!([]), "{report}");
    let accounts = table(report, "accounts")?;
    ensure!(counts(accounts) == (json!(0), json!(0), json!(0), json!(3)), "no difference: {accounts}");
    ensure!(accounts["samples"] == json!([]), "no samples: {accounts}");
    Ok(())
}

/// The three candidates on a host whose `accounts` projection has caught up with the history;
/// everything live is unchanged after each.
async fn three_candidates(read_store: Option<&str>) -> Result<()> {
    let host = start(&[Plugin::AccountsProjection], read_store).await?;
    let history = history(host.api()).await?;
    let listed = caught_up(host.api(), "accounts", CATCH_UP).await?;
    ensure!(listed["position"] == history.head, "caught up to the head: {listed}");
    let live = Plugin::AccountsProjection.bytes()?;
    let before = live_state(&host, read_store).await?;

    let shouting = Plugin::AccountsProjectionShouting.bytes()?;
    let reply = dry_run(host.api(), "accounts", shouting.clone()).await?.expect_status(200)?;
    check_shouting(&reply.body, &history, &live, &shouting)?;
    check_unchanged(&before, &live_state(&host, read_store).await?, "the shouting dry run")?;

    let reply =
        dry_run(host.api(), "accounts", Plugin::AccountsProjectionBrittle.bytes()?).await?.expect_status(200)?;
    check_brittle(&reply.body, &history)?;
    check_unchanged(&before, &live_state(&host, read_store).await?, "the brittle dry run")?;

    let reply = dry_run(host.api(), "accounts", live.clone()).await?.expect_status(200)?;
    check_itself(&reply.body, &history, &live)?;
    check_unchanged(&before, &live_state(&host, read_store).await?, "the dry run of the live version")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn candidates_are_reported_with_their_differences_and_failures_and_nothing_live_changes() -> Result<()> {
    three_candidates(None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_postgresql_read_store_candidates_are_reported_and_nothing_live_changes() -> Result<()> {
    let Some(url) = Server::Postgres.fresh_database_url()? else { return Ok(()) };
    three_candidates(Some(&url)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projection_that_does_not_run_yet_reports_every_row_as_added() -> Result<()> {
    let host = start(&[], None).await?;
    let history = history(host.api()).await?;
    let before = live_state(&host, None).await?;
    let candidate = Plugin::AccountsProjection.bytes()?;
    let reply = dry_run(host.api(), "accounts", candidate.clone()).await?.expect_status(200)?;
    let report = &reply.body;
    ensure!(report["liveSha256"].is_null(), "no live version: {report}");
    ensure!(report["sha256"] == sha256_hex(&candidate), "{report}");
    ensure!(report["position"] == history.head, "up to the log's head: {report}");
    ensure!(report["eventsHandled"] == 8 && report["failures"] == json!([]), "{report}");
    let notes = report["notes"].to_string();
    ensure!(notes.contains("no projection accounts runs"), "says there is no live version: {report}");
    let accounts = table(report, "accounts")?;
    ensure!(counts(accounts) == (json!(3), json!(0), json!(0), json!(0)), "every row added: {accounts}");
    for sample in accounts["samples"].as_array().context("no samples")? {
        ensure!(sample["change"] == "added" && sample["live"].is_null(), "{sample}");
        ensure!(history.ids.iter().any(|id| sample["candidate"]["id"] == id.as_str()), "{sample}");
    }
    check_unchanged(&before, &live_state(&host, None).await?, "the dry run of a new projection")?;
    ensure!(host.admin_plugin("accounts").await?.is_none(), "the candidate is not installed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_candidates_are_refused_and_change_nothing() -> Result<()> {
    let host = start(&[Plugin::AccountsProjection], None).await?;
    let history = history(host.api()).await?;
    caught_up(host.api(), "accounts", CATCH_UP).await?;
    let before = live_state(&host, None).await?;
    // Another projection, an aggregate, and no component at all.
    dry_run(host.api(), "accounts", Plugin::PostsProjection.bytes()?)
        .await?
        .check_error(400, &["wrong_plugin_name"])?;
    dry_run(host.api(), "accounts", Plugin::BankAccount.bytes()?).await?.check_error(400, &["wrong_plugin_name"])?;
    dry_run(host.api(), "accounts", b"not a component".to_vec()).await?.check_error(422, &["plugin_refused"])?;
    let path = "/admin/plugins/accounts/dry-run";
    let as_json = host.admin_request(Method::POST, path).header(CONTENT_TYPE, "application/json").body("{}");
    host.send(as_json).await?.check_error(415, &["unsupported_media_type"])?;
    let shouting = Plugin::AccountsProjectionShouting.bytes()?;
    let no_token = host.request(Method::POST, path).header(CONTENT_TYPE, WASM).body(shouting.clone());
    host.send(no_token).await?.check_error(401, &["unauthorized"])?;
    check_unchanged(&before, &live_state(&host, None).await?, "refused dry runs")?;
    // The refusals left nothing behind that a good candidate would meet.
    let reply = dry_run(host.api(), "accounts", shouting.clone()).await?.expect_status(200)?;
    check_shouting(&reply.body, &history, &Plugin::AccountsProjection.bytes()?, &shouting)?;
    Ok(())
}

/// How a `sluice` run ended: success, stdout, and everything for the error.
async fn sluice(args: &[&str]) -> Result<(bool, String, String)> {
    let bin = sluice_bin()?;
    let mut command = std::process::Command::new(&bin);
    command.args(args).stdin(std::process::Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(&name);
        }
    }
    command.env("NO_COLOR", "1");
    let output = tokio::time::timeout(Duration::from_secs(120), tokio::process::Command::from(command).output())
        .await
        .with_context(|| format!("sluice {args:?} did not finish within 120 s"))?
        .with_context(|| format!("failed to run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok((output.status.success(), stdout, stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_dry_runs_against_a_running_host_and_on_a_stopped_hosts_folders() -> Result<()> {
    let mut host = start(&[Plugin::AccountsProjection], None).await?;
    let history = history(host.api()).await?;
    caught_up(host.api(), "accounts", CATCH_UP).await?;
    let before = live_state(&host, None).await?;
    let shouting = Plugin::AccountsProjectionShouting.path();
    let file = shouting.to_str().context("a component path that is not UTF-8")?;
    let url = host.base_url().to_owned();
    let remote = ["--url", url.as_str(), "--token", TOKEN];

    let mut args = vec!["plugins", "dry-run", "accounts", file];
    args.extend(remote);
    let (ok, stdout, stderr) = sluice(&args).await?;
    ensure!(ok, "sluice {args:?} failed:\n{stdout}\n{stderr}");
    let summary = format!("up to position {}: 8 events handled, 0 failures", history.head);
    ensure!(stdout.lines().next().is_some_and(|l| l.contains(&summary)), "summary line: {stdout}");
    ensure!(stdout.contains("table accounts: 0 added, 0 removed, 3 changed, 0 unchanged"), "{stdout}");
    ensure!(stdout.contains("\"account_holder\":\"ADA LOVELACE\""), "the differing rows: {stdout}");

    args.push("--json");
    let (ok, stdout, stderr) = sluice(&args).await?;
    ensure!(ok, "sluice {args:?} failed:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).with_context(|| format!("not JSON: {stdout}"))?;
    check_shouting(
        &report,
        &history,
        &Plugin::AccountsProjection.bytes()?,
        &Plugin::AccountsProjectionShouting.bytes()?,
    )?;

    let wrong = ["plugins", "dry-run", "accounts", file, "--url", url.as_str(), "--token", "wrong"];
    let (ok, stdout, stderr) = sluice(&wrong).await?;
    ensure!(!ok && stderr.contains("401"), "a wrong token fails saying 401:\n{stdout}\n{stderr}");
    check_unchanged(&before, &live_state(&host, None).await?, "the CLI's dry runs")?;

    // Locally, on the stopped host's folders.
    host.stop().await?;
    let (data, plugins) = (host.data_dir(), host.plugins_dir());
    let (data, plugins) = (data.to_str().context("not UTF-8")?, plugins.to_str().context("not UTF-8")?);
    let brittle = Plugin::AccountsProjectionBrittle.path();
    let brittle = brittle.to_str().context("not UTF-8")?;
    let local = ["plugins", "dry-run", "accounts", brittle, "--json", "--data-dir", data, "--plugins", plugins];
    let (ok, stdout, stderr) = sluice(&local).await?;
    ensure!(ok, "sluice {local:?} failed:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).with_context(|| format!("not JSON: {stdout}"))?;
    check_brittle(&report, &history)?;
    let after = dump_read_store(&read_store_url(&host, None)).await?;
    ensure!(after == before.read_store, "the local dry run changed the read store:\n{after:#?}");
    Ok(())
}
