//! The operator subcommands of the real `sluice` binary: `sluice plugins`, `sluice consumers`
//! and `sluice rebuild NAME`, against a running host (`--url`, `--token`, or `SLUICE_URL` and
//! `SLUICE_ADMIN_TOKEN`) and locally, on the data and plugins folders of a stopped host.
//!
//! Also `sluice dead-letters drop ID --url` on a running host (the letter goes, the drop is
//! audited with who did it) and a local in-place `sluice rebuild NAME` on a stopped host's
//! folders.
//!
//! Each command runs to completion as its own process; what it prints on stdout is what an
//! operator reads, so that is what is checked, against the admin API and the components' bytes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use sluice_e2e::under_load::caught_up;
use sluice_e2e::{Api, Check, Host, HostOptions, Ledger, Plugin, sha256_hex, sluice_bin, wait_until};

const TOKEN: &str = "cli-test-token";
const CATCH_UP: Duration = Duration::from_secs(60);

/// How a `sluice` run ended.
#[derive(Debug)]
struct Run {
    args: Vec<String>,
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sluice {:?} exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// Run `sluice ARGS…` with `env` and no other `SLUICE_*` variable, to completion (bounded).
async fn sluice(args: &[&str], env: &[(&str, &str)]) -> Result<Run> {
    let bin = sluice_bin()?;
    let mut command = Command::new(&bin);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(&name);
        }
    }
    command.env("NO_COLOR", "1").envs(env.iter().copied());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::time::timeout(Duration::from_secs(120), tokio::process::Command::from(command).output())
        .await
        .with_context(|| format!("sluice {args:?} did not finish within 120 s"))?
        .with_context(|| format!("failed to run {}", bin.display()))?;
    Ok(Run {
        args,
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Run `sluice ARGS…`, which must succeed, and answer its stdout.
async fn sluice_ok(args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let run = sluice(args, env).await?;
    ensure!(run.success, "{run}");
    Ok(run.stdout)
}

/// One line of `sluice plugins --url`: `KIND NAME (SOURCE), STATUS, sha256 SHA[, lag N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    kind: String,
    name: String,
    source: String,
    status: String,
    sha256: String,
    lag: Option<u64>,
}

fn parse_plugins(stdout: &str) -> Result<Vec<Listed>> {
    let mut listed = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let parse = || -> Option<Listed> {
            let (kind, rest) = line.split_once(' ')?;
            let (name, rest) = rest.split_once(" (")?;
            let (source, rest) = rest.split_once("), ")?;
            let mut parts = rest.split(", ");
            let status = parts.next()?.to_owned();
            let sha256 = parts.next()?.strip_prefix("sha256 ")?.to_owned();
            let lag = match parts.next() {
                Some(lag) => Some(lag.strip_prefix("lag ")?.parse().ok()?),
                None => None,
            };
            Some(Listed { kind: kind.into(), name: name.into(), source: source.into(), status, sha256, lag })
        };
        listed.push(parse().with_context(|| format!("`sluice plugins` printed a line it should not: {line:?}"))?);
    }
    Ok(listed)
}

/// One line of `sluice consumers`: `NAME STATUS position P head H lag L` (`-` for none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Consumer {
    name: String,
    status: String,
    position: Option<u64>,
    head: u64,
    lag: Option<u64>,
}

fn parse_consumers(stdout: &str) -> Result<Vec<Consumer>> {
    let mut consumers = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |word: &str| if word == "-" { Some(None) } else { word.parse().ok().map(Some) };
        let parsed = match words.as_slice() {
            [name, status, "position", position, "head", head, "lag", lag] => {
                match (number(position), head.parse().ok(), number(lag)) {
                    (Some(position), Some(head), Some(lag)) => {
                        Some(Consumer { name: (*name).into(), status: (*status).into(), position, head, lag })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        consumers.push(parsed.with_context(|| format!("`sluice consumers` printed a line it should not: {line:?}"))?);
    }
    Ok(consumers)
}

/// The names of the plugins `sluice plugins` lists locally: each plugin's first line is
/// `KIND NAME (SOURCE), …`; its commands, events, tables and routes follow indented.
fn local_plugin_names(stdout: &str) -> Result<Vec<(String, String)>> {
    let mut names = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(' ')) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some(kind @ ("aggregate" | "projection")), Some(name)) => names.push((kind.to_owned(), name.to_owned())),
            _ => bail!("`sluice plugins` printed a line it should not: {line:?}"),
        }
    }
    names.sort();
    Ok(names)
}

