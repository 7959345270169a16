//! Hot reload on the scale-out stack (Kafka bus, MongoDB/FerretDB event store, PostgreSQL read
//! store): the accounts projection and the `BankAccount` aggregate replaced under load fail no
//! command and lose no event, as on the embedded default (`hot_reload.rs`; the bodies are
//! `sluice_e2e::under_load`). Each test has its own MongoDB database, PostgreSQL database and
//! Kafka topic prefix, and is skipped (or fails, with `SLUICE_REQUIRE_SERVERS=1`) without them.

use std::time::Duration;

use anyhow::Result;
use sluice_e2e::under_load::{self, Scale};
use sluice_e2e::{HostOptions, Stack};

/// The stack is slower than the embedded default (FerretDB, Kafka and PostgreSQL share the
/// cores). The same 8 clients, a smaller history, a bound on each client's deposits (far more
/// than the swaps take, so the load outlasts them; the clients stop once the swaps are done) and
/// longer waits. Commands on a cached stream no longer read FerretDB, so 150 each no longer did.
const STACK: Scale = Scale {
    accounts: 8,
    clients: 8,
    commands_per_client: 10_000,
    projection_pause: Duration::from_millis(250),
    aggregate_pause: Duration::from_millis(300),
    settle: Duration::from_secs(1),
    catch_up: Duration::from_secs(180),
};

/// The two tests share two cores with the servers: one at a time, so each has the stack's pace.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `sluice serve` options for a fresh [`Stack`] of this test, or `None` (skipped, with the
/// reason printed) when a server is not configured. `under_load` picks the plugins.
fn stack() -> Result<Option<HostOptions>> {
    Ok(Stack::fresh()?.map(|stack| stack.options_with(&[]).request_timeout(Duration::from_secs(60))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_a_projection_under_load_on_the_stack_fails_no_command_and_loses_no_event() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let Some(options) = stack()? else { return Ok(()) };
    under_load::replace_projection(options, &STACK).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_the_aggregate_under_load_on_the_stack_fails_no_command_and_leaves_gapless_streams() -> Result<()> {
    let _serial = SERIAL.lock().await;
    let Some(options) = stack()? else { return Ok(()) };
    under_load::replace_aggregate(options, &STACK).await
}
