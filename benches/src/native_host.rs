//! `sluice-bench serve …`: the host of `sluice serve`, with one change: the aggregate the
//! bank-account component declares runs as the same crate compiled natively ([`NativeAggregate`],
//! under the component's own manifest). The load benchmark starts it in place of `sluice serve`
//! ([`crate::http_load`]), so Wasm and native are measured through the same host over real HTTP:
//! the same stores, projection, middleware, logs and metrics, the same load.

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use sluice::config::{Config, ServeArgs};
use sluice::plugin::{AggregateLogic, Plugin};
use sluice::server::Host;

use crate::native::NativeAggregate;

/// The aggregate type the native side replaces.
const AGGREGATE: &str = "BankAccount";

#[derive(Debug, Parser)]
#[command(name = "sluice-bench serve", about = "sluice serve with the bank-account aggregate compiled natively")]
struct ServeCli {
    #[command(flatten)]
    args: ServeArgs,
    /// Keep the Wasm aggregate: the same host code as the native side, in the same binary (the
    /// interleaved benchmark's Wasm side, free of the difference two binaries' layouts make).
    #[arg(long)]
    keep_wasm: bool,
}

/// Parse `serve ARGS…` as `sluice serve` does, start the host, swap the aggregate (unless
/// `--keep-wasm`), serve.
pub async fn serve(args: Vec<String>) -> Result<()> {
    let cli = ServeCli::parse_from(args);
    // As `sluice serve` logs by default, so both sides pay for the same spans.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::load(&cli.args, None)?;
    let host = Host::start(&config).await.context("failed to start the host")?;
    if !cli.keep_wasm {
        swap_in_native(&host)?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await.context("failed to listen")?;
    let address = listener.local_addr()?;
    host.run().await.context("failed to start the consumers")?;
    println!("sluice listening on http://{address}");
    std::io::stdout().flush()?;
    axum::serve(listener, host.router()).await.context("server failed")?;
    Ok(())
}

/// Replace the bank-account component's aggregate with the same crate compiled natively, under
/// the component's own manifest.
fn swap_in_native(host: &Host) -> Result<()> {
    let loaded = host
        .registry
        .plugins()
        .into_iter()
        .find(|l| l.info.name == AGGREGATE)
        .with_context(|| format!("no {AGGREGATE} component in the plugins directory"))?;
    let wasm = host.registry.aggregate(AGGREGATE).context("the plugin is not an aggregate")?;
    let native: Arc<dyn AggregateLogic> =
        Arc::new(NativeAggregate::<bank_account::BankAccount>::with_manifest(wasm.manifest().clone()));
    host.registry.replace(Plugin::Aggregate(native), "native".into(), loaded.info.sha256.clone())?;
    Ok(())
}