/// Open a few accounts with deposits.
async fn some_history(api: &Api, ledger: &mut Ledger) -> Result<()> {
    for n in 0..6 {
        let id = ledger.open(api, &format!("holder {n}"), "100").await?;
        for k in 0..3 {
            ledger.deposit(api, &id, ["0.25", "10", "3.5"][k % 3]).await?;
        }
    }
    Ok(())
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[tokio::test]
async fn the_cli_lists_plugins_and_consumers_rebuilds_and_refuses_a_wrong_token() -> Result<()> {
    let mut host =
        Host::start(HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection]).admin_token(TOKEN))
            .await?;
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger).await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    caught_up(&host, "accounts", CATCH_UP).await?;
    let url = host.base_url().to_owned();
    let bank_sha = sha256_hex(&Plugin::BankAccount.bytes()?);
    let accounts_sha = sha256_hex(&Plugin::AccountsProjection.bytes()?);

    // `sluice plugins --url`: both plugins, with their status and sha256, as the admin API says.
    let stdout = sluice_ok(&["plugins", "--url", &url, "--token", TOKEN], &[]).await?;
    eprintln!("sluice plugins --url:\n{stdout}");
    let mut listed = parse_plugins(&stdout)?;
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    ensure!(listed.len() == 2, "expected the aggregate and the projection:\n{stdout}");
    let (bank, accounts) = (&listed[0], &listed[1]);
    ensure!(bank.name == "BankAccount" && bank.kind == "aggregate", "{bank:?}");
    ensure!(bank.status == "running" && bank.sha256 == bank_sha, "{bank:?}, expected sha256 {bank_sha}");
    ensure!(bank.source == Plugin::BankAccount.file_name() && bank.lag.is_none(), "{bank:?}");
    ensure!(accounts.name == "accounts" && accounts.kind == "projection", "{accounts:?}");
    ensure!(accounts.status == "running" && accounts.sha256 == accounts_sha, "{accounts:?}, sha256 {accounts_sha}");
    ensure!(accounts.source == Plugin::AccountsProjection.file_name() && accounts.lag == Some(0), "{accounts:?}");
    let (api_plugins, _) = host.admin_plugins().await?;
    for plugin in [bank, accounts] {
        let api = api_plugins.iter().find(|p| p["name"] == plugin.name.as_str()).context("not in the admin API")?;
        ensure!(api["sha256"] == plugin.sha256.as_str() && api["status"] == plugin.status.as_str(), "{api}");
    }

    // `sluice consumers --url`: the projection alone, at the last position, lag 0.
    let stdout = sluice_ok(&["consumers", "--url", &url, "--token", TOKEN], &[]).await?;
    eprintln!("sluice consumers --url:\n{stdout}");
    let consumers = parse_consumers(&stdout)?;
    let last = ledger.last_position();
    let expected =
        Consumer { name: "accounts".into(), status: "running".into(), position: Some(last), head: last, lag: Some(0) };
    ensure!(consumers == [expected.clone()], "expected {expected:?}:\n{stdout}");
    // The same through the environment.
    let env_stdout = sluice_ok(&["consumers"], &[("SLUICE_URL", &url), ("SLUICE_ADMIN_TOKEN", TOKEN)]).await?;
    ensure!(parse_consumers(&env_stdout)? == consumers, "with SLUICE_URL and SLUICE_ADMIN_TOKEN:\n{env_stdout}");

    // `sluice rebuild accounts --url`: the position it rebuilt to, and the balances stay exact.
    let stdout = sluice_ok(&["rebuild", "accounts", "--url", &url, "--token", TOKEN], &[]).await?;
    eprintln!("sluice rebuild --url:\n{stdout}");
    let position: u64 = stdout
        .trim()
        .strip_prefix("rebuilt accounts up to position ")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("expected `rebuilt accounts up to position N`:\n{stdout}"))?;
    ensure!(position == last, "rebuilt up to position {position}, the last event is at {last}");
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    ensure!(host.balances_by_query(last).await? == ledger.balances(), "the balances changed in the rebuild");
    // And it follows new events.
    for id in ledger.ids() {
        ledger.deposit(&host, &id, "0.01").await?;
    }
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    let last = ledger.last_position();
    let consumers = wait_until("sluice consumers shows the new events", CATCH_UP, || async {
        let stdout = sluice_ok(&["consumers", "--url", &url, "--token", TOKEN], &[]).await?;
        let consumers = parse_consumers(&stdout)?;
        Ok(match consumers.as_slice() {
            [c] if c.position == Some(last) && c.lag == Some(0) => Check::Done(consumers),
            _ => Check::NotYet(stdout),
        })
    })
    .await?;
    ensure!(consumers[0].head == last && consumers[0].status == "running", "{consumers:?}");

    // A wrong token, or none: each command fails, saying 401, and changes nothing.
    for token in [Some("not-the-token"), None] {
        for command in [vec!["plugins"], vec!["consumers"], vec!["rebuild", "accounts"]] {
            let mut args = command.clone();
            args.extend(["--url", url.as_str()]);
            if let Some(token) = token {
                args.extend(["--token", token]);
            }
            let run = sluice(&args, &[]).await?;
            ensure!(!run.success, "succeeded with token {token:?}: {run}");
            ensure!(run.stderr.contains("401"), "the message does not say 401: {run}");
            eprintln!("sluice {args:?} said: {}", run.stderr.lines().find(|l| l.contains("401")).unwrap_or_default());
            ensure!(run.stdout.trim().is_empty(), "printed an answer with token {token:?}: {run}");
        }
    }
    caught_up(&host, "accounts", CATCH_UP).await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;

    // Locally, on the stopped host's folders: the same plugins, the same consumer position.
    host.stop().await?;
    let (data, plugins) = (path(&host.data_dir()), path(&host.plugins_dir()));
    let local = ["--data-dir", data.as_str(), "--plugins", plugins.as_str()];
    let stdout = sluice_ok(&[&["plugins"][..], &local[..]].concat(), &[]).await?;
    eprintln!("sluice plugins (local):\n{stdout}");
    let names = local_plugin_names(&stdout)?;
    let remote: Vec<(String, String)> = [bank, accounts].iter().map(|p| (p.kind.clone(), p.name.clone())).collect();
    ensure!(names == remote, "locally {names:?}, remotely {remote:?}:\n{stdout}");
    ensure!(
        stdout.lines().any(|l| l.starts_with("projection accounts") && l.ends_with(&format!("at position {last}"))),
        "the local listing does not show accounts at position {last}:\n{stdout}"
    );
    let stdout = sluice_ok(&[&["consumers"][..], &local[..]].concat(), &[]).await?;
    eprintln!("sluice consumers (local):\n{stdout}");
    let consumers = parse_consumers(&stdout)?;
    ensure!(consumers.len() == 1 && consumers[0].name == "accounts", "locally:\n{stdout}");
    ensure!(
        consumers[0].position == Some(last) && consumers[0].head == last && consumers[0].lag == Some(0),
        "locally, expected position {last} and lag 0:\n{stdout}"
    );

    // The stopped host starts again with the same read model.
    host.restart().await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    Ok(())
}

