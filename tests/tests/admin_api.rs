//! The admin API against the real binary: the versions it keeps and activating an old one again,
//! the uploads it refuses (each changing nothing, each listed with its reason), consumer
//! positions and lag, uploads that survive a restart, and the bearer token on every route.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sluice_e2e::{
    Api, Check, Host, HostOptions, LOOKUP, Ledger, Plugin, Reply, WASM, check_plugin, distinct_build, sha256_hex,
    wait_until,
};

const TOKEN: &str = "admin-api-test-token";
const CATCH_UP: Duration = Duration::from_secs(60);

/// The smallest core module: magic and version 1. A module, not a component.
const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";
/// The smallest component: magic, version 0x0d, layer 1. It exports nothing.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
/// The default largest upload.
const UPLOAD_LIMIT: usize = 64 << 20;

async fn start(plugins: &[Plugin]) -> Result<Host> {
    Host::start(HostOptions::with_plugins(plugins).admin_token(TOKEN)).await
}

/// A host with the bank and the accounts projection, some history, and the read model caught up.
async fn bank_host() -> Result<(Host, Ledger)> {
    let host = start(&[Plugin::BankAccount, Plugin::AccountsProjection]).await?;
    let mut ledger = Ledger::default();
    for n in 0..5 {
        let id = ledger.open(&host, &format!("holder {n}"), "20").await?;
        ledger.deposit(&host, &id, "0.3").await?;
    }
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    Ok((host, ledger))
}

/// `GET /admin/plugins/{name}` (200), checked as a plugin of this kind.
async fn plugin(api: &Api, name: &str, kind: &str) -> Result<Value> {
    let reply = api.admin_get(&format!("/admin/plugins/{name}")).await?.expect_status(200)?;
    check_plugin(&reply.body, name, kind)?;
    Ok(reply.body)
}

/// `GET /admin/plugins/{name}/versions` (200): the active sha256 and the versions' sha256s in
/// the order listed, after checking the shape: one version active, the one named `active`.
async fn versions(api: &Api, name: &str) -> Result<(String, Vec<String>)> {
    let reply = api.admin_get(&format!("/admin/plugins/{name}/versions")).await?.expect_status(200)?;
    ensure!(reply.body["name"] == name, "versions of another plugin: {reply}");
    let active = reply.str_field("active")?.to_owned();
    let list = reply.body["versions"].as_array().with_context(|| format!("no versions list: {reply}"))?;
    let mut shas = Vec::new();
    for version in list {
        let sha = version["sha256"].as_str().with_context(|| format!("no sha256: {version}"))?;
        ensure!(version["size"].as_u64().is_some_and(|n| n > 0), "no size: {version}");
        ensure!(version["source"].is_string(), "no source: {version}");
        ensure!(version["firstSeen"].as_str().is_some_and(|t| !t.is_empty()), "no firstSeen: {version}");
        ensure!(version["lastActivated"].is_string() || version["lastActivated"].is_null(), "{version}");
        ensure!(version["active"] == (sha == active), "`active` disagrees with {active}: {version}");
        shas.push(sha.to_owned());
    }
    ensure!(shas.contains(&active), "the active {active} is not among the versions: {reply}");
    let mut unique = shas.clone();
    unique.sort();
    unique.dedup();
    ensure!(unique.len() == shas.len(), "a version listed twice: {reply}");
    Ok((active, shas))
}

/// Waits until the lookup, as of the ledger's last position, is whole and from this schema
/// version of the accounts projection (1: no `schemaVersion` field).
async fn lookup_from(api: &Api, ledger: &Ledger, schema_version: u64) -> Result<()> {
    let what = format!("the lookup answers from schema version {schema_version}");
    wait_until(&what, CATCH_UP, || async {
        let reply = ledger.wait_for_lookup(api, CATCH_UP).await?;
        let answered = reply.body.get("schemaVersion").map_or(Some(1), Value::as_u64);
        Ok(if answered == Some(schema_version) { Check::Done(()) } else { Check::NotYet(reply.to_string()) })
    })
    .await
}

