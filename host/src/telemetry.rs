//! The host's Prometheus metrics: one process-wide recorder (the `metrics` facade rendered by
//! `metrics-exporter-prometheus`), the names and labels of every metric the host records, and
//! one function per thing that happens, so the places that record (command dispatch, the Wasm
//! runtime, consumers, the admin service, the HTTP edge) share one vocabulary.
//!
//! Names follow the Prometheus conventions: a `sluice_` prefix, base units (seconds), `_total`
//! on counters. Labels hold only bounded values: plugin names, declared command names, route
//! templates, outcomes. A leaf module: it imports nothing of the host.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Commands run, by `aggregate`, `command` and `outcome`.
pub const COMMANDS: &str = "sluice_commands_total";
/// Command latency (dispatch to answer), by `aggregate` and `command`.
pub const COMMAND_DURATION: &str = "sluice_command_duration_seconds";
/// Events appended to the event store, by `aggregate`.
pub const EVENTS_APPENDED: &str = "sluice_events_appended_total";
/// The global position of the last appended event this host saw.
pub const LOG_HEAD: &str = "sluice_log_head_position";
/// The relay's saved position in the log (Kafka bus only).
pub const RELAY_POSITION: &str = "sluice_relay_position";
/// Events appended but not yet published by the relay.
pub const RELAY_LAG: &str = "sluice_relay_lag_events";
/// A consumer's committed position, by `consumer`.
pub const CONSUMER_POSITION: &str = "sluice_consumer_position";
/// Events between a consumer's position and the log's head, by `consumer`.
pub const CONSUMER_LAG_EVENTS: &str = "sluice_consumer_lag_events";
/// Age of the oldest event a consumer has not applied yet (0 when caught up), by `consumer`.
pub const CONSUMER_LAG_SECONDS: &str = "sluice_consumer_lag_seconds";
/// 1 for a consumer's current `state`, 0 for the others, by `consumer` and `state`.
pub const CONSUMER_STATE: &str = "sluice_consumer_state";
/// Dead letters parked, by `consumer`: events a projection could not apply, and reactors'
/// messages whose delivery retries ran out.
pub const DEAD_LETTERS: &str = "sluice_dead_letters_parked_total";
/// Calls into plugins, by `plugin`, `call` and `outcome` (`ok` or a fault reason).
pub const PLUGIN_CALLS: &str = "sluice_plugin_calls_total";
/// Plugin call durations, by `plugin` and `call`.
pub const PLUGIN_CALL_DURATION: &str = "sluice_plugin_call_duration_seconds";
/// Plugin calls that trapped or broke the contract, by `plugin` and `reason`.
pub const PLUGIN_TRAPS: &str = "sluice_plugin_traps_total";
/// Plugin calls stopped by a sandbox limit, by `plugin` and `reason` (`time`, `memory`).
pub const PLUGIN_LIMIT_HITS: &str = "sluice_plugin_limit_hits_total";
/// Plugins installed, replaced or removed on a running host, by `plugin` and `action`.
pub const PLUGIN_SWAPS: &str = "sluice_plugin_swaps_total";
/// A projection swap's pause (old version's last commit to the new one's first), by `plugin`.
pub const SWAP_PAUSE: &str = "sluice_plugin_swap_pause_seconds";
/// HTTP requests answered, by `method`, `route` (the template) and `status`.
pub const HTTP_REQUESTS: &str = "sluice_http_requests_total";
/// HTTP request durations, by `method` and `route`.
pub const HTTP_REQUEST_DURATION: &str = "sluice_http_request_duration_seconds";

/// Histogram buckets for durations, in seconds: 100 µs to 10 s.
const DURATION_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The consumer states [`consumer`] reports; one series each.
pub const CONSUMER_STATES: &[&str] = &["running", "catching-up", "paused", "stopped", "failed"];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed as the global one on first use. A process that already has
/// another global recorder (a test harness's) gets a detached one: its page stays empty.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Gauges are set at each scrape; a consumer whose plugin was removed drops out once its
        // series has not been set for a while.
        let builder = PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(300)));
        let builder = match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS) {
            Ok(builder) => builder,
            Err(e) => unreachable!("the duration buckets are a non-empty constant: {e}"),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty: {e}");
        }
        describe();
        handle
    })
}

