//! `/metrics`, request ids and JSON logs against the real binary: the Prometheus page's values
//! move as commands run and consumers catch up, `x-request-id` is returned (and made when the
//! client sends none), and `--log-format json` writes one JSON object per line, with the
//! request's id and the plugin's name on a plugin's fault. The rarer families have a test each:
//! dead letters parked (a projection's event and a reactor's delivery), plugin swaps and the
//! swap pause, sandbox limit hits, and the relay's position and lag on the Kafka stack.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_e2e::{Api, Check, Host, HostOptions, Plugin, Stack, distinct_build, wait_until};

const CATCH_UP: Duration = Duration::from_secs(60);
const TOKEN: &str = "metrics-token";

/// One sample of the page: name, labels (sorted) and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of a Prometheus text page (label values here hold no `,` or `"`).
fn parse(page: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for line in page.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').with_context(|| format!("no value: {line}"))?;
        let value: f64 = value.parse().with_context(|| format!("not a number: {line}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').with_context(|| format!("unclosed labels: {line}"))?;
                let mut labels = Vec::new();
                for pair in inner.split(',').filter(|p| !p.is_empty()) {
                    let (key, quoted) = pair.split_once('=').with_context(|| format!("bad label: {line}"))?;
                    labels.push((key.to_owned(), quoted.trim_matches('"').to_owned()));
                }
                labels.sort();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), Vec::new()),
        };
        samples.push(Sample { name, labels, value });
    }
    Ok(samples)
}

async fn scrape(api: &Api) -> Result<Vec<Sample>> {
    let reply = api.get("/metrics").await?.expect_status(200)?;
    let content_type = reply.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    ensure!(content_type.starts_with("text/plain"), "content type {content_type}");
    parse(&reply.text)
}

/// The value of the series `name` whose labels include `labels` (0 when there is none; the sum
/// when several match).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v)))
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn metrics_move_as_commands_run_and_consumers_catch_up() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection])).await?;
    let before = scrape(&host).await?;
    let opened = [("aggregate", "BankAccount"), ("command", "OpenAccount"), ("outcome", "ok")];
    ensure!(value(&before, "sluice_commands_total", &opened) == 0.0, "commands counted before any ran");

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(host.open_account(&format!("holder {n}"), "10").await?);
    }
    for id in &ids {
        host.deposit(id, "5").await?;
    }
    // A business rule's refusal is counted as such.
    let refused = host.put_json(&format!("/api/v1/withdrawFunds/{}", ids[0]), &json!({ "amount": 1000 })).await?;
    ensure!(refused.status == 400, "overdraw: {refused}");

    let after = scrape(&host).await?;
    ensure!(
        value(&after, "sluice_commands_total", &opened) == 3.0,
        "opened: {:?}",
        find(&after, "sluice_commands_total")
    );
    let deposited = [("aggregate", "BankAccount"), ("command", "DepositFunds"), ("outcome", "ok")];
    ensure!(value(&after, "sluice_commands_total", &deposited) == 3.0, "deposits counted");
    let rejected = [("aggregate", "BankAccount"), ("command", "WithdrawFunds"), ("outcome", "rejected")];
    ensure!(value(&after, "sluice_commands_total", &rejected) == 1.0, "the refusal is not counted as rejected");
    ensure!(value(&after, "sluice_events_appended_total", &[("aggregate", "BankAccount")]) == 6.0, "appends");
    ensure!(
        value(&after, "sluice_command_duration_seconds_count", &[("command", "DepositFunds")]) == 3.0,
        "the latency histogram has no deposits"
    );
    ensure!(after.iter().any(|s| s.name == "sluice_command_duration_seconds_bucket"), "the latency is not a histogram");
    let decides = value(&after, "sluice_plugin_calls_total", &[("plugin", "BankAccount"), ("call", "decide")]);
    ensure!(decides >= 7.0, "plugin calls: {decides}");
    let route = [("route", "/api/v1/depositFunds/{id}"), ("method", "PUT"), ("status", "200")];
    ensure!(value(&after, "sluice_http_requests_total", &route) == 3.0, "requests by route template");
    let head = value(&after, "sluice_log_head_position", &[]);
    ensure!(head >= 6.0, "the log's head: {head}");

    // The consumer catches up: its lag goes to zero and its position to the head.
    let caught_up = wait_until("the accounts consumer reports no lag", CATCH_UP, || async {
        let samples = scrape(&host).await?;
        let lag = value(&samples, "sluice_consumer_lag_events", &[("consumer", "accounts")]);
        let position = value(&samples, "sluice_consumer_position", &[("consumer", "accounts")]);
        let seconds = value(&samples, "sluice_consumer_lag_seconds", &[("consumer", "accounts")]);
        if lag == 0.0 && position == head {
            Ok(Check::Done((samples, seconds)))
        } else {
            Ok(Check::NotYet(format!("lag {lag}, position {position}, head {head}")))
        }
    })
    .await?;
    let (samples, lag_seconds) = caught_up;
    ensure!(lag_seconds == 0.0, "caught up but {lag_seconds} s behind");
    let running = [("consumer", "accounts"), ("state", "running")];
    ensure!(value(&samples, "sluice_consumer_state", &running) == 1.0, "{:?}", find(&samples, "sluice_consumer_state"));
    let handled = value(&samples, "sluice_plugin_calls_total", &[("plugin", "accounts"), ("call", "handle")]);
    ensure!(handled >= 1.0, "no projection calls counted");
    Ok(())
}

