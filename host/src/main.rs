//! The `sluice` binary: the command line at the edge of the host library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::admin::PluginStatus;
use sluice::admin::dead_letters::ParkedLetter;
use sluice::admin::delivery_letters::{self, DeliveryLetter};
use sluice::admin::dry_run::{DryRunReport, RowChange};
use sluice::config::{Config, ServeArgs};
use sluice::reactor::outbox;
use sluice::read_store::ReadStore;
use sluice::server::Host;

#[path = "cli/remote.rs"]
mod remote;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "A CQRS and event-sourcing host for WebAssembly plugins")]
struct Cli {
    /// Optional TOML config file (keys as the flags, snake_case).
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines (on stderr) as text, or as one JSON object per line with the spans' fields
    /// (request id, plugin).
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start; `plugins dry-run` carries its own store arguments"
)]
enum Command {
    /// Serve the HTTP API with the plugins of the plugins directory.
    Serve(ServeArgs),
    /// List the plugins: what each declares (from the plugins directory), or with `--url`, what
    /// a running host runs, with status, position and lag.
    Plugins {
        #[command(subcommand)]
        action: Option<PluginsCommand>,
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show each consumer's position, the log's head and the lag.
    Consumers {
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Rebuild a projection from the event store, in place or into another read store.
    Rebuild {
        #[command(flatten)]
        args: ServeArgs,
        /// The projection to rebuild.
        projection: String,
        /// Rebuild into this read store (e.g. postgres://…) instead of the configured one.
        #[arg(long)]
        into: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Dead letters: list the parked ones as JSON lines (the default), retry, drop, or resume a
    /// consumer they paused; on a stopped host's stores, or with `--url` on a running host.
    #[command(args_conflicts_with_subcommands = true)]
    DeadLetters(Box<LetterArgs>),
    /// A running host at a glance: each plugin with its status, version, position, the log's
    /// head, the lag and its parked dead letters (needs `--url`).
    Status {
        #[command(flatten)]
        remote: Remote,
    },
    /// Follow a running host's log: print its events as JSON lines as they are appended (needs
    /// `--url`); from the head on, or after `--after`.
    Tail {
        /// Start after this global position [default: the log's head when tail starts].
        #[arg(long)]
        after: Option<u64>,
        /// Stop after printing this many events [default: follow until interrupted].
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Write a plugin skeleton that builds and passes its own given/when/then tests:
    /// `sluice new aggregate|projection|reactor NAME [--lang rust|js|python]`.
    New {
        /// The kind of plugin.
        kind: sluice::scaffold::Kind,
        /// Its name: lower case, `-` or `_` between words (e.g. `order-lines`).
        name: String,
        /// The language it is written in.
        #[arg(long, value_enum, default_value_t = sluice::scaffold::Lang::Rust)]
        lang: sluice::scaffold::Lang,
        /// Where to write it [default: ./NAME]; must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// For Rust: the `plugins/` folder of a Sluice checkout, which holds the guest SDKs
        /// [default: $SLUICE_SDK_DIR, else the checkout this binary was built from].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Print events of the global log as JSON lines.
    Events {
        #[command(flatten)]
        args: ServeArgs,
        /// Start after this global position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep printing new events as they are appended.
        #[arg(long)]
        follow: bool,
    },
}

/// `sluice dead-letters`: an action, or the listing's arguments.
#[derive(Debug, clap::Args)]
struct LetterArgs {
    #[command(subcommand)]
    action: Option<LetterAction>,
    #[command(flatten)]
    args: ServeArgs,
    #[command(flatten)]
    remote: Remote,
}

/// What `sluice dead-letters` does.
#[derive(Debug, Subcommand)]
enum LetterAction {
    /// Print the parked letters as JSON lines, each with the events held back behind it.
    List {
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        filter: LetterFilter,
    },
    /// Retry a letter (by id) and the events behind it, or a consumer's letters (`--consumer`,
    /// optionally `--aggregate`), with the plugin version running now; stops at the first failure.
    Retry {
        /// The letter's id, as the listing shows it (a number, or `delivery:<message id>` for a
        /// parked delivery, which is sent again under the same message id).
        id: Option<String>,
        #[command(flatten)]
        filter: LetterFilter,
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Drop a letter: its event is skipped for its consumer (recorded with who and when) and the
    /// events held back behind it are applied; a parked delivery is never sent.
    Drop {
        /// The letter's id, as the listing shows it (a number, or `delivery:<message id>`).
        id: String,
        /// Who drops it, for the record [default: $USER].
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resume a consumer its dead letters paused: on a running host (`--url`), or in the read
    /// store of a stopped one, which then starts resumed.
    Resume {
        /// The consumer (projection) to resume.
        consumer: String,
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        remote: Remote,
    },
}

/// What `sluice plugins` does besides listing.
#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Replay the log through a candidate version of projection NAME (component FILE) into a
    /// scratch database and compare its tables with the live ones; nothing live changes.
    DryRun {
        /// The projection the candidate would replace.
        name: String,
        /// The candidate component (.wasm).
        file: PathBuf,
        /// Print the whole answer as JSON instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        args: ServeArgs,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Which letters.
#[derive(Debug, clap::Args)]
struct LetterFilter {
    /// Only this consumer's.
    #[arg(long)]
    consumer: Option<String>,
    /// Only this aggregate id's.
    #[arg(long)]
    aggregate: Option<String>,
    /// Only aggregates of this type (streams of different types may share an id).
    #[arg(long)]
    aggregate_type: Option<String>,
}

impl LetterFilter {
    fn aggregate(&self) -> sluice::admin::dead_letters::AggregateFilter<'_> {
        sluice::admin::dead_letters::AggregateFilter {
            aggregate_type: self.aggregate_type.as_deref(),
            aggregate_id: self.aggregate.as_deref(),
        }
    }
}

/// Address a running host instead of opening the stores here.
#[derive(Debug, clap::Args)]
struct Remote {
    /// Base URL of a running host (e.g. http://127.0.0.1:8080).
    #[arg(long, env = "SLUICE_URL")]
    url: Option<String>,
    /// Its admin token.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Remote {
    /// Call `method path` on the running host's admin API and return the JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = self.url.as_deref().context("no --url")?;
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", url.trim_end_matches('/')));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("failed to reach {url}"))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.context("the host's answer is not JSON")?;
        if !status.is_success() {
            anyhow::bail!("{status}: {}", answer["message"].as_str().unwrap_or("no message"));
        }
        Ok(answer)
    }
}

impl Remote {
    /// POST a component (`application/wasm`) to the running host's admin API and return the
    /// JSON answer.
    async fn post_wasm(&self, path: &str, component: Vec<u8>) -> anyhow::Result<serde_json::Value> {
        let url = self.url.as_deref().context("no --url")?;
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", url.trim_end_matches('/')))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(component);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("failed to reach {url}"))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.context("the host's answer is not JSON")?;
        if !status.is_success() {
            anyhow::bail!("{status}: {}", answer["message"].as_str().unwrap_or("no message"));
        }
        Ok(answer)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
    match cli.command {
        Command::Serve(args) => serve(Config::load(&args, cli.config.as_deref())?).await,
        Command::Plugins { action: Some(PluginsCommand::DryRun { name, file, json, args, remote }), .. } => {
            let bytes = std::fs::read(&file).with_context(|| format!("failed to read {}", file.display()))?;
            let report = match remote.url {
                Some(_) => {
                    let answer = remote.post_wasm(&format!("/admin/plugins/{name}/dry-run"), bytes).await?;
                    serde_json::from_value(answer).context("unexpected answer")?
                }
                None => {
                    let host = Host::start(&Config::load(&args, cli.config.as_deref())?)
                        .await
                        .context("failed to start the host")?;
                    host.admin.dry_run(&name, bytes).await.context("dry run failed")?
                }
            };
            print_dry_run(&report, json)
        }
        Command::Plugins { action: None, args, remote } => match remote.url {
            Some(_) => print_remote_plugins(&remote).await,
            None => list_plugins(Config::load(&args, cli.config.as_deref())?).await,
        },
        Command::Consumers { args, remote } => match remote.url {
            Some(_) => {
                let answer = remote.call(reqwest::Method::GET, "/admin/consumers", None).await?;
                let consumers: Vec<PluginStatus> =
                    serde_json::from_value(answer["consumers"].clone()).context("unexpected answer")?;
                print_consumers(&consumers);
                Ok(())
            }
            None => {
                let host = Host::start(&Config::load(&args, cli.config.as_deref())?)
                    .await
                    .context("failed to start the host")?;
                print_consumers(&host.admin.consumers().await);
                Ok(())
            }
        },
        Command::Rebuild { args, projection, into, remote } => match remote.url {
            Some(_) => remote::rebuild(&remote, &projection, into).await,
            None => rebuild(Config::load(&args, cli.config.as_deref())?, &projection, into.as_deref()).await,
        },
        Command::Status { remote } => remote::status(&remote).await,
        Command::Tail { after, count, remote } => remote::tail(&remote, after, count).await,
        Command::DeadLetters(letters) => {
            let LetterArgs { action, args, remote } = *letters;
            let action = action.unwrap_or(LetterAction::List {
                args,
                remote,
                filter: LetterFilter { consumer: None, aggregate: None, aggregate_type: None },
            });
            dead_letters(action, cli.config.as_deref()).await
        }
        Command::New { kind, name, lang, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let (files, next_steps) = sluice::scaffold::create(kind, lang, &name, &dir, sdk.as_deref())?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "wrote a {lang} {kind} skeleton, {} files, into {}", files.len(), dir.display())?;
            writeln!(out, "next, in {}:", dir.display())?;
            for line in next_steps.lines() {
                writeln!(out, "  {}", line.trim())?;
            }
            writeln!(out, "then drop the .wasm into the host's plugins directory (docs/plugins.md)")?;
            Ok(())
        }
        Command::Events { args, after, follow } => {
            print_events(Config::load(&args, cli.config.as_deref())?, after, follow).await
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let host = Host::start(&config).await.context("failed to start the host")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let address = listener.local_addr().context("failed to read the listening address")?;
    // Consumers start (and, fresh on Kafka, catch up from the log) before the host says it is
    // ready; connections wait in the listener's backlog meanwhile.
    host.run().await.context("failed to start the consumers")?;
    tracing::info!(plugins = host.registry.plugins().len(), "serving on http://{address}");
    // Scripts and tests wait for this exact line on stdout.
    println!("sluice listening on http://{address}");
    std::io::stdout().flush().context("failed to write to stdout")?;
    axum::serve(listener, host.router()).with_graceful_shutdown(shutdown_signal()).await.context("server failed")?;
    host.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn list_plugins(config: Config) -> anyhow::Result<()> {
    let host = Host::start(&config).await.context("failed to load the plugins")?;
    for loaded in host.registry.plugins() {
        let plugin = &loaded.info;
        if let Some(aggregate) = host.registry.aggregate(&plugin.name) {
            let m = aggregate.manifest();
            println!("aggregate {} ({}), topic {}", m.aggregate_type, plugin.source, m.topic);
            for command in &m.commands {
                println!("  command {}{}", command.name, if command.creates { " (creates)" } else { "" });
            }
            for event in &m.events {
                println!("  event   {event}");
            }
            for route in &m.routes {
                println!("  route   {} {} -> {}", route.method.as_str(), route.path, route.command);
            }
        } else if let Some(projection) = host.registry.projection(&plugin.name) {
            let m = projection.manifest();
            let position = host.state.projections.get(&m.name).map(|p| p.position()).unwrap_or(0);
            println!("projection {} ({}), schema v{}, at position {position}", m.name, plugin.source, m.schema_version);
            println!("  handles {}", m.subscriptions.join(", "));
            for table in &m.schema.tables {
                println!("  table   {}", table.name);
            }
            for route in &m.routes {
                println!("  route   GET {} -> {}", route.path, route.query);
            }
        } else if let sluice::plugin::Plugin::Reactor(reactor) = &loaded.plugin {
            let m = reactor.manifest();
            let position = host.state.projections.get(&m.name).map(|p| p.position()).unwrap_or(0);
            println!("reactor {} ({}), at position {position}", m.name, plugin.source);
            println!("  handles  {}", m.subscriptions.join(", "));
            println!("  sends to {}", m.channels.join(", "));
        }
    }
    Ok(())
}

async fn rebuild(config: Config, name: &str, into: Option<&str>) -> anyhow::Result<()> {
    let host = Host::start(&config).await.context("failed to start the host")?;
    let target = match into {
        Some(url) => Some(ReadStore::open(url).await.with_context(|| format!("failed to open {url}"))?),
        None => None,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec})")
            .context("bad progress template")?,
    );
    bar.set_message(format!("rebuilding {name}"));
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let position = host.admin.rebuild(name, target.as_ref(), &progress).await.context("rebuild failed")?;
    bar.finish();
    let place = target.as_ref().map_or_else(|| host.read_store.display_url(), ReadStore::display_url);
    println!("rebuilt {name} up to position {position} into {place}");
    Ok(())
}

/// The plugins a running host runs, one line each.
async fn print_remote_plugins(remote: &Remote) -> anyhow::Result<()> {
    let answer = remote.call(reqwest::Method::GET, "/admin/plugins", None).await?;
    let plugins: Vec<PluginStatus> = serde_json::from_value(answer["plugins"].clone()).context("unexpected answer")?;
    for p in &plugins {
        let lag = p.lag.map_or_else(String::new, |lag| format!(", lag {lag}"));
        println!("{} {} ({}), {}, sha256 {}{lag}", p.kind, p.name, p.source, p.status, p.sha256);
    }
    if let Some(refused) = answer["refused"].as_array() {
        for r in refused {
            println!("refused {}: {}", r["source"].as_str().unwrap_or("?"), r["reason"].as_str().unwrap_or("?"));
        }
    }
    Ok(())
}

/// A dry run's answer: a summary an operator reads, or the whole JSON.
fn print_dry_run(report: &DryRunReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report).context("failed to encode")?);
        return Ok(());
    }
    let live = report.live_sha256.as_deref().map_or_else(|| "no live version".to_owned(), |s| format!("live {s}"));
    println!(
        "dry run of {} (candidate {}, {live}) up to position {}: {} events handled, {} failures",
        report.projection,
        report.sha256,
        report.position,
        report.events_handled,
        report.failures.len()
    );
    for f in &report.failures {
        println!("  failure at {} ({} {}): {}", f.position, f.event_type, f.aggregate_id, f.reason);
    }
    for t in &report.tables {
        println!(
            "  table {}: {} added, {} removed, {} changed, {} unchanged",
            t.table, t.added, t.removed, t.changed, t.unchanged
        );
        for sample in &t.samples {
            let show = |row: &Option<serde_json::Map<String, serde_json::Value>>| {
                row.as_ref().map_or_else(|| "-".to_owned(), |r| serde_json::Value::Object(r.clone()).to_string())
            };
            let change = match sample.change {
                RowChange::Added => "added",
                RowChange::Removed => "removed",
                RowChange::Changed => "changed",
            };
            println!(
                "    {change} {}: live {} candidate {}",
                serde_json::Value::Object(sample.key.clone()),
                show(&sample.live),
                show(&sample.candidate)
            );
        }
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    Ok(())
}

fn print_consumers(consumers: &[PluginStatus]) {
    for c in consumers {
        let position = c.position.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let lag = c.lag.map_or_else(|| "-".to_owned(), |l| l.to_string());
        println!("{:<24} {:<12} position {position:>10}  head {:>10}  lag {lag:>8}", c.name, c.status, c.head);
    }
}

/// An event letter's number, as the listing shows it.
fn letter_number(id: &str) -> anyhow::Result<i64> {
    id.parse().with_context(|| format!("a dead letter id is a number or delivery:<message id>, not {id:?}"))
}

/// `sluice dead-letters …`: through the admin routes of a running host (`--url`), else through
/// the admin service on the stores of a stopped one.
async fn dead_letters(action: LetterAction, config_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use reqwest::Method;
    let encode = |pairs: &[(&str, Option<&str>)]| {
        let pairs: Vec<(&str, &str)> = pairs.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
        }
    };
    match action {
        LetterAction::List { args, remote, filter } => {
            // Event letters, then parked deliveries (`"kind": "delivery"`), one JSON object a line.
            let (letters, deliveries): (Vec<ParkedLetter>, Vec<DeliveryLetter>) = if remote.url.is_some() {
                let query = encode(&[
                    ("consumer", filter.consumer.as_deref()),
                    ("aggregate", filter.aggregate.as_deref()),
                    ("aggregateType", filter.aggregate_type.as_deref()),
                ]);
                let answer = remote.call(Method::GET, &format!("/admin/dead-letters{query}"), None).await?;
                let letters = serde_json::from_value(answer["letters"].clone()).context("unexpected answer")?;
                // A host older than the delivery letters has no `deliveries`.
                let deliveries = match answer.get("deliveries") {
                    Some(list) => serde_json::from_value(list.clone()).context("unexpected answer")?,
                    None => Vec::new(),
                };
                (letters, deliveries)
            } else {
                let config = Config::load(&args, config_file)?;
                let read_store = ReadStore::open(&config.read_store).await.context("failed to open the read store")?;
                let letters = sluice::admin::dead_letters::parked_letters(
                    &read_store,
                    filter.consumer.as_deref(),
                    filter.aggregate(),
                )
                .await
                .context("failed to read dead letters")?;
                let mut consumers =
                    outbox::consumer_names(&read_store).await.context("failed to read the consumers")?;
                consumers.retain(|c| filter.consumer.as_deref().is_none_or(|wanted| wanted == c));
                let mut deliveries = delivery_letters::delivery_letters(&read_store, &consumers, outbox::PARKED)
                    .await
                    .context("failed to read parked deliveries")?;
                deliveries.retain(|d| filter.aggregate.as_deref().is_none_or(|aggregate| aggregate == d.key));
                if filter.aggregate_type.is_some() {
                    // A delivery belongs to no aggregate type.
                    deliveries.clear();
                }
                (letters, deliveries)
            };
            for letter in letters {
                println!("{}", serde_json::to_string(&letter).context("failed to encode")?);
            }
            for delivery in deliveries {
                println!("{}", serde_json::to_string(&delivery).context("failed to encode")?);
            }
            Ok(())
        }
        LetterAction::Retry { id, filter, args, remote } => {
            let aggregate = filter.aggregate();
            let target = match (id, filter.consumer.as_deref()) {
                (Some(id), None) if aggregate.aggregate_id.is_none() && aggregate.aggregate_type.is_none() => Ok(id),
                (None, Some(consumer)) => Err(consumer),
                _ => {
                    anyhow::bail!(
                        "retry takes a letter id, or --consumer NAME (with --aggregate ID [--aggregate-type TYPE] for one sequence)"
                    )
                }
            };
            let outcome = if remote.url.is_some() {
                let path = match &target {
                    Ok(id) => format!("/admin/dead-letters/{id}/retry"),
                    Err(consumer) => format!(
                        "/admin/consumers/{consumer}/retry{}",
                        encode(&[("aggregate", aggregate.aggregate_id), ("aggregateType", aggregate.aggregate_type)])
                    ),
                };
                remote.call(Method::POST, &path, None).await?
            } else {
                let host = Host::start(&Config::load(&args, config_file)?).await.context("failed to start the host")?;
                match &target {
                    Ok(id) if id.starts_with(delivery_letters::PREFIX) => {
                        let retried = host.admin.retry_delivery(id).await.context("retry failed")?;
                        serde_json::to_value(retried).context("failed to encode")?
                    }
                    Ok(id) => {
                        let outcome = host.admin.retry_letter(letter_number(id)?).await.context("retry failed")?;
                        serde_json::to_value(outcome).context("failed to encode")?
                    }
                    Err(consumer) => {
                        let outcome = host.admin.retry_consumer(consumer, aggregate).await;
                        serde_json::to_value(outcome.context("retry failed")?).context("failed to encode")?
                    }
                }
            };
            println!("{outcome}");
            Ok(())
        }
        LetterAction::Drop { id, by, args, remote } => {
            let by = by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "cli".to_owned());
            let answer = if remote.url.is_some() {
                let query = encode(&[("by", Some(by.as_str()))]);
                remote.call(Method::DELETE, &format!("/admin/dead-letters/{id}{query}"), None).await?
            } else {
                let host = Host::start(&Config::load(&args, config_file)?).await.context("failed to start the host")?;
                if id.starts_with(delivery_letters::PREFIX) {
                    let dropped = host.admin.drop_delivery(&id, &by).await.context("drop failed")?;
                    serde_json::json!({ "dropped": dropped })
                } else {
                    let (dropped, outcome) =
                        host.admin.drop_letter(letter_number(&id)?, &by).await.context("drop failed")?;
                    serde_json::json!({ "dropped": dropped, "applied": outcome.applied, "failed": outcome.failed })
                }
            };
            println!("{answer}");
            Ok(())
        }
        LetterAction::Resume { consumer, args, remote } => {
            let answer = if remote.url.is_some() {
                remote.call(Method::POST, &format!("/admin/consumers/{consumer}/resume"), None).await?
            } else {
                // A stopped host's pause is in its read store: lifted there, it starts resumed.
                let config = Config::load(&args, config_file)?;
                let read_store = ReadStore::open(&config.read_store).await.context("failed to open the read store")?;
                let was_paused = read_store.stored_pause(&consumer).await.context("failed to read the pause")?;
                read_store.store_pause(&consumer, false).await.context("failed to lift the pause")?;
                serde_json::json!({ "consumer": consumer, "wasPaused": was_paused })
            };
            println!("{answer}");
            Ok(())
        }
    }
}

async fn print_events(config: Config, mut after: u64, follow: bool) -> anyhow::Result<()> {
    let store = sluice::event_store::open_polling(&config.event_store, config.log_poll)
        .await
        .context("failed to open the event store")?;
    let mut head = store.subscribe();
    loop {
        let batch = store.read_all(after, 1000).await.context("failed to read events")?;
        for event in &batch {
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
            let mut line = serde_json::to_value(event).context("failed to encode an event")?;
            line["data"] = data;
            println!("{line}");
            after = event.global_position;
        }
        if batch.is_empty() {
            if !follow {
                return Ok(());
            }
            // Until the store says its log grew (this process appends nothing: another host's
            // append, notified or polled).
            head.changed().await.context("the event store stopped")?;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