#[tokio::test]
async fn versions_are_kept_and_an_old_one_can_be_activated_again() -> Result<()> {
    let (host, mut ledger) = bank_host().await?;
    let original = Plugin::AccountsProjection.bytes()?;
    let first = plugin(&host, "accounts", "projection").await?;
    ensure!(first["sha256"] == sha256_hex(&original), "not the component started with: {first}");

    // A replacement is written over the file it came from, not beside it.
    let second = distinct_build(&original, "second");
    let reply = host.admin_put_wasm("accounts", second.clone()).await?.expect_status(200)?;
    ensure!(reply.body["replaced"] == true, "{reply}");
    let file = host.plugins_dir().join(Plugin::AccountsProjection.file_name());
    ensure!(std::fs::read(&file).ok() == Some(second.clone()), "{} does not hold the replacement", file.display());
    ensure!(!host.plugins_dir().join("accounts.wasm").exists(), "a replacement was written beside the original");

    let (active, listed) = versions(&host, "accounts").await?;
    ensure!(active == sha256_hex(&second), "{active} is active, not the replacement");
    ensure!(listed == [sha256_hex(&second), sha256_hex(&original)], "newest first: {listed:?}");

    // Back to the original.
    let path = format!("/admin/plugins/accounts/versions/{}/activate", sha256_hex(&original));
    let reply = host.admin_post(&path, &json!({})).await?.expect_status(200)?;
    check_plugin(&reply.body["plugin"], "accounts", "projection")?;
    ensure!(reply.body["plugin"]["sha256"] == sha256_hex(&original), "activated another version: {reply}");
    ensure!(plugin(&host, "accounts", "projection").await?["sha256"] == sha256_hex(&original), "not active");
    let (active, listed) = versions(&host, "accounts").await?;
    ensure!(active == sha256_hex(&original) && listed.len() == 2, "after activating: {active} of {listed:?}");
    for id in ledger.ids() {
        ledger.deposit(&host, &id, "1").await?;
    }
    lookup_from(&host, &ledger, 1).await?;

    // Across a schema change and back: each version's answers, whole.
    let v2 = Plugin::AccountsProjectionV2.bytes()?;
    host.admin_put_wasm("accounts", v2.clone()).await?.expect_status(200)?;
    lookup_from(&host, &ledger, 2).await?;
    let (active, listed) = versions(&host, "accounts").await?;
    ensure!(active == sha256_hex(&v2) && listed.len() == 3, "after version 2: {active} of {listed:?}");
    host.admin_post(&path, &json!({})).await?.expect_status(200)?;
    for id in ledger.ids() {
        ledger.deposit(&host, &id, "0.07").await?;
    }
    lookup_from(&host, &ledger, 1).await?;

    // A version the host never saw.
    let unknown = format!("/admin/plugins/accounts/versions/{}/activate", "0".repeat(64));
    let reply = host.admin_post(&unknown, &json!({})).await?;
    ensure!(reply.status == 404, "activating an unknown version answered {reply}");
    ensure!(plugin(&host, "accounts", "projection").await?["sha256"] == sha256_hex(&original), "it changed");
    Ok(())
}

/// An error answer: this status, JSON `{"message", "code"}` with both non-empty.
fn check_refusal(reply: &Reply, status: u16) -> Result<()> {
    ensure!(reply.status.as_u16() == status, "expected {status}, got {reply}");
    let content_type = reply.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    ensure!(content_type.starts_with("application/json"), "not JSON ({content_type}): {reply}");
    ensure!(reply.str_field("message").is_ok_and(|m| !m.trim().is_empty()), "no message: {reply}");
    ensure!(reply.code().is_some_and(|c| !c.is_empty()), "no code: {reply}");
    Ok(())
}

/// The plugins directory's file names, sorted.
fn files(host: &Host) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(host.plugins_dir())?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    Ok(names)
}