#[tokio::test]
async fn plugin_faults_are_counted_by_reason() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[Plugin::Faulty])).await?;
    let trapped = host.post_json("/api/aggregates/Faulty/f1/commands/Trap", &json!({})).await?;
    ensure!(trapped.status == 500, "a trap: {trapped}");
    let samples = scrape(&host).await?;
    let traps = value(&samples, "sluice_plugin_traps_total", &[("plugin", "Faulty"), ("reason", "trap")]);
    ensure!(traps == 1.0, "traps: {:?}", find(&samples, "sluice_plugin_traps_total"));
    let faulted = [("aggregate", "Faulty"), ("command", "Trap"), ("outcome", "plugin_fault")];
    ensure!(value(&samples, "sluice_commands_total", &faulted) == 1.0, "the fault is not counted");
    // Unknown names make no series of their own.
    host.post_json("/api/aggregates/Faulty/f1/commands/NoSuchCommand", &json!({})).await?;
    host.get("/no/such/route").await?;
    let samples = scrape(&host).await?;
    ensure!(!samples.iter().any(|s| s.labels.iter().any(|(_, v)| v.contains("NoSuch") || v.contains("/no/such"))));
    ensure!(value(&samples, "sluice_http_requests_total", &[("route", "unmatched")]) >= 1.0, "unmatched requests");
    Ok(())
}

fn find<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.name == name).collect()
}

#[tokio::test]
async fn the_request_id_is_returned_and_made_when_absent() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[Plugin::BankAccount])).await?;
    let given = host.send(host.request(Method::GET, "/healthz").header("x-request-id", "client-chosen-42")).await?;
    let echoed = given.headers.get("x-request-id").and_then(|v| v.to_str().ok());
    ensure!(echoed == Some("client-chosen-42"), "the client's id came back as {echoed:?}");
    // Errors carry it too.
    let missing = host.send(host.request(Method::GET, "/nowhere").header("x-request-id", "lost-7")).await?;
    ensure!(missing.status == 404 && missing.headers.get("x-request-id").is_some_and(|v| v == "lost-7"));
    let made = host.get("/healthz").await?;
    let id = made.headers.get("x-request-id").and_then(|v| v.to_str().ok()).context("no id made")?;
    ensure!(uuid::Uuid::parse_str(id).is_ok(), "the made id is not a UUID: {id}");
    let other = host.get("/healthz").await?;
    ensure!(other.headers.get("x-request-id").is_some_and(|v| v != id), "two requests, one id");
    Ok(())
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_and_the_plugin() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[Plugin::Faulty]).arg("--log-format").arg("json")).await?;
    let request = host.request(Method::POST, "/api/aggregates/Faulty/f1/commands/Trap").json(&json!({}));
    let trapped = host.send(request.header("x-request-id", "trap-request-1")).await?;
    ensure!(trapped.status == 500, "a trap: {trapped}");
    let line = wait_until("the fault is logged", Duration::from_secs(10), || async {
        let log = host.log();
        let found = log.lines().filter_map(|l| l.strip_prefix("[1 err] ")).find(|l| l.contains("trap-request-1"));
        Ok(match found {
            Some(line) => Check::Done(line.to_owned()),
            None => Check::NotYet("no line with the request id".into()),
        })
    })
    .await?;
    let parsed: Value = serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
    let spans = parsed["spans"].as_array().with_context(|| format!("no spans: {parsed}"))?;
    ensure!(spans.iter().any(|s| s["request_id"] == "trap-request-1"), "no request span: {parsed}");
    ensure!(parsed["level"].is_string() && parsed["fields"]["message"].is_string(), "{parsed}");

    let log = host.log();
    let lines: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("[1 err] ")).collect();
    ensure!(lines.len() >= 2, "too few log lines: {log}");
    for line in &lines {
        if serde_json::from_str::<Value>(line).is_err() {
            bail!("a log line that is not JSON: {line}");
        }
    }
    // The lines logged on a plugin's behalf (here the warning of its trap) carry its name, in
    // the line's fields (a span per call is logged only at debug level: it cost the hot path).
    let plugin_lines = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["plugin"] == "Faulty" && v["fields"]["call"] == "decide")
        .count();
    ensure!(plugin_lines >= 1, "no line names the plugin: {log}");
    Ok(())
}

