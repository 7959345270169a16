//! The WebAssembly runtime: one shared [`Engine`], the component cache, sandbox limits.
//!
//! Every plugin is compiled once (and the compiled code cached on disk, so a restart does not
//! recompile), pre-linked into an `InstancePre` at load, and instantiated into a fresh, bounded
//! [`Store`] per unit of work. Guests get no WASI capability: the empty context satisfies the
//! imports a `wasm32-wasip2` guest's standard library carries, and grants nothing.
//!
//! - [`loader`]: one load path (files and uploaded bytes) for every plugin kind.
//! - [`aggregate`], [`projection`], [`reactor`]: the Wasm implementations of the plugin
//!   contracts ([`crate::plugin`]).

pub mod aggregate;
pub mod loader;
pub mod projection;
pub mod reactor;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::capabilities::log::LogCapability;
use crate::capabilities::outbox::OutboxCapability;
use crate::capabilities::sql::SqlCapability;
use crate::plugin::PluginFault;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch advances; call deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a guest's stderr (panic messages) is kept for the log.
const STDERR_CAPACITY: usize = 8 * 1024;

/// Limits every plugin call runs under.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// Linear memory a single instance may grow to.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call (a command's replay and decision together).
    pub call_timeout: Duration,
    /// Wall-clock budget of a plugin's first instantiation and `describe` at load. Apart from
    /// `call_timeout`, and more generous: a component that embeds a language runtime
    /// (JavaScript's SpiderMonkey, CPython) starts far slower than a Rust one, and only once.
    pub describe_timeout: Duration,
}

/// [`SandboxLimits::describe_timeout`] unless `limits.describe_timeout_ms` says otherwise.
pub const DEFAULT_DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(2),
            describe_timeout: DEFAULT_DESCRIBE_TIMEOUT,
        }
    }
}

/// Why a runtime operation failed: the plugin's fault or the host's, never the caller's.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("plugin {origin} is not a valid component: {reason}")]
    Compile { origin: String, reason: String },
    #[error("plugin {origin} does not fit the host: {reason}")]
    Link { origin: String, reason: String },
    #[error("plugin {plugin} broke the contract: {reason}")]
    Contract { plugin: String, reason: String },
    #[error("{origin} is a component of an unknown world: it exports none of {expected}")]
    UnknownWorld { origin: String, expected: String },
    #[error("wasm engine setup failed: {0}")]
    Engine(String),
}

/// The shared engine and everything that must be set up once per process.
#[derive(Clone)]
pub struct WasmRuntime {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    limits: SandboxLimits,
    _ticker: Arc<EpochTicker>,
}

