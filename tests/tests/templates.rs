//! The JavaScript and Python skeletons of `sluice new aggregate` and `sluice new reactor`, in a
//! real `sluice serve`: the aggregate answers its routes (201 on a create, 200 on a rename and
//! an archive, 400 `invalid_command` on a bad name (the plugin's refusal), 400 `rejected` once archived, 404 for an id
//! that never was) and renders its state; the reactor of the same language, with its channel
//! granted as a webhook served by the test, sends one message per creation and archival, keyed
//! by the aggregate id, each with its own idempotency key — and nothing for a rename or a refused
//! command.
//!
//! The components come from the template step of `scripts/test` (`scripts/polyglot templates`),
//! which scaffolds every skeleton as `tide-LANG`, runs its own tests and builds it into
//! `polyglot/templates/KIND_LANG.wasm` of the plugins' target folder. Missing components skip
//! the test, or fail it under `SLUICE_REQUIRE_SERVERS=1` with that command. They are dropped into
//! the running host's plugins folder, as a plugin author would: compiling a component that embeds
//! SpiderMonkey or CPython takes longer than a host's start may.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Check, Host, HostOptions, POLYGLOT_PLUGINS_DIR, wait_until};

const ADMIN_TOKEN: &str = "templates-admin";

/// A bound on compiling a component with a language runtime on a loaded two-core machine.
const LOAD: Duration = Duration::from_secs(600);

/// A bound on the reactor's messages reaching the receiver.
const DELIVERY: Duration = Duration::from_secs(60);

/// One skeleton language and the names `sluice new … tide-LANG` gave its plugins.
struct Skeletons {
    /// `js` or `python`, as in `--lang`.
    lang: &'static str,
    /// The aggregate type (`TideJs`).
    aggregate_type: &'static str,
    /// The reactor's name and its channel's (`tide_js`).
    reactor: &'static str,
    /// The aggregate's route (`/api/v1/tideJs`).
    route: &'static str,
}

const JS: Skeletons = Skeletons { lang: "js", aggregate_type: "TideJs", reactor: "tide_js", route: "/api/v1/tideJs" };
const PYTHON: Skeletons =
    Skeletons { lang: "python", aggregate_type: "TidePython", reactor: "tide_python", route: "/api/v1/tidePython" };

impl Skeletons {
    fn component(&self, kind: &str) -> PathBuf {
        Path::new(POLYGLOT_PLUGINS_DIR).join("templates").join(format!("{kind}_{}.wasm", self.lang))
    }

    /// Whether the template step built both components: as `Plugin::built` does for the
    /// polyglot plugins, a skip, or a failure under `SLUICE_REQUIRE_SERVERS=1`.
    fn built(&self) -> Result<bool> {
        let missing: Vec<String> = ["aggregate", "reactor"]
            .iter()
            .map(|kind| self.component(kind))
            .filter(|path| !path.is_file())
            .map(|path| path.display().to_string())
            .collect();
        if missing.is_empty() {
            return Ok(true);
        }
        let how = format!(
            "{} not built: run `scripts/polyglot templates` (after `cargo build -p sluice`)",
            missing.join(", ")
        );
        if std::env::var("SLUICE_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
            bail!("{how}; SLUICE_REQUIRE_SERVERS=1 makes this a failure");
        }
        eprintln!("skipped: {how}");
        Ok(false)
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    idempotency_key: String,
    body: Value,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A webhook receiver on 127.0.0.1:0 that records every POST; answers where it listens.
async fn receiver() -> Result<(std::net::SocketAddr, Inbox)> {
    async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: String) -> StatusCode {
        let Ok(body) = serde_json::from_str(&body) else { return StatusCode::BAD_REQUEST };
        let idempotency_key =
            headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        inbox.lock().unwrap_or_else(PoisonError::into_inner).push(Received { idempotency_key, body });
        StatusCode::OK
    }
    let inbox = Inbox::default();
    let app = axum::Router::new().route("/tide", axum::routing::post(receive)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("failed to bind the receiver")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, inbox))
}

/// Waits until the admin API lists `name` as a running plugin of `kind`.
async fn running(host: &Host, name: &str, kind: &str) -> Result<()> {
    wait_until(&format!("{kind} {name} runs"), LOAD, || async {
        let (plugins, refused) = host.admin_plugins().await?;
        if let Some(refusal) = refused.iter().find(|r| r.to_string().contains(name)) {
            bail!("the host refused {name}: {refusal}");
        }
        Ok(match plugins.into_iter().find(|p| p["name"] == name) {
            Some(plugin) if plugin["kind"] == kind && plugin["status"] == "running" => Check::Done(()),
            other => Check::NotYet(format!("{other:?}")),
        })
    })
    .await
}