#[tokio::test]
async fn dead_letters_drop_removes_a_running_hosts_letter_and_records_who_dropped_it() -> Result<()> {
    // The brittle projection refuses every withdrawal: after 2 attempts the event parks.
    let config = tempfile::tempdir().context("failed to create a config folder")?;
    let config_file = config.path().join("sluice.toml");
    std::fs::write(&config_file, "[dead_letters]\nattempts = 2\nbackoff_ms = 50\n").context("failed to write")?;
    let options = HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjectionBrittle])
        .arg("--config")
        .arg(path(&config_file))
        .admin_token(TOKEN);
    let host = Host::start(options).await?;
    let id = host.open_account("dropped holder", "100").await?;
    let withdrawal = host.put_json(&format!("/api/v1/withdrawFunds/{id}"), &json!({ "amount": 10 })).await?;
    let position = withdrawal.expect_status(200)?.u64_field("position")?;
    let letter = wait_until("the withdrawal is parked", CATCH_UP, || async {
        let listing = host.admin_get("/admin/dead-letters?consumer=accounts").await?.expect_status(200)?;
        Ok(match listing.body["letters"].as_array().map(Vec::as_slice) {
            Some([letter]) => Check::Done(letter.clone()),
            _ => Check::NotYet(listing.to_string()),
        })
    })
    .await?;
    ensure!(letter["position"] == position && letter["eventType"] == "FundsWithdrawnEvent", "{letter}");
    let letter_id = letter["id"].as_i64().context("a letter id is a number")?.to_string();

    // Dropped by the operator the environment names (no --by): the CLI prints the admin API's answer.
    let url = host.base_url().to_owned();
    let stdout = sluice_ok(
        &["dead-letters", "drop", &letter_id, "--url", &url, "--token", TOKEN],
        &[("USER", "night-operator")],
    )
    .await?;
    eprintln!("sluice dead-letters drop:\n{stdout}");
    let answer: Value =
        serde_json::from_str(stdout.trim()).with_context(|| format!("not one JSON answer: {stdout}"))?;
    let dropped = &answer["dropped"];
    ensure!(dropped["droppedBy"] == "night-operator" && dropped["position"] == position, "{answer}");
    ensure!(dropped["droppedAt"].is_string(), "no time of the drop: {answer}");

    // The letter is gone from the parked ones and listed as dropped, with who and when.
    let listing = host.admin_get("/admin/dead-letters?consumer=accounts").await?.expect_status(200)?;
    ensure!(listing.body["letters"].as_array().is_some_and(Vec::is_empty), "still parked: {listing}");
    let audited = listing.body["dropped"].as_array().context("no dropped letters listed")?;
    ensure!(audited.len() == 1, "{listing}");
    ensure!(
        audited[0]["droppedBy"] == "night-operator"
            && audited[0]["position"] == position
            && audited[0]["consumer"] == "accounts"
            && audited[0]["eventType"] == "FundsWithdrawnEvent",
        "{listing}"
    );
    // Dropping it again is refused, saying why, and changes nothing.
    let again = sluice(&["dead-letters", "drop", &letter_id, "--url", &url, "--token", TOKEN], &[]).await?;
    ensure!(!again.success && again.stderr.contains("404"), "a second drop: {again}");
    let listing = host.admin_get("/admin/dead-letters?consumer=accounts").await?.expect_status(200)?;
    ensure!(listing.body["dropped"].as_array().is_some_and(|d| d.len() == 1), "{listing}");
    Ok(())
}