/// Nothing changed: accounts runs the same component and answers the whole read model, the
/// bank still takes commands, no plugin joined and no file appeared.
async fn check_unchanged(host: &Host, ledger: &mut Ledger, sha: &str, files_before: &[String]) -> Result<()> {
    let accounts = plugin(host, "accounts", "projection").await?;
    ensure!(accounts["sha256"] == sha && accounts["status"] == "running", "accounts changed: {accounts}");
    let (plugins, _) = host.admin_plugins().await?;
    let names: Vec<&str> = plugins.iter().filter_map(|p| p["name"].as_str()).collect();
    ensure!(names.len() == 2 && names.contains(&"accounts") && names.contains(&"BankAccount"), "plugins: {names:?}");
    ensure!(files(host)? == files_before, "the plugins directory changed: {:?}", files(host)?);
    let id = ledger.ids()[0].clone();
    ledger.deposit(host, &id, "0.01").await?;
    let reply = ledger.wait_for_lookup(host, CATCH_UP).await?;
    ensure!(reply.body.get("schemaVersion").is_none(), "another version answers: {reply}");
    let one = host.get(&format!("{LOOKUP}byId/{id}")).await?.expect_status(200)?;
    ensure!(one.body["accounts"][0]["id"] == id.as_str(), "byId answers another account: {one}");
    Ok(())
}

#[tokio::test]
async fn refused_uploads_change_nothing_and_are_listed_with_their_reason() -> Result<()> {
    let (host, mut ledger) = bank_host().await?;
    let running = sha256_hex(&Plugin::AccountsProjection.bytes()?);
    let files_before = files(&host)?;

    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("bytes that are no wasm", "accounts", b"definitely not a component".to_vec(), 422),
        ("a core module", "accounts", CORE_MODULE.to_vec(), 422),
        ("an empty component", "accounts", EMPTY_COMPONENT.to_vec(), 422),
        ("a projection whose routes collide with accounts'", "squatter", Plugin::SquatterProjection.bytes()?, 409),
        ("an aggregate named like the accounts projection", "accounts", Plugin::SquatterAggregate.bytes()?, 409),
        ("a component whose describe traps", "accounts", Plugin::TrappingDescribe.bytes()?, 422),
        ("a manifest with a route the host reserves", "ReservedRoute", Plugin::ReservedRoute.bytes()?, 422),
    ];
    for (case, name, bytes, status) in cases {
        let reply = host.admin_put_wasm(name, bytes.clone()).await?;
        check_refusal(&reply, status).context(case)?;
        let (_, refused) = host.admin_plugins().await?;
        let sha = sha256_hex(&bytes);
        let refusal = refused.iter().find(|r| r["sha256"] == sha.as_str());
        let refusal = refusal.with_context(|| format!("{case}: not among the refused: {refused:?}"))?;
        ensure!(refusal["reason"].as_str().is_some_and(|r| !r.trim().is_empty()), "{case}: no reason: {refusal}");
        ensure!(refusal["source"].is_string() && refusal["at"].is_string(), "{case}: {refusal}");
        check_unchanged(&host, &mut ledger, &running, &files_before).await.context(case)?;
    }

    // Requests the host cannot take at all, whatever the component.
    let accounts = Plugin::AccountsProjection.bytes()?;
    let bank = Plugin::BankAccount.bytes()?;
    let reply = host.admin_put_wasm("accounts", bank).await?;
    check_refusal(&reply, 400).context("a component whose declared name is not the one in the path")?;
    let as_json = host
        .admin_request(Method::PUT, "/admin/plugins/accounts")
        .header(CONTENT_TYPE, "application/json")
        .body(accounts.clone());
    check_refusal(&host.send(as_json).await?, 415).context("a component sent as application/json")?;
    let mut oversized = accounts;
    oversized.resize(UPLOAD_LIMIT + 1, 0);
    let reply = host.admin_put_wasm("accounts", oversized).await?;
    check_refusal(&reply, 413).context("an upload over 64 MiB")?;
    check_unchanged(&host, &mut ledger, &running, &files_before).await?;

    // Names the host does not know.
    for (method, path) in [
        (Method::GET, "/admin/plugins/nope"),
        (Method::GET, "/admin/plugins/nope/versions"),
        (Method::DELETE, "/admin/plugins/nope"),
        (Method::POST, "/admin/projections/nope/rebuild"),
    ] {
        let reply = host.send(host.admin_request(method.clone(), path)).await?;
        check_refusal(&reply, 404).with_context(|| format!("{method} {path}"))?;
    }
    check_unchanged(&host, &mut ledger, &running, &files_before).await
}