/// How often [`upkeep`] folds the histograms' recorded samples into their buckets.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Fold the histograms' samples into their buckets every [`UPKEEP_INTERVAL`] until `stop`. The
/// recorder keeps every sample a histogram records until upkeep runs; [`render`] runs it, but a
/// host nobody scrapes would otherwise keep them all (three samples per command: about 0.5 GB an
/// hour at 6,000 commands/s).
pub async fn upkeep(stop: tokio_util::sync::CancellationToken) {
    let handle = handle();
    let mut every = tokio::time::interval(UPKEEP_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => handle.run_upkeep(),
            () = stop.cancelled() => return,
        }
    }
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_counter!(COMMANDS, Unit::Count, "Commands run, by aggregate, command and outcome.");
    describe_histogram!(COMMAND_DURATION, Unit::Seconds, "Command latency, from dispatch to answer.");
    describe_counter!(EVENTS_APPENDED, Unit::Count, "Events appended to the event store.");
    describe_gauge!(LOG_HEAD, "Global position of the last event in the log.");
    describe_gauge!(RELAY_POSITION, "The relay's saved position in the log.");
    describe_gauge!(RELAY_LAG, Unit::Count, "Events appended but not yet published by the relay.");
    describe_gauge!(CONSUMER_POSITION, "A consumer's committed position in the log.");
    describe_gauge!(CONSUMER_LAG_EVENTS, Unit::Count, "Events between a consumer's position and the log's head.");
    describe_gauge!(CONSUMER_LAG_SECONDS, Unit::Seconds, "Age of the oldest event a consumer has not applied.");
    describe_gauge!(CONSUMER_STATE, "1 for a consumer's current state, 0 for the others.");
    describe_counter!(
        DEAD_LETTERS,
        Unit::Count,
        "Dead letters parked: events a projection could not apply, reactor messages out of delivery retries."
    );
    describe_counter!(PLUGIN_CALLS, Unit::Count, "Calls into plugins, by outcome.");
    describe_histogram!(PLUGIN_CALL_DURATION, Unit::Seconds, "Plugin call durations.");
    describe_counter!(PLUGIN_TRAPS, Unit::Count, "Plugin calls that trapped or broke the contract.");
    describe_counter!(PLUGIN_LIMIT_HITS, Unit::Count, "Plugin calls stopped by a sandbox limit.");
    describe_counter!(PLUGIN_SWAPS, Unit::Count, "Plugins installed, replaced or removed on a running host.");
    describe_histogram!(SWAP_PAUSE, Unit::Seconds, "Pause of a projection swap between two versions' commits.");
    describe_counter!(HTTP_REQUESTS, Unit::Count, "HTTP requests answered, by route template and status.");
    describe_histogram!(HTTP_REQUEST_DURATION, Unit::Seconds, "HTTP request durations.");
}

/// A command ran to `outcome` (`ok`, or the error code the caller saw).
pub fn command(aggregate: &str, command: &str, outcome: &'static str, took: Duration) {
    let (aggregate, command) = (aggregate.to_owned(), command.to_owned());
    counter!(COMMANDS, "aggregate" => aggregate.clone(), "command" => command.clone(), "outcome" => outcome)
        .increment(1);
    histogram!(COMMAND_DURATION, "aggregate" => aggregate, "command" => command).record(took.as_secs_f64());
}

/// `count` events of `aggregate` were appended, the last at `head`.
pub fn appended(aggregate: &str, count: usize, head: u64) {
    counter!(EVENTS_APPENDED, "aggregate" => aggregate.to_owned()).increment(count as u64);
    log_head(head);
}

/// The log's head as last seen (and the relay's lag behind it, when this host runs one).
pub fn log_head(head: u64) {
    HEAD.fetch_max(head, Ordering::Relaxed);
    gauge!(LOG_HEAD).set(head as f64);
    let relayed = RELAYED.load(Ordering::Relaxed);
    if relayed != NOT_RELAYING {
        gauge!(RELAY_LAG).set(head.saturating_sub(relayed) as f64);
    }
}

/// The relay saved `position`: everything up to it is on the bus.
pub fn relayed(position: u64) {
    RELAYED.store(position, Ordering::Relaxed);
    // The lag first, against the head last seen: a scrape that shows the position shows its lag,
    // even when the relay's first save lands between a scrape's head read and its rendering.
    let head = HEAD.load(Ordering::Relaxed);
    gauge!(RELAY_LAG).set(head.saturating_sub(position) as f64);
    gauge!(RELAY_POSITION).set(position as f64);
}

/// The log's head as last seen by [`log_head`].
static HEAD: AtomicU64 = AtomicU64::new(0);

/// The relay's saved position, or [`NOT_RELAYING`] when this host runs no relay.
static RELAYED: AtomicU64 = AtomicU64::new(NOT_RELAYING);
const NOT_RELAYING: u64 = u64::MAX;