/// A config file in `dir` with `text`, as the `--config` argument.
fn config_file(dir: &tempfile::TempDir, text: &str) -> Result<String> {
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, text).context("failed to write the config file")?;
    Ok(path.display().to_string())
}

/// Scrape until `done` holds for the samples; answers them.
async fn scrape_until(api: &Api, what: &str, done: impl Fn(&[Sample]) -> bool) -> Result<Vec<Sample>> {
    wait_until(what, CATCH_UP, || async {
        let samples = scrape(api).await?;
        Ok(if done(&samples) { Check::Done(samples) } else { Check::NotYet(format!("{samples:?}")) })
    })
    .await
}

#[tokio::test]
async fn dead_letters_of_projections_and_reactors_are_counted_by_consumer() -> Result<()> {
    // A webhook nobody listens on: every delivery fails, and parks after its 2 calls.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").context("failed to bind")?.local_addr()?;
    let dir = tempfile::tempdir()?;
    let config = config_file(
        &dir,
        &format!(
            "[dead_letters]\nattempts = 2\nbackoff_ms = 50\n\n\
             [channels.notifications]\nwebhook = \"http://{closed}/notify\"\ntimeout_ms = 1000\n\n\
             [delivery]\nattempts = 2\nbackoff_ms = 5\nmax_backoff_ms = 50\n"
        ),
    )?;
    let plugins = [Plugin::BankAccount, Plugin::AccountsProjectionBrittle, Plugin::AccountNotifier];
    let host = Host::start(HostOptions::with_plugins(&plugins).arg("--config").arg(config)).await?;
    let before = scrape(&host).await?;
    ensure!(value(&before, "sluice_dead_letters_parked_total", &[]) == 0.0, "letters before any failed");

    // The brittle projection refuses the withdrawal; the notifier's deposit notification cannot
    // be delivered. (The withdrawal's notification waits behind the deposit's: same key.)
    let id = host.open_account("parked holder", "100").await?;
    host.deposit(&id, "5").await?;
    host.put_json(&format!("/api/v1/withdrawFunds/{id}"), &json!({ "amount": 10 })).await?.expect_status(200)?;

    let samples = scrape_until(&host, "a projection's and a reactor's letter are counted", |samples| {
        value(samples, "sluice_dead_letters_parked_total", &[("consumer", "accounts")]) >= 1.0
            && value(samples, "sluice_dead_letters_parked_total", &[("consumer", "account-notifier")]) >= 1.0
    })
    .await?;
    let letters = find(&samples, "sluice_dead_letters_parked_total");
    ensure!(
        value(&samples, "sluice_dead_letters_parked_total", &[("consumer", "accounts")]) == 1.0,
        "one withdrawal parked: {letters:?}"
    );
    ensure!(
        value(&samples, "sluice_dead_letters_parked_total", &[("consumer", "account-notifier")]) == 1.0,
        "one delivery parked (the next waits behind it): {letters:?}"
    );
    ensure!(letters.len() == 2, "a series for another consumer: {letters:?}");
    Ok(())
}