#[tokio::test]
async fn consumers_show_each_projections_position_and_lag() -> Result<()> {
    let (host, ledger) = bank_host().await?;
    let consumer = wait_until("the accounts consumer has no lag", CATCH_UP, || async {
        let reply = host.admin_get("/admin/consumers").await?.expect_status(200)?;
        let list = reply.body["consumers"].as_array().with_context(|| format!("no consumers: {reply}"))?;
        Ok(match list.iter().find(|c| c["name"] == "accounts") {
            Some(c) if c["lag"] == 0 => Check::Done(c.clone()),
            _ => Check::NotYet(reply.to_string()),
        })
    })
    .await?;
    ensure!(consumer["kind"] == "projection" && consumer["status"] == "running", "{consumer}");
    let (position, head) = (consumer["position"].as_u64(), consumer["head"].as_u64());
    ensure!(position == Some(ledger.last_position()) && head == position, "position and head: {consumer}");
    Ok(())
}

#[tokio::test]
async fn an_upload_survives_a_restart_and_a_removal_too() -> Result<()> {
    let mut host = start(&[Plugin::BankAccount]).await?;
    let mut ledger = Ledger::default();
    let id = ledger.open(&host, "Ada", "10").await?;
    ledger.deposit(&host, &id, "2.5").await?;
    let component = Plugin::AccountsProjection.bytes()?;
    host.admin_put_wasm("accounts", component.clone()).await?.expect_status(201)?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;

    host.restart().await?;
    let accounts = plugin(&host, "accounts", "projection").await?;
    ensure!(accounts["sha256"] == sha256_hex(&component), "another component after the restart: {accounts}");
    ensure!(accounts["source"].as_str().is_some_and(|s| s.contains("accounts.wasm")), "source: {accounts}");
    ledger.deposit(&host, &id, "1").await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;

    host.admin_delete("/admin/plugins/accounts").await?.expect_status(200)?;
    host.restart().await?;
    let listed = host.admin_plugin("accounts").await?;
    ensure!(listed.as_ref().is_none_or(|p| p["status"] != "running"), "removed, yet back after a restart: {listed:?}");
    host.get(LOOKUP).await?.check_error(404, &["route_not_found"])?;
    Ok(())
}

/// A request body of an admin call.
#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Wasm(Vec<u8>),
}

/// Every admin route, each with a call that succeeds on a host running `bank_host`, in an
/// order where each still can (the removal last).
fn admin_calls(component: &[u8]) -> Vec<(Method, String, Body)> {
    let sha = sha256_hex(component);
    vec![
        (Method::GET, "/admin/plugins".to_owned(), Body::None),
        (Method::GET, "/admin/plugins/accounts".to_owned(), Body::None),
        (Method::GET, "/admin/plugins/accounts/versions".to_owned(), Body::None),
        (Method::GET, "/admin/consumers".to_owned(), Body::None),
        (Method::GET, "/admin/events?after=0&limit=10".to_owned(), Body::None),
        (Method::GET, "/admin/projections/accounts/rebuild".to_owned(), Body::None),
        (Method::PUT, "/admin/plugins/accounts".to_owned(), Body::Wasm(component.to_vec())),
        (Method::POST, format!("/admin/plugins/accounts/versions/{sha}/activate"), Body::None),
        (Method::POST, "/admin/projections/accounts/rebuild".to_owned(), Body::Json(json!({}))),
        (Method::POST, "/admin/projections/accounts/rebuild".to_owned(), Body::None),
        (Method::DELETE, "/admin/plugins/accounts".to_owned(), Body::None),
    ]
}

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
enum Credentials<'a> {
    NoHeader,
    Bearer(&'a str),
    /// An `Authorization` header of another scheme.
    Basic,
}

