//! The `sluice` binary: the command line at the edge of the host library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::config::{Config, ServeArgs};
use sluice::read_store::ReadStore;
use sluice::server::Host;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "A CQRS and event-sourcing host for WebAssembly plugins")]
struct Cli {
    /// Optional TOML config file (keys as the flags, snake_case).
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API with the plugins of the plugins directory.
    Serve(ServeArgs),
    /// Load the plugins directory and list what each plugin declares.
    Plugins(ServeArgs),
    /// Rebuild a projection from the event store, in place or into another read store.
    Rebuild {
        #[command(flatten)]
        args: ServeArgs,
        /// The projection to rebuild.
        projection: String,
        /// Rebuild into this read store (e.g. postgres://…) instead of the configured one.
        #[arg(long)]
        into: Option<String>,
    },
    /// Print the dead-lettered events as JSON lines.
    DeadLetters(ServeArgs),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(Config::load(&args, cli.config.as_deref())?).await,
        Command::Plugins(args) => list_plugins(Config::load(&args, cli.config.as_deref())?).await,
        Command::Rebuild { args, projection, into } => {
            rebuild(Config::load(&args, cli.config.as_deref())?, &projection, into.as_deref()).await
        }
        Command::DeadLetters(args) => dead_letters(Config::load(&args, cli.config.as_deref())?).await,
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
    tracing::info!(plugins = host.registry.plugins().len(), "serving on http://{address}");
    // Scripts and tests wait for this exact line on stdout.
    println!("sluice listening on http://{address}");
    std::io::stdout().flush().context("failed to write to stdout")?;
    host.run_projections();
    axum::serve(listener, host.router()).with_graceful_shutdown(shutdown_signal()).await.context("server failed")?;
    host.stop();
    tracing::info!("stopped");
    Ok(())
}

async fn list_plugins(config: Config) -> anyhow::Result<()> {
    let host = Host::start(&config).await.context("failed to load the plugins")?;
    for plugin in host.registry.plugins() {
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
        }
    }
    Ok(())
}

async fn rebuild(config: Config, name: &str, into: Option<&str>) -> anyhow::Result<()> {
    let host = Host::start(&config).await.context("failed to start the host")?;
    let projection = host.state.projections.get(name).with_context(|| format!("cannot rebuild {name}"))?;
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
    let position = projection.rebuild(target.as_ref(), &progress).await.context("rebuild failed")?;
    bar.finish();
    let place = target.as_ref().map_or_else(|| host.read_store.display_url(), ReadStore::display_url);
    println!("rebuilt {name} up to position {position} into {place}");
    Ok(())
}

async fn dead_letters(config: Config) -> anyhow::Result<()> {
    let read_store = ReadStore::open(&config.read_store).await.context("failed to open the read store")?;
    for letter in read_store.dead_letters(None).await.context("failed to read dead letters")? {
        println!("{}", serde_json::to_string(&letter).context("failed to encode")?);
    }
    Ok(())
}

async fn print_events(config: Config, mut after: u64, follow: bool) -> anyhow::Result<()> {
    let store = sluice::event_store::open(&config.event_store).await.context("failed to open the event store")?;
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
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
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