/// A consumer's position, lag (events and seconds) and state (one of [`CONSUMER_STATES`]).
pub fn consumer(name: &str, position: u64, lag_events: u64, lag: Duration, state: &str) {
    let name = name.to_owned();
    gauge!(CONSUMER_POSITION, "consumer" => name.clone()).set(position as f64);
    gauge!(CONSUMER_LAG_EVENTS, "consumer" => name.clone()).set(lag_events as f64);
    gauge!(CONSUMER_LAG_SECONDS, "consumer" => name.clone()).set(lag.as_secs_f64());
    for known in CONSUMER_STATES {
        let on = if *known == state { 1.0 } else { 0.0 };
        gauge!(CONSUMER_STATE, "consumer" => name.clone(), "state" => *known).set(on);
    }
}

/// A dead letter of `consumer` was parked: an event of a projection, or a reactor's message.
pub fn dead_letter(consumer: &str) {
    counter!(DEAD_LETTERS, "consumer" => consumer.to_owned()).increment(1);
}

/// A call into `plugin` ended with `outcome`: `ok`, `refused` (the plugin answered no), or a
/// fault's reason, which also counts in [`PLUGIN_TRAPS`] (`trap`, `contract`) or
/// [`PLUGIN_LIMIT_HITS`] (`time`, `memory`).
pub fn plugin_call(plugin: &str, call: &'static str, took: Duration, outcome: &'static str) {
    let plugin = plugin.to_owned();
    histogram!(PLUGIN_CALL_DURATION, "plugin" => plugin.clone(), "call" => call).record(took.as_secs_f64());
    plugin_outcome(plugin, call, outcome);
}

/// Count a call of `plugin` by `outcome`, and a fault's reason beside it.
fn plugin_outcome(plugin: String, call: &'static str, outcome: &'static str) {
    counter!(PLUGIN_CALLS, "plugin" => plugin.clone(), "call" => call, "outcome" => outcome).increment(1);
    match outcome {
        "time" | "memory" => counter!(PLUGIN_LIMIT_HITS, "plugin" => plugin, "reason" => outcome).increment(1),
        "trap" | "contract" => counter!(PLUGIN_TRAPS, "plugin" => plugin, "reason" => outcome).increment(1),
        _ => {}
    }
}

/// [`plugin_call`] for one plugin's calls of one kind on a hot path (an aggregate's commands):
/// the series of its usual outcomes are looked up once, when the plugin loads, so a call only
/// bumps a counter and records its duration. Building the labels and finding the series on
/// every command cost about a microsecond of the host's CPU per command under load (`perf` of
/// `scripts/bench --http-bench`).
pub struct PluginCalls {
    plugin: String,
    call: &'static str,
    ok: metrics::Counter,
    refused: metrics::Counter,
    duration: metrics::Histogram,
}

impl PluginCalls {
    pub fn new(plugin: &str, call: &'static str) -> Self {
        // The recorder must be the global one before a series is looked up, or the handles
        // stay detached from it.
        handle();
        let counter = |outcome: &'static str| counter!(PLUGIN_CALLS, "plugin" => plugin.to_owned(), "call" => call, "outcome" => outcome);
        Self {
            plugin: plugin.to_owned(),
            call,
            ok: counter("ok"),
            refused: counter("refused"),
            duration: histogram!(PLUGIN_CALL_DURATION, "plugin" => plugin.to_owned(), "call" => call),
        }
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn call(&self) -> &'static str {
        self.call
    }

    /// One call that took `took` ended with `outcome` (as [`plugin_call`]).
    pub fn record(&self, took: Duration, outcome: &'static str) {
        self.duration.record(took.as_secs_f64());
        match outcome {
            "ok" => self.ok.increment(1),
            "refused" => self.refused.increment(1),
            fault => plugin_outcome(self.plugin.clone(), self.call, fault),
        }
    }
}

/// `plugin` was installed, replaced or removed (`action`) on a running host.
pub fn plugin_swap(plugin: &str, action: &'static str) {
    counter!(PLUGIN_SWAPS, "plugin" => plugin.to_owned(), "action" => action).increment(1);
}

/// A projection swap paused `plugin`'s commits for `pause`.
pub fn swap_pause(plugin: &str, pause: Duration) {
    histogram!(SWAP_PAUSE, "plugin" => plugin.to_owned()).record(pause.as_secs_f64());
}

/// An HTTP request on `route` (a template, never a raw path) was answered with `status`.
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    let (method, route) = (method.to_owned(), route.to_owned());
    counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route).record(took.as_secs_f64());
}