#[tokio::test]
async fn swaps_swap_pauses_and_limit_hits_are_counted() -> Result<()> {
    let options = HostOptions::with_plugins(&[Plugin::BankAccount, Plugin::AccountsProjection])
        .admin_token(TOKEN)
        .request_timeout(Duration::from_secs(30));
    let host = Host::start(options).await?;
    let first = host.open_account("swap holder", "10").await?;
    let before = scrape_until(&host, "the first version commits", |samples| {
        value(samples, "sluice_consumer_position", &[("consumer", "accounts")]) >= 1.0
    })
    .await?;
    // The plugins the host started with count as installs; what follows counts on top.
    let swapped = |samples: &[Sample], plugin: &str, action: &str| {
        value(samples, "sluice_plugin_swaps_total", &[("plugin", plugin), ("action", action)])
            - value(&before, "sluice_plugin_swaps_total", &[("plugin", plugin), ("action", action)])
    };
    ensure!(
        value(&before, "sluice_plugin_swaps_total", &[("plugin", "accounts"), ("action", "install")]) == 1.0,
        "the projection the host started with: {:?}",
        find(&before, "sluice_plugin_swaps_total")
    );

    // Install, replace (the same projection, another build: a swap in place), remove.
    host.admin_put_wasm("Faulty", Plugin::Faulty.bytes()?).await?.expect_status(201)?;
    let second = distinct_build(&Plugin::AccountsProjection.bytes()?, "metrics");
    let replaced = host.admin_put_wasm("accounts", second).await?.expect_status(200)?;
    ensure!(replaced.body["replaced"] == true, "not a replace: {replaced}");
    // The new version's first commit ends the pause.
    host.deposit(&first, "1").await?;
    let samples = scrape_until(&host, "the swap pause is recorded", |samples| {
        value(samples, "sluice_plugin_swap_pause_seconds_count", &[("plugin", "accounts")]) >= 1.0
    })
    .await?;
    let swaps = find(&samples, "sluice_plugin_swaps_total");
    ensure!(swapped(&samples, "Faulty", "install") == 1.0, "{swaps:?}");
    ensure!(swapped(&samples, "accounts", "replace") == 1.0, "{swaps:?}");
    ensure!(value(&samples, "sluice_plugin_swap_pause_seconds_count", &[("plugin", "accounts")]) == 1.0, "one pause");
    let pause = value(&samples, "sluice_plugin_swap_pause_seconds_sum", &[("plugin", "accounts")]);
    ensure!(pause > 0.0, "a pause of {pause} s");
    ensure!(
        samples.iter().any(|s| s.name == "sluice_plugin_swap_pause_seconds_bucket"),
        "the pause is not a histogram"
    );

    // The sandbox's limits: a spin runs out of time, a hog out of memory.
    let spun = host.post_json("/api/aggregates/Faulty/spin-1/commands/Spin", &json!({})).await?;
    ensure!(spun.status == 500 && spun.body["code"] == "plugin_timeout", "a spin: {spun}");
    let hogged = host.post_json("/api/aggregates/Faulty/hog-1/commands/Hog", &json!({})).await?;
    ensure!(hogged.status == 500 && hogged.body["code"] == "plugin_out_of_memory", "a hog: {hogged}");
    host.admin_delete("/admin/plugins/Faulty").await?.expect_status(200)?;

    let samples = scrape(&host).await?;
    let hits = find(&samples, "sluice_plugin_limit_hits_total");
    ensure!(
        value(&samples, "sluice_plugin_limit_hits_total", &[("plugin", "Faulty"), ("reason", "time")]) == 1.0,
        "{hits:?}"
    );
    ensure!(
        value(&samples, "sluice_plugin_limit_hits_total", &[("plugin", "Faulty"), ("reason", "memory")]) == 1.0,
        "{hits:?}"
    );
    ensure!(value(&samples, "sluice_plugin_limit_hits_total", &[]) == 2.0, "other limit hits: {hits:?}");
    let swaps = find(&samples, "sluice_plugin_swaps_total");
    ensure!(swapped(&samples, "Faulty", "remove") == 1.0, "{swaps:?}");
    let total = value(&samples, "sluice_plugin_swaps_total", &[]) - value(&before, "sluice_plugin_swaps_total", &[]);
    ensure!(total == 3.0, "other swaps: {swaps:?}");
    Ok(())
}

#[tokio::test]
async fn the_relay_reports_its_position_and_lag_on_the_kafka_stack() -> Result<()> {
    // Kafka for the bus, this test's fresh PostgreSQL database for the log (the relay reads it).
    let Some(stack) = Stack::fresh()? else { return Ok(()) };
    let options = HostOptions::with_plugins(&[Plugin::BankAccount])
        .arg("--event-store")
        .arg(&stack.read_store)
        .arg("--bus")
        .arg(stack.bus());
    let host = Host::start(options).await?;
    let id = host.open_account("relayed holder", "10").await?;
    let head = host.deposit(&id, "1").await? as f64;
    let samples = scrape_until(&host, "the relay catches up with the head", |samples| {
        value(samples, "sluice_relay_position", &[]) >= head && value(samples, "sluice_relay_lag_events", &[]) == 0.0
    })
    .await?;
    ensure!(value(&samples, "sluice_relay_position", &[]) == head, "{:?}", find(&samples, "sluice_relay_position"));
    ensure!(find(&samples, "sluice_relay_lag_events").len() == 1, "no relay lag series");
    Ok(())
}