#[tokio::test]
async fn rebuild_in_place_on_a_stopped_hosts_folders_replays_through_the_plugin_there() -> Result<()> {
    let options = HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection]).admin_token(TOKEN);
    let mut host = Host::start(options).await?;
    let mut ledger = Ledger::default();
    some_history(&host, &mut ledger).await?;
    ledger.wait_for_lookup(&host, CATCH_UP).await?;
    caught_up(&host, "accounts", CATCH_UP).await?;
    let last = ledger.last_position();
    host.stop().await?;

    // While it is stopped, the projection's file becomes the shouting build (the same schema: a
    // restart alone would keep the rows it has, with the holders' names as they were written).
    let file = host.plugins_dir().join(Plugin::AccountsProjection.file_name());
    std::fs::write(&file, Plugin::AccountsProjectionShouting.bytes()?).context("failed to replace the file")?;
    let (data, plugins) = (path(&host.data_dir()), path(&host.plugins_dir()));
    let stdout = sluice_ok(&["rebuild", "accounts", "--data-dir", &data, "--plugins", &plugins], &[]).await?;
    eprintln!("sluice rebuild (local):\n{stdout}");
    let line = stdout.lines().last().unwrap_or_default();
    ensure!(
        line.starts_with(&format!("rebuilt accounts up to position {last} into ")),
        "expected `rebuilt accounts up to position {last} into …`:\n{stdout}"
    );

    // Every row was written again by the version in the folder: each holder's name upper-cased,
    // the balances exact.
    host.restart().await?;
    let accounts = wait_until("the rebuilt read model answers", CATCH_UP, || async {
        let reply = host.get(sluice_e2e::LOOKUP).await?;
        Ok(match reply.body["accounts"].as_array() {
            Some(accounts) if reply.status == 200 && accounts.len() == ledger.len() => Check::Done(accounts.clone()),
            _ => Check::NotYet(reply.to_string()),
        })
    })
    .await?;
    for account in &accounts {
        // `holder N` as opened, `HOLDER N` as the shouting build writes it.
        let holder = account["accountHolder"].as_str().context("an account without a holder")?;
        ensure!(holder.starts_with("HOLDER "), "not rebuilt: {account}");
    }
    ensure!(host.balances_by_query(last).await? == ledger.balances(), "the balances changed in the rebuild");
    Ok(())
}