impl WasmRuntime {
    /// A runtime caching compiled components in `cache_dir` (none: always compile).
    pub fn new(cache_dir: Option<PathBuf>, limits: SandboxLimits) -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(limits)));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| RuntimeError::Read { path: dir.clone(), source })?;
        }
        let ticker = Arc::new(EpochTicker::start(engine.clone()).map_err(|e| RuntimeError::Engine(e.to_string()))?);
        Ok(Self { engine, cache_dir, limits, _ticker: ticker })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// Compile component bytes (`origin` names them in errors), using the cache.
    pub fn component_from_bytes(&self, origin: &str, bytes: &[u8]) -> Result<Component, RuntimeError> {
        let compile_error =
            |e: wasmtime::Error| RuntimeError::Compile { origin: origin.to_owned(), reason: format!("{e:#}") };
        let Some(cache_dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(compile_error);
        };
        let key = crate::plugin::sha256_hex(bytes);
        let cached = cache_dir.join(format!("{key}-sluice{}.cwasm", env!("CARGO_PKG_VERSION")));
        if cached.exists() {
            match deserialize_cached(&self.engine, &cached) {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(path = %cached.display(), "ignoring unusable compiled component: {e:#}"),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(compile_error)?;
        match component.serialize() {
            Ok(compiled) => {
                // Write then rename, so a crash never leaves a torn cache entry behind.
                let partial = cached.with_extension("partial");
                let written = std::fs::write(&partial, compiled).and_then(|()| std::fs::rename(&partial, &cached));
                if let Err(e) = written {
                    tracing::warn!(path = %cached.display(), "cannot cache compiled component: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot serialize compiled component: {e:#}"),
        }
        Ok(component)
    }

    /// A fresh store for one unit of work, bounded in memory and time.
    pub fn new_store(&self) -> Store<PluginCtx> {
        self.new_store_with_timeout(self.limits.call_timeout)
    }

    /// A fresh store for a plugin's `describe` at load, bounded by the describe budget.
    pub fn new_describe_store(&self) -> Store<PluginCtx> {
        self.new_store_with_timeout(self.limits.describe_timeout)
    }

    /// A fresh store whose calls may take up to `timeout` of wall-clock time.
    pub fn new_store_with_timeout(&self, timeout: Duration) -> Store<PluginCtx> {
        self.store_with(timeout, false)
    }

    /// A fresh store for calls made with `*_async`: the guest yields to the executor at every
    /// epoch tick (so it shares an async worker instead of holding it) and is stopped once
    /// `timeout` has passed, as a synchronous call would be.
    pub fn new_yielding_store(&self, timeout: Duration) -> Store<PluginCtx> {
        let mut store = self.store_with(timeout, false);
        store.epoch_deadline_callback(|store| {
            Ok(if std::time::Instant::now() >= store.data().deadline {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });
        rearm(&mut store, timeout);
        store
    }

    /// A fresh store for a reactor's call: as [`Self::new_store_with_timeout`], and its clocks
    /// stand still at the Unix epoch — its world grants no clock (what it reacts to carries
    /// its own time, `recorded-at`).
    pub fn new_frozen_store(&self, timeout: Duration) -> Store<PluginCtx> {
        self.store_with(timeout, true)
    }

    fn store_with(&self, timeout: Duration, frozen: bool) -> Store<PluginCtx> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No preopens, env, args or network: the guest's WASI imports resolve to nothing useful.
        let mut builder = WasiCtx::builder();
        builder.stderr(stderr.clone());
        if frozen {
            builder.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
        }
        let wasi = builder.build();
        let ctx = PluginCtx {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max_bytes: self.limits.memory_bytes, denied: false, grown_to: 0 },
            stderr,
            sql: SqlCapability::default(),
            log: LogCapability::default(),
            outbox: OutboxCapability::default(),
            deadline: std::time::Instant::now() + timeout,
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| &mut ctx.limiter);
        let ticks = timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
    }
}

/// Instances live in pre-reserved slots that are reused, so a command's fresh instance costs no
/// mmap and no page-table churn. The slot is larger than the sandbox's memory cap, so growth past
/// the cap is refused by [`MemoryLimiter`] (which names it) rather than by the pool.
fn pooling(limits: SandboxLimits) -> PoolingAllocationConfig {
    // Concurrent instances: commands, projection batches and queries in flight together.
    const SLOTS: u32 = 256;
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(SLOTS)
        .total_core_instances(SLOTS * 4)
        .total_memories(SLOTS * 2)
        .total_tables(SLOTS * 4)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(limits.memory_bytes.saturating_mul(2).max(16 << 20))
        .total_stacks(SLOTS)
        // Reset a reused slot's first pages with memset instead of giving them back to the kernel,
        // so the next instance does not page-fault its way through its stack and heap again; on
        // Linux 6.7+ only the pages the instance dirtied are reset (PAGEMAP_SCAN): +15% calls/s.
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    pooling
}

#[expect(unsafe_code, reason = "the cache holds only artifacts this host serialized itself")]
fn deserialize_cached(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `Component::serialize` of this host (the cache key holds
    // the component's hash and the host version) into the host's own data dir; wasmtime itself
    // refuses an artifact of another engine build, and the caller then recompiles.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Per-store host state: the empty WASI context, the limiter, and the capabilities granted to
/// this unit of work.
pub struct PluginCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    stderr: MemoryOutputPipe,
    /// The projection's `sql` capability for this call (none for aggregates).
    pub(crate) sql: SqlCapability,
    /// The plugin's `log` (0.2.0 components).
    pub(crate) log: LogCapability,
    /// A reactor's `outbox` for this call.
    pub(crate) outbox: OutboxCapability,
    /// When the call in progress on a yielding store is stopped ([`rearm`]).
    deadline: std::time::Instant,
}

/// Give the next call on a yielding store ([`WasmRuntime::new_yielding_store`]) its own `timeout`,
/// counted from now: what lets one store serve a batch of calls, each with the full budget.
pub(crate) fn rearm(store: &mut Store<PluginCtx>, timeout: Duration) {
    store.data_mut().deadline = std::time::Instant::now() + timeout;
    store.set_epoch_deadline(1);
}

/// Whether the instance in `store` left its last call as it entered it: no memory refused, nothing
/// written to stderr (which a guest writes before it aborts). Only such an instance may take
/// another call.
pub(crate) fn left_clean(store: &Store<PluginCtx>) -> bool {
    !store.data().limiter.denied && store.data().stderr.contents().is_empty()
}

/// Whether the instance in `store` has grown its memory past a quarter of the sandbox's cap: a
/// guest that keeps what it allocates (a leak, a cache) then starts afresh before it nears the
/// cap, so a long-lived instance never fails a call that a fresh one would have answered.
pub(crate) fn grown_large(store: &Store<PluginCtx>) -> bool {
    let limiter = &store.data().limiter;
    limiter.grown_to > limiter.max_bytes / 4
}

/// A clock that always reads the Unix epoch: what a reactor's WASI clocks give.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for PluginCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and remembers a refusal, so an abort after a failed allocation is
/// reported as "out of memory" rather than a plain trap.
struct MemoryLimiter {
    max_bytes: usize,
    denied: bool,
    /// The largest memory granted so far.
    grown_to: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_bytes;
        self.denied |= !allowed;
        if allowed {
            self.grown_to = self.grown_to.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Link the `log` interface (and the 0.2.0 `types` it shares a package with) into `linker`.
pub(crate) fn link_log(linker: &mut wasmtime::component::Linker<PluginCtx>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    crate::bindings::log::add_to_linker::<PluginCtx, HasSelf<LogCapability>>(linker, |ctx| &mut ctx.log)
}

/// Link 0.3.0's `log` into `linker`, beside 0.2.0's: a component imports the one of its version.
pub(crate) fn link_log_v3(linker: &mut wasmtime::component::Linker<PluginCtx>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    crate::bindings::log_v3::add_to_linker::<PluginCtx, HasSelf<LogCapability>>(linker, |ctx| &mut ctx.log)
}

/// [`observed`] for an async call on a hot path, counted in `calls` (series looked up once):
/// `run` runs inside the span, timed and counted by `outcome`.
pub(crate) async fn observed_async<T>(
    calls: &crate::telemetry::PluginCalls,
    run: impl std::future::Future<Output = T>,
    outcome: impl FnOnce(&T) -> &'static str,
) -> T {
    use tracing::Instrument;
    let span = tracing::debug_span!("plugin", plugin = calls.plugin(), call = calls.call());
    let started = std::time::Instant::now();
    let result = run.instrument(span).await;
    let took = started.elapsed();
    let outcome = outcome(&result);
    warn_of_fault(calls.plugin(), calls.call(), outcome);
    calls.record(took, outcome);
    result
}

/// Run one call into `plugin`, timed and counted in the metrics by `outcome` of its result.
/// The call runs inside a debug-level span that names the plugin and the call: at the default
/// level, a span opened and closed on every command showed in `perf` of the command path
/// under load (with the metrics' per-call lookups, about a microsecond per command), and every
/// line logged on a plugin's behalf names it anyway (its `log` lines, a fault's warning).
pub(crate) fn observed<T>(
    plugin: &str,
    call: &'static str,
    run: impl FnOnce() -> T,
    outcome: impl FnOnce(&T) -> &'static str,
) -> T {
    let span = tracing::debug_span!("plugin", plugin, call);
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let result = run();
    let took = started.elapsed();
    let outcome = outcome(&result);
    warn_of_fault(plugin, call, outcome);
    crate::telemetry::plugin_call(plugin, call, took, outcome);
    result
}

/// A call that ended with a fault's `outcome` is logged as a warning naming the plugin and call.
fn warn_of_fault(plugin: &str, call: &'static str, outcome: &'static str) {
    if !matches!(outcome, "ok" | "refused") {
        tracing::warn!(plugin, call, reason = outcome, "the plugin's {call} call faulted");
    }
}

/// The metrics' outcome of a call that answers or faults.
pub(crate) fn fault_outcome<T>(result: &Result<T, PluginFault>) -> &'static str {
    result.as_ref().err().map_or("ok", PluginFault::reason)
}

/// Classify a failed guest call.
pub fn classify_fault(plugin: &str, store: &Store<PluginCtx>, error: &wasmtime::Error) -> PluginFault {
    let plugin = plugin.to_owned();
    if store.data().limiter.denied {
        return PluginFault::OutOfMemory { plugin };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginFault::Timeout { plugin },
        Some(trap) => {
            let stderr = store.data().stderr.contents();
            let said = String::from_utf8_lossy(&stderr).trim().to_owned();
            let detail = if said.is_empty() { trap.to_string() } else { format!("{trap}: {said}") };
            PluginFault::Trapped { plugin, detail }
        }
        None => PluginFault::Trapped { plugin, detail: format!("{error:#}") },
    }
}

/// Advances the engine's epoch so store deadlines fire; stops with the runtime.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new().name("sluice-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