async fn call(api: &Api, (method, path, body): &(Method, String, Body), credentials: Credentials<'_>) -> Result<Reply> {
    let mut request = match credentials {
        Credentials::NoHeader => api.request_with_token(method.clone(), path, None),
        Credentials::Bearer(token) => api.request_with_token(method.clone(), path, Some(token)),
        Credentials::Basic => api.request(method.clone(), path).basic_auth("admin", Some(TOKEN)),
    };
    request = match body {
        Body::None => request,
        Body::Json(value) => request.json(value),
        Body::Wasm(bytes) => request.header(CONTENT_TYPE, WASM).body(bytes.clone()),
    };
    api.send(request).await.with_context(|| format!("{method} {path}"))
}

#[tokio::test]
async fn without_a_token_the_admin_api_is_closed() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection])).await?;
    let mut ledger = Ledger::default();
    let id = ledger.open(&host, "Ada", "10").await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    for call_ in admin_calls(&Plugin::AccountsProjection.bytes()?) {
        for credentials in [Credentials::NoHeader, Credentials::Bearer("anything"), Credentials::Basic] {
            let reply = call(&host, &call_, credentials).await?;
            let context = || format!("{} {} with {credentials:?}", call_.0, call_.1);
            check_refusal(&reply, 403).with_context(context)?;
            let message = reply.str_field("message")?;
            ensure!(
                message.contains("--admin-token"),
                "{}: the message does not name --admin-token: {reply}",
                context()
            );
        }
    }
    // Nothing happened: the projection is still there and follows new events.
    ledger.deposit(&host, &id, "1").await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    Ok(())
}

#[tokio::test]
async fn with_a_token_every_admin_route_wants_it() -> Result<()> {
    let (host, mut ledger) = bank_host().await?;
    let component = Plugin::AccountsProjection.bytes()?;
    for call_ in admin_calls(&component) {
        let context = |what: &str| format!("{} {} {what}", call_.0, call_.1);
        let reply = call(&host, &call_, Credentials::NoHeader).await?;
        check_refusal(&reply, 401).with_context(|| context("without Authorization"))?;
        let challenge = reply.headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        ensure!(challenge.starts_with("Bearer"), "{}: WWW-Authenticate is {challenge:?}", context("without a token"));
        for (what, credentials) in [
            ("with the wrong token", Credentials::Bearer("not-the-token")),
            ("with a longer token", Credentials::Bearer(&format!("{TOKEN}x"))),
            ("with an empty token", Credentials::Bearer("")),
            ("with Basic credentials", Credentials::Basic),
        ] {
            let reply = call(&host, &call_, credentials).await?;
            check_refusal(&reply, 401).with_context(|| context(what))?;
        }
        // The refused calls changed nothing; with the token the call succeeds.
        let accounts = host.admin_plugin("accounts").await?.with_context(|| context(": accounts went"))?;
        ensure!(accounts["sha256"] == sha256_hex(&component), "{}: {accounts}", context("refused, yet"));
        let reply = call(&host, &call_, Credentials::Bearer(TOKEN)).await?;
        if !reply.status.is_success() {
            bail!("{}: {reply}", context("with the token"));
        }
    }
    // The last call removed the projection.
    host.get(LOOKUP).await?.check_error(404, &["route_not_found"])?;
    let id = ledger.ids()[0].clone();
    ledger.deposit(&host, &id, "1").await?;
    Ok(())
}