async fn the_skeletons_answer_commands_and_send_messages(skeletons: Skeletons) -> Result<()> {
    if !skeletons.built()? {
        return Ok(());
    }
    let (addr, inbox) = receiver().await?;
    let config_dir = tempfile::tempdir().context("failed to create the config folder")?;
    let config = config_dir.path().join("sluice.toml");
    let grant = format!(
        "[channels.{}]\nwebhook = \"http://{addr}/tide\"\ntimeout_ms = 2000\n\n[delivery]\nbackoff_ms = 5\nmax_backoff_ms = 100\n",
        skeletons.reactor
    );
    std::fs::write(&config, grant).context("failed to write the config file")?;
    let host = Host::start(
        HostOptions::with_plugins(&[])
            .arg("--config")
            .arg(config.display().to_string())
            .admin_token(ADMIN_TOKEN)
            .request_timeout(Duration::from_secs(60)),
    )
    .await?;

    // Dropped in as a plugin author would, each written whole under a name the host ignores.
    for kind in ["aggregate", "reactor"] {
        let from = skeletons.component(kind);
        let name = format!("{kind}_{}.wasm", skeletons.lang);
        let temporary = host.plugins_dir().join(format!(".{name}.tmp"));
        std::fs::copy(&from, &temporary).with_context(|| format!("failed to copy {}", from.display()))?;
        std::fs::rename(&temporary, host.plugins_dir().join(&name)).context("failed to install")?;
    }
    running(&host, skeletons.aggregate_type, "aggregate").await?;
    running(&host, skeletons.reactor, "reactor").await?;

    // The aggregate: every answer of its routes.
    let route = skeletons.route;
    let created = host.post_json(route, &json!({"name": " First "})).await?.expect_status(201)?;
    ensure!(created.str_field("message")? == "Created!", "{created}");
    let id = created.str_field("id")?.to_owned();
    let second = host.post_json(route, &json!({"name": "Second"})).await?.expect_status(201)?;
    let other = second.str_field("id")?.to_owned();
    host.post_json(route, &json!({"name": "  "})).await?.check_error(400, &["invalid_command"])?;
    // A body that is not an object the host refuses itself.
    host.post_json(route, &json!([1])).await?.check_error(400, &["invalid_json"])?;
    let renamed = host.put_json(&format!("{route}/{id}/name"), &json!({"name": "Renamed"})).await?;
    ensure!(renamed.clone().expect_status(200)?.str_field("message")? == "Renamed!", "{renamed}");
    host.put_json(&format!("{route}/{id}/name"), &json!({})).await?.check_error(400, &["invalid_command"])?;
    let archived = host.delete(&format!("{route}/{id}")).await?.expect_status(200)?;
    ensure!(archived.str_field("message")? == "Archived!", "{archived}");
    host.delete(&format!("{route}/{id}")).await?.check_error(400, &["rejected"])?;
    host.put_json(&format!("{route}/{id}/name"), &json!({"name": "Late"})).await?.check_error(400, &["rejected"])?;
    host.delete(&format!("{route}/00000000-0000-4000-8000-00000000dead"))
        .await?
        .check_error(404, &["aggregate_not_found"])?;

    let state = host.state(skeletons.aggregate_type, &id, None).await?.expect_status(200)?;
    ensure!(state.body["state"] == json!({"name": "Renamed", "archived": true}), "{state}");
    ensure!(state.u64_field("version")? == 3, "{state}");
    let state = host.state(skeletons.aggregate_type, &other, None).await?.expect_status(200)?;
    ensure!(state.body["state"] == json!({"name": "Second", "archived": false}), "{state}");

    // The reactor: the two creations and the archival, in the order of the log, nothing else. A
    // message for the rename would share the archival's key and so arrive before it: the first
    // three messages tell.
    let wanted = [
        (id.as_str(), format!("{}CreatedEvent", skeletons.aggregate_type), Some("First")),
        (other.as_str(), format!("{}CreatedEvent", skeletons.aggregate_type), Some("Second")),
        (id.as_str(), format!("{}ArchivedEvent", skeletons.aggregate_type), None),
    ];
    let received = wait_until("the reactor's messages", DELIVERY, || async {
        let received = inbox.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Ok(if received.len() >= wanted.len() { Check::Done(received) } else { Check::NotYet(format!("{received:?}")) })
    })
    .await?;
    let mut keys: Vec<&str> = received.iter().map(|r| r.idempotency_key.as_str()).collect();
    let mut found: Vec<&Received> = received.iter().collect();
    found.sort_by_key(|r| r.body["position"].as_u64());
    ensure!(found.len() == wanted.len(), "{} messages, wanted {}: {received:?}", found.len(), wanted.len());
    let mut last_position = 0;
    for (message, (aggregate_id, event, name)) in found.iter().zip(&wanted) {
        let body = &message.body;
        ensure!(
            body["id"] == *aggregate_id && body["event"] == event.as_str(),
            "{body}, wanted {event} of {aggregate_id}"
        );
        ensure!(body.get("name").and_then(Value::as_str) == *name, "{body}: name, wanted {name:?}");
        let position = body["position"].as_u64().with_context(|| format!("no position in {body}"))?;
        ensure!(position > last_position, "positions out of order in {received:?}");
        last_position = position;
    }
    keys.sort_unstable();
    keys.dedup();
    ensure!(
        keys.len() == wanted.len() && keys.iter().all(|k| k.starts_with(skeletons.reactor)),
        "every message has its own idempotency key, named by the reactor: {received:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_javascript_aggregate_and_reactor_skeletons_answer_commands_and_send_messages() -> Result<()> {
    the_skeletons_answer_commands_and_send_messages(JS).await
}

#[tokio::test]
async fn the_python_aggregate_and_reactor_skeletons_answer_commands_and_send_messages() -> Result<()> {
    the_skeletons_answer_commands_and_send_messages(PYTHON).await
}
