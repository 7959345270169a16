//! The end-to-end harness: the real `sluice` binary with the real plugin components.
//!
//! [`Host::start`] copies the chosen components ([`Plugin`]) into a fresh plugins folder,
//! spawns `sluice serve --listen 127.0.0.1:0` on a fresh data folder, waits for its
//! `sluice listening on http://…` line and hands back a handle that talks HTTP to it
//! ([`Api`], reached through the handle) and controls the process: [`Host::kill`] (SIGKILL),
//! [`Host::stop`] (SIGTERM, then wait) and [`Host::restart`] on the same data folder.
//!
//! The binary is `$SLUICE_BIN`, else `sluice` next to the test executable's `deps/` folder
//! (`target/<profile>/sluice`), so `cargo build -p sluice` must run before the tests. The
//! components come from `tests/build.rs`, which builds `plugins/` on every change.
//!
//! The host's stdout and stderr go to the test's output, line by line, so libtest shows them
//! with a failing test (`--nocapture` streams them live); the last lines are also kept for
//! error messages ([`Host::log`]). `SLUICE_E2E_KEEP=1` keeps each test's folder (data,
//! plugins) for a look afterwards.
//!
//! Responses come back as [`Reply`]: the status and the body parsed by `serde_json` with
//! `arbitrary_precision`, so amounts keep the exact text the host wrote; compare them with
//! [`decimal`], never as `f64`.
//!
//! For the admin API, [`HostOptions::admin_token`] starts the host with `--admin-token` and the
//! `admin_*` calls send it as a bearer token ([`Api::request_with_token`] sends none or another);
//! [`distinct_build`] makes a second build of a component (another sha256, the same code).
//! [`Ledger`] keeps what the bank read model must show as commands succeed, and
//! [`wait_until`] polls for a condition within a bound: tests wait for outcomes, never time them.
//!
//! The scale-out tests name the servers they need by [`Server`] (skipped when one is not
//! configured) and run on a [`Stack`]: fresh MongoDB and PostgreSQL databases and a Kafka topic
//! prefix of their own.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub mod stored;

/// Where `tests/build.rs` left the freshly built components.
pub const PLUGINS_DIR: &str = env!("SLUICE_TEST_PLUGINS");

/// Where `scripts/polyglot build` leaves the JavaScript and Python components (`polyglot/` of the
/// plugins' target folder).
pub const POLYGLOT_PLUGINS_DIR: &str = env!("SLUICE_TEST_POLYGLOT_PLUGINS");

/// The media type of a component upload.
pub const WASM: &str = "application/wasm";

/// The line (then the base URL) the host prints on stdout once it accepts connections.
const LISTENING: &str = "sluice listening on ";

/// How long a start may take: the first start of a host compiles every component.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a SIGTERM may take before [`Host::stop`] gives up and kills.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of host output kept for a failing test's report.
const LOG_LINES: usize = 5000;
/// Lines of it printed when a test fails.
const LOG_LINES_SHOWN: usize = 400;

/// A component the tests can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// `BankAccount`, with the seed's routes.
    BankAccount,
    /// `Faulty`: commands that trap, spin, hog memory or emit an undeclared event.
    Faulty,
    /// `Post`, with the .NET seed's routes.
    Post,
    /// The `accounts` projection, with the seed's bank queries.
    AccountsProjection,
    /// The `posts` projection, with the seed's post queries.
    PostsProjection,
    /// `snoop`: a test projection that reaches for another projection's table.
    SnoopProjection,
    /// The `accounts` projection one schema version later: a `transactions` column, and every
    /// answer says `"schemaVersion": 2`.
    AccountsProjectionV2,
    /// `squatter`: a test projection that claims routes of the `accounts` projection.
    SquatterProjection,
    /// A test aggregate whose aggregate type is `accounts`, the `accounts` projection's name.
    SquatterAggregate,
    /// A test aggregate whose `describe` traps: refused at load.
    TrappingDescribe,
    /// A test aggregate whose manifest claims a route under `/admin`: refused at load.
    ReservedRoute,
    /// A candidate `accounts` projection (schema 1) that stores holder names upper-cased.
    AccountsProjectionShouting,
    /// A candidate `accounts` projection (schema 1) that refuses every withdrawal.
    AccountsProjectionBrittle,
    /// The reference reactor: deposits and withdrawals to channel `notifications`.
    AccountNotifier,
    /// A reactor that tries files, environment, clock and network, and sends what it got.
    SnoopReactor,
    /// `chatty`: a test projection (WIT 0.2.0) that logs a line per opened account, and a flood
    /// of lines for a holder named `flood N`.
    ChattyProjection,
    /// `holder_stats`, written in JavaScript (plugins/js/holder-stats): per-holder statistics
    /// over the bank account events. Built by `scripts/polyglot build`, not by tests/build.rs.
    HolderStatsJs,
    /// `audit_feed`, written in Python (plugins/python/audit-feed): a feed of every post event.
    /// Built by `scripts/polyglot build`, not by tests/build.rs.
    AuditFeedPython,
}

impl Plugin {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::BankAccount => "bank_account.wasm",
            Self::Faulty => "faulty.wasm",
            Self::Post => "post.wasm",
            Self::AccountsProjection => "accounts_projection.wasm",
            Self::PostsProjection => "posts_projection.wasm",
            Self::SnoopProjection => "snoop_projection.wasm",
            Self::AccountsProjectionV2 => "accounts_projection_v2.wasm",
            Self::SquatterProjection => "squatter_projection.wasm",
            Self::SquatterAggregate => "squatter_aggregate.wasm",
            Self::TrappingDescribe => "trapping_describe.wasm",
            Self::ReservedRoute => "reserved_route.wasm",
            Self::AccountsProjectionShouting => "accounts_projection_shouting.wasm",
            Self::AccountsProjectionBrittle => "accounts_projection_brittle.wasm",
            Self::AccountNotifier => "account_notifier.wasm",
            Self::SnoopReactor => "snoop_reactor.wasm",
            Self::ChattyProjection => "chatty_projection.wasm",
            Self::HolderStatsJs => "holder_stats.wasm",
            Self::AuditFeedPython => "audit_feed.wasm",
        }
    }

    /// Whether `scripts/polyglot build` builds it (JavaScript, Python) rather than tests/build.rs.
    pub fn is_polyglot(self) -> bool {
        matches!(self, Self::HolderStatsJs | Self::AuditFeedPython)
    }

    /// The built component.
    pub fn path(self) -> PathBuf {
        let dir = if self.is_polyglot() { POLYGLOT_PLUGINS_DIR } else { PLUGINS_DIR };
        Path::new(dir).join(self.file_name())
    }

    /// Whether a JavaScript or Python component was built: `Ok(true)` when it is there;
    /// `Ok(false)` (the test says so and passes) when it is not; an error naming the command that
    /// builds it when it is not there and `SLUICE_REQUIRE_SERVERS=1` (as in `scripts/test`).
    pub fn built(self) -> Result<bool> {
        let path = self.path();
        if path.is_file() {
            return Ok(true);
        }
        let how = format!(
            "{} was not built: run `scripts/polyglot build` (it installs the JavaScript and Python toolchains)",
            path.display()
        );
        if std::env::var("SLUICE_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
            bail!("{how}; SLUICE_REQUIRE_SERVERS=1 makes this a failure");
        }
        eprintln!("skipped: {how}");
        Ok(false)
    }

    /// The built component's bytes.
    pub fn bytes(self) -> Result<Vec<u8>> {
        let path = self.path();
        std::fs::read(&path).with_context(|| format!("failed to read {} (built by tests/build.rs)", path.display()))
    }
}

/// How to start a host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Components copied into the plugins folder.
    pub plugins: Vec<Plugin>,
    /// More `sluice serve` arguments (`--listen`, `--data-dir` and `--plugins` are set).
    pub args: Vec<String>,
    /// Environment for the host. Every inherited `SLUICE_*` variable is removed first, so a
    /// developer's settings never leak into a test.
    pub env: Vec<(String, String)>,
    /// Whole-request timeout of the HTTP client; a request that outlives it fails the test.
    pub request_timeout: Duration,
    /// `--admin-token`, which [`Api::admin_request`] and the `admin_*` calls then send.
    pub admin_token: Option<String>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            plugins: vec![Plugin::BankAccount],
            args: Vec::new(),
            env: Vec::new(),
            request_timeout: Duration::from_secs(30),
            admin_token: None,
        }
    }
}

impl HostOptions {
    /// Defaults, loading `plugins`.
    pub fn with_plugins(plugins: &[Plugin]) -> Self {
        Self { plugins: plugins.to_vec(), ..Self::default() }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Start with `--admin-token TOKEN`; the handle's `admin_*` calls send it as a bearer token.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }
}

/// A running `sluice serve` on its own temporary folder. Killed when dropped.
///
/// It dereferences to its [`Api`], so `host.get(…)` talks to it; clone [`Host::api`] to send
/// from other tasks. A restart listens on a new port: an `Api` cloned before it is stale.
pub struct Host {
    options: HostOptions,
    root: TempDir,
    child: Option<Child>,
    api: Api,
    log: Log,
    runs: usize,
}

impl Host {
    /// Copy the components, spawn the host and wait until it listens.
    pub async fn start(options: HostOptions) -> Result<Self> {
        let root =
            tempfile::Builder::new().prefix("sluice-e2e-").tempdir().context("failed to create the test folder")?;
        let plugins_dir = root.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir).context("failed to create the plugins folder")?;
        std::fs::create_dir_all(root.path().join("data")).context("failed to create the data folder")?;
        for plugin in &options.plugins {
            let from = plugin.path();
            std::fs::copy(&from, plugins_dir.join(plugin.file_name()))
                .with_context(|| format!("failed to copy {} (built by tests/build.rs)", from.display()))?;
        }
        let client = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .build()
            .context("failed to build the HTTP client")?;
        let admin_token = options.admin_token.clone();
        let mut host = Self {
            options,
            root,
            child: None,
            api: Api { client, base_url: String::new(), admin_token },
            log: Log::default(),
            runs: 0,
        };
        host.launch().await?;
        Ok(host)
    }

    /// The client side of the running host.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// `http://127.0.0.1:PORT`, as the host announced it.
    pub fn base_url(&self) -> &str {
        &self.api.base_url
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.root.path().join("plugins")
    }

    /// Whether the process is still alive (it has not exited or been stopped).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The host's output so far (its last lines), oldest first.
    pub fn log(&self) -> String {
        self.log.tail(LOG_LINES)
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        child.kill().context("failed to kill sluice")?;
        child.wait().context("failed to reap sluice")?;
        self.log.push("[harness] sluice killed (SIGKILL)".to_owned());
        Ok(())
    }

    /// SIGTERM, then wait for the exit. Fails (after a SIGKILL) if the host does not exit
    /// within 20 s; returns its exit status otherwise.
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("sluice is not running");
        };
        if let Some(status) = child.try_wait().context("failed to poll sluice")? {
            bail!("sluice had already exited ({status})\n{}", self.log.report());
        }
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM)
            .context("failed to send SIGTERM to sluice")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().context("failed to poll sluice")? {
                self.log.push(format!("[harness] sluice stopped on SIGTERM ({status})"));
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("sluice did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed it)\n{}", self.log.report());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start again on the same data and plugins folders, stopping (SIGTERM) first if it runs.
    /// The new process listens on a new port.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            let status = self.stop().await?;
            ensure!(status.success(), "sluice exited with {status} on SIGTERM\n{}", self.log.report());
        }
        self.launch().await
    }

    async fn launch(&mut self) -> Result<()> {
        self.runs += 1;
        let run = self.runs;
        let bin = sluice_bin()?;
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--plugins")
            .arg(self.plugins_dir())
            .args(self.options.admin_token.iter().flat_map(|token| ["--admin-token", token.as_str()]))
            .args(&self.options.args)
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SLUICE_") {
                cmd.env_remove(&name);
            }
        }
        // Plain text in the test output.
        cmd.env("NO_COLOR", "1");
        if std::env::var_os("RUST_BACKTRACE").is_none() {
            cmd.env("RUST_BACKTRACE", "1");
        }
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));

        self.log.push(format!("[harness] run {run}: {cmd:?}"));
        let mut child = cmd.spawn().with_context(|| format!("failed to start {}", bin.display()))?;
        let stdout = child.stdout.take().context("sluice has no stdout pipe")?;
        let stderr = child.stderr.take().context("sluice has no stderr pipe")?;
        self.child = Some(child);

        let (listening_tx, listening_rx) = oneshot::channel();
        self.log.follow(stdout, format!("[{run} out]"), Some(listening_tx));
        self.log.follow(stderr, format!("[{run} err]"), None);

        let url = match tokio::time::timeout(START_TIMEOUT, listening_rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_closed)) => {
                // Stdout closed without the line: the process is exiting or gone.
                let status = self.wait_exit(Duration::from_secs(5)).await;
                bail!("sluice exited before printing `{LISTENING}http://…` ({status})\n{}", self.log.report());
            }
            Err(_elapsed) => {
                let _ = self.kill();
                bail!(
                    "sluice did not print `{LISTENING}http://…` within {START_TIMEOUT:?} (killed it)\n{}",
                    self.log.report()
                );
            }
        };
        let port_ok = url.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok_and(|p| p != 0));
        ensure!(url.starts_with("http://") && port_ok, "sluice announced `{url}`, not `http://HOST:PORT`");
        self.api.base_url = url;
        Ok(())
    }

    /// Wait a little for the child to exit and say how it ended.
    async fn wait_exit(&mut self, within: Duration) -> String {
        let Some(mut child) = self.child.take() else {
            return "not running".to_owned();
        };
        let deadline = Instant::now() + within;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return "still running after closing stdout; killed it".to_owned();
                }
                Err(e) => return format!("unknown: {e}"),
            }
        }
    }
}

impl std::ops::Deref for Host {
    type Target = Api;

    /// The handle stands for the running host: `host.post_json(…)` talks to it.
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("SLUICE_E2E_KEEP").is_some() {
            self.root.disable_cleanup(true);
            eprintln!("[harness] kept {}", self.root.path().display());
        }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("base_url", &self.api.base_url)
            .field("root", &self.root.path())
            .field("runs", &self.runs)
            .finish_non_exhaustive()
    }
}

/// `$SLUICE_BIN`, else `target/<profile>/sluice` next to this test executable's `deps/`.
pub fn sluice_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SLUICE_BIN") {
        let bin = PathBuf::from(bin);
        ensure!(bin.is_file(), "SLUICE_BIN={} is not a file", bin.display());
        return Ok(bin);
    }
    let exe = std::env::current_exe().context("failed to find the test executable")?;
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/sluice
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("{} is not under target/<profile>/deps", exe.display()))?;
    let bin = profile_dir.join(format!("sluice{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.is_file(),
        "{} does not exist: run `cargo build -p sluice` (same target dir and profile as the \
         tests) first, or set SLUICE_BIN",
        bin.display()
    );
    warn_if_stale(&bin);
    Ok(bin)
}

/// `cargo test` does not rebuild the binary: say so (in the test's output) when the host's
/// sources are newer than it.
fn warn_if_stale(bin: &Path) {
    /// The latest modification time of a file, or of anything under a folder.
    fn newest(path: &Path) -> Option<std::time::SystemTime> {
        if !path.is_dir() {
            return std::fs::metadata(path).and_then(|m| m.modified()).ok();
        }
        std::fs::read_dir(path).ok()?.flatten().filter_map(|entry| newest(&entry.path())).max()
    }
    let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host");
    let changed = newest(&host.join("src")).max(newest(&host.join("Cargo.toml")));
    if let (Some(built), Some(changed)) = (newest(bin), changed)
        && changed > built
    {
        eprintln!("[harness] warning: {} is older than the host's sources: run `cargo build -p sluice`", bin.display());
    }
}

/// HTTP to a running host: plain requests and the few calls every test needs.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base_url: String,
    admin_token: Option<String>,
}

impl Api {
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request to build further (headers such as `If-Match`); send it with [`Api::send`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn send(&self, request: RequestBuilder) -> Result<Reply> {
        let response = request.send().await.context("request to sluice failed")?;
        Reply::read(response).await
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Reply> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Any bytes as the body, labelled `application/json` (malformed and oversized bodies).
    pub async fn send_raw(&self, method: Method, path: &str, body: impl Into<Vec<u8>>) -> Result<Reply> {
        let request = self.request(method, path).header(CONTENT_TYPE, "application/json").body(body.into());
        self.send(request).await
    }

    /// A request with `Authorization: Bearer TOKEN`, or no `Authorization` header for `None`:
    /// the admin API as any client might call it (the auth tests).
    pub fn request_with_token(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.request(method, path);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A request with the host's own admin token ([`HostOptions::admin_token`]), if it has one.
    pub fn admin_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_with_token(method, path, self.admin_token.as_deref())
    }

    pub async fn admin_get(&self, path: &str) -> Result<Reply> {
        self.send(self.admin_request(Method::GET, path)).await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.send(self.admin_request(Method::POST, path).json(body)).await
    }

    pub async fn admin_delete(&self, path: &str) -> Result<Reply> {
        self.send(self.admin_request(Method::DELETE, path)).await
    }

    /// `PUT /admin/plugins/{name}` with a component as `application/wasm`.
    pub async fn admin_put_wasm(&self, name: &str, component: impl Into<Vec<u8>>) -> Result<Reply> {
        let request = self
            .admin_request(Method::PUT, &format!("/admin/plugins/{name}"))
            .header(CONTENT_TYPE, WASM)
            .body(component.into());
        self.send(request).await
    }

    /// `GET /admin/plugins` (200): the `plugins` and the `refused` lists.
    pub async fn admin_plugins(&self) -> Result<(Vec<Value>, Vec<Value>)> {
        let reply = self.admin_get("/admin/plugins").await?.expect_status(200)?;
        let list = |name: &str| {
            reply.body[name]
                .as_array()
                .cloned()
                .ok_or_else(|| anyhow!("GET /admin/plugins has no `{name}` list: {reply}"))
        };
        Ok((list("plugins")?, list("refused")?))
    }

    /// The plugin of this name in `GET /admin/plugins`, if listed.
    pub async fn admin_plugin(&self, name: &str) -> Result<Option<Value>> {
        let (plugins, _) = self.admin_plugins().await?;
        Ok(plugins.into_iter().find(|p| p["name"] == name))
    }

    /// `POST /api/aggregates/{type}/{id}/commands/{command}`, with `If-Match` when given.
    pub async fn command(
        &self,
        aggregate_type: &str,
        id: &str,
        command: &str,
        body: &Value,
        if_match: Option<u64>,
    ) -> Result<Reply> {
        let path = format!("/api/aggregates/{aggregate_type}/{id}/commands/{command}");
        let mut request = self.request(Method::POST, &path).json(body);
        if let Some(version) = if_match {
            request = request.header("If-Match", version.to_string());
        }
        self.send(request).await
    }

    /// `GET /api/aggregates/{type}/{id}`, or as of `version`.
    pub async fn state(&self, aggregate_type: &str, id: &str, version: Option<u64>) -> Result<Reply> {
        let path = match version {
            Some(v) => format!("/api/aggregates/{aggregate_type}/{id}?version={v}"),
            None => format!("/api/aggregates/{aggregate_type}/{id}"),
        };
        self.get(&path).await
    }

    /// The events of a stream, which must exist (200).
    pub async fn events(&self, aggregate_type: &str, id: &str) -> Result<Vec<Value>> {
        let reply = self.get(&format!("/api/aggregates/{aggregate_type}/{id}/events")).await?.expect_status(200)?;
        let events =
            reply.body["events"].as_array().ok_or_else(|| anyhow!("events answer has no `events` list: {reply}"))?;
        Ok(events.clone())
    }

    /// `POST /api/v1/openBankAccount`; `opening_balance` is JSON number text, e.g. `"50.25"`.
    /// Expects 201 and answers the new account's id.
    pub async fn open_account(&self, holder: &str, opening_balance: &str) -> Result<String> {
        let body = serde_json::json!({
            "accountHolder": holder,
            "accountType": "SAVINGS",
            "openingBalance": number(opening_balance),
        });
        let reply = self.post_json("/api/v1/openBankAccount", &body).await?.expect_status(201)?;
        let id = reply.str_field("id")?;
        Ok(id.to_owned())
    }

    /// `PUT /api/v1/depositFunds/{id}`; expects 200 and answers the event's global position.
    pub async fn deposit(&self, id: &str, amount: &str) -> Result<u64> {
        let body = serde_json::json!({ "amount": number(amount) });
        let reply = self.put_json(&format!("/api/v1/depositFunds/{id}"), &body).await?;
        reply.expect_status(200)?.u64_field("position")
    }

    /// Every account's balance as the aggregate's own replay says (the truth), by id.
    pub async fn balances_by_replay(&self, ids: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
        let mut balances = std::collections::BTreeMap::new();
        for id in ids {
            let reply = self.state("BankAccount", id, None).await?.expect_status(200)?;
            balances.insert(id.clone(), decimal(&reply.body["state"]["balance"])?);
        }
        Ok(balances)
    }

    /// Every account's balance as the accounts projection's `all` query says, by id, once the
    /// projection has reached `position` (read-your-writes).
    pub async fn balances_by_query(&self, position: u64) -> Result<std::collections::BTreeMap<String, String>> {
        let path = format!("/api/projections/accounts/queries/all?position={position}");
        let reply = self.get(&path).await?.expect_status(200)?;
        let list = reply.body["accounts"].as_array().ok_or_else(|| anyhow!("no accounts in {reply}"))?;
        let mut balances = std::collections::BTreeMap::new();
        for account in list {
            let id = account["id"].as_str().ok_or_else(|| anyhow!("no id in {account}"))?.to_owned();
            balances.insert(id, decimal(&account["balance"])?);
        }
        Ok(balances)
    }

    /// `GET /healthz` answers 200 `{"status":"ok"}`.
    pub async fn healthy(&self) -> Result<()> {
        let reply = self.get("/healthz").await?.expect_status(200)?;
        ensure!(reply.body["status"] == "ok", "healthz answered {reply}");
        Ok(())
    }
}

/// A response: status, headers, raw text and the parsed JSON (`Null` when the body is empty
/// or not JSON; `text` has it then).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Result<Self> {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.context("failed to read the response body")?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Self { status, headers, text, body })
    }

    /// The reply, if its status is `status`; an error showing the whole reply otherwise.
    pub fn expect_status(self, status: u16) -> Result<Self> {
        ensure!(self.status.as_u16() == status, "expected status {status}, got {self}");
        Ok(self)
    }

    /// `code` of an error body.
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    /// Checks the error contract: this status, a JSON body whose `code` is one of `codes`
    /// and whose `message` is a non-empty string.
    pub fn check_error(&self, status: u16, codes: &[&str]) -> Result<()> {
        ensure!(self.status.as_u16() == status, "expected status {status}, got {self}");
        let content_type = self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        ensure!(
            content_type.starts_with("application/json"),
            "error answer is `{content_type}`, not application/json: {self}"
        );
        let code = self.code().ok_or_else(|| anyhow!("error body has no string `code`: {self}"))?;
        ensure!(codes.contains(&code), "expected code {codes:?}, got {self}");
        let message = self.body.get("message").and_then(Value::as_str).unwrap_or("");
        ensure!(!message.trim().is_empty(), "error body has no `message`: {self}");
        Ok(())
    }

    pub fn str_field(&self, name: &str) -> Result<&str> {
        self.body.get(name).and_then(Value::as_str).ok_or_else(|| anyhow!("answer has no string `{name}`: {self}"))
    }

    pub fn u64_field(&self, name: &str) -> Result<u64> {
        u64_field(&self.body, name).with_context(|| format!("in {self}"))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 2000;
        let text = match self.text.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("{}… ({} bytes)", &self.text[..cut], self.text.len()),
            None => self.text.clone(),
        };
        write!(f, "{} {text}", self.status)
    }
}

/// A JSON number with exactly this text (`"10.005"`), for request bodies: what a client
/// types, not what an `f64` rounds it to.
pub fn number(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Number(_)) => value,
        _ => panic!("`{text}` is not a JSON number"),
    }
}

/// The exact decimal a JSON number stands for, normalised (`"40.250"` and `"40.25"` both give
/// `"40.25"`, `"100.0"` gives `"100"`). Fails on anything but a plain decimal number.
pub fn decimal(value: &Value) -> Result<String> {
    let Value::Number(n) = value else {
        bail!("expected a JSON number, got {value}");
    };
    let text = n.to_string();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    ensure!(
        !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            && digits.matches('.').count() <= 1,
        "expected a plain decimal number, got {text}"
    );
    let mut normal = text.clone();
    if normal.contains('.') {
        normal = normal.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    if normal == "-0" {
        normal = "0".to_owned();
    }
    Ok(normal)
}

/// `value[name]` as an unsigned integer.
pub fn u64_field(value: &Value, name: &str) -> Result<u64> {
    value.get(name).and_then(Value::as_u64).ok_or_else(|| anyhow!("no unsigned integer `{name}` in {value}"))
}

/// Checks a stream's events: versions `1..=n` in order without gaps, global positions
/// strictly increasing, every envelope field present.
pub fn check_stream(events: &[Value], aggregate_type: &str, id: &str) -> Result<()> {
    let mut last_position = None;
    for (index, event) in events.iter().enumerate() {
        let expected = index as u64 + 1;
        let version = u64_field(event, "version")?;
        ensure!(version == expected, "event #{expected} has version {version}: {event}");
        ensure!(event["aggregateType"] == aggregate_type, "wrong aggregateType: {event}");
        ensure!(event["aggregateId"] == id, "wrong aggregateId: {event}");
        ensure!(event["eventType"].as_str().is_some_and(|t| !t.is_empty()), "no eventType: {event}");
        ensure!(u64_field(event, "schemaVersion")? >= 1, "schemaVersion below 1: {event}");
        ensure!(event["data"].is_object(), "data is not an object: {event}");
        ensure!(event["recordedAt"].as_str().is_some_and(|t| !t.is_empty()), "no recordedAt: {event}");
        let position = u64_field(event, "position")?;
        if let Some(last) = last_position {
            ensure!(position > last, "position {position} does not follow {last}: {event}");
        }
        last_position = Some(position);
    }
    Ok(())
}

/// The name of the custom section [`distinct_build`] appends.
pub const TEST_BUILD_SECTION: &str = "sluice-test-build";

/// `component` with one more top-level custom section (id 0, LEB128 size, the name
/// `sluice-test-build`, then `tag`): another sha256, the same behaviour. Two tags give two
/// "builds" of one plugin, for the replace tests.
pub fn distinct_build(component: &[u8], tag: &str) -> Vec<u8> {
    let mut contents = Vec::new();
    leb128(TEST_BUILD_SECTION.len(), &mut contents);
    contents.extend_from_slice(TEST_BUILD_SECTION.as_bytes());
    contents.extend_from_slice(tag.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0);
    leb128(contents.len(), &mut bytes);
    bytes.extend_from_slice(&contents);
    bytes
}

/// Unsigned LEB128, the integer encoding of the wasm binary format.
fn leb128(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// A component's sha256 as the admin API spells it: 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Plugin states the admin API reports.
pub const PLUGIN_STATUSES: [&str; 4] = ["running", "catching-up", "stopped", "failed"];

/// Checks the shape of an admin API plugin object: this name and kind (`aggregate` or
/// `projection`), a sha256, a source, a known status, `head` a number, `position` and `lag`
/// numbers or null, `lastError` a string or null.
pub fn check_plugin(plugin: &Value, name: &str, kind: &str) -> Result<()> {
    ensure!(plugin["name"] == name, "expected plugin {name}: {plugin}");
    ensure!(plugin["kind"] == kind, "expected a {kind}: {plugin}");
    let sha = plugin["sha256"].as_str().unwrap_or_default();
    ensure!(
        sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "sha256 is not 64 lower-case hex digits: {plugin}"
    );
    ensure!(plugin["source"].as_str().is_some_and(|s| !s.is_empty()), "no source: {plugin}");
    let status = plugin["status"].as_str().unwrap_or_default();
    ensure!(PLUGIN_STATUSES.contains(&status), "status {status:?} is none of {PLUGIN_STATUSES:?}: {plugin}");
    ensure!(plugin["head"].is_u64(), "head is not a number: {plugin}");
    for field in ["position", "lag"] {
        ensure!(plugin[field].is_u64() || plugin[field].is_null(), "{field} is neither a number nor null: {plugin}");
    }
    ensure!(plugin["lastError"].is_string() || plugin["lastError"].is_null(), "lastError: {plugin}");
    Ok(())
}

/// What a [`wait_until`] check saw.
#[derive(Debug)]
pub enum Check<T> {
    /// The condition holds; the wait answers this.
    Done(T),
    /// Not yet: what was seen instead, for the error if the wait runs out.
    NotYet(String),
}

/// How often [`wait_until`] checks.
const POLL: Duration = Duration::from_millis(100);

/// Checks every 100 ms until `check` is [`Check::Done`], for at most `timeout`; fails with what
/// it last saw, or at once when `check` fails.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await.with_context(|| format!("while waiting until {what}"))? {
            Check::Done(value) => return Ok(value),
            Check::NotYet(seen) if Instant::now() >= deadline => {
                bail!("waited {timeout:?} until {what}, in vain; last saw: {seen}")
            }
            Check::NotYet(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// What the bank account read model must show, kept by a test as its commands succeed: each
/// open account's exact balance and how many deposits it has seen, and the last position a
/// command answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    accounts: BTreeMap<String, LedgerAccount>,
    last_position: u64,
}

/// One account of a [`Ledger`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerAccount {
    /// The balance in hundredths.
    pub cents: i64,
    /// Deposits (and withdrawals) applied.
    pub transactions: u64,
}

/// The seed's list of accounts.
pub const LOOKUP: &str = "/api/v1/bankAccountLookup/";

impl Ledger {
    /// Open an account through the seed route (201) and record it.
    pub async fn open(&mut self, api: &Api, holder: &str, opening_balance: &str) -> Result<String> {
        let body = serde_json::json!({
            "accountHolder": holder,
            "accountType": "SAVINGS",
            "openingBalance": number(opening_balance),
        });
        let reply = api.post_json("/api/v1/openBankAccount", &body).await?.expect_status(201)?;
        let id = reply.str_field("id")?.to_owned();
        let cents = cents(opening_balance)?;
        self.accounts.insert(id.clone(), LedgerAccount { cents, transactions: 0 });
        self.last_position = self.last_position.max(reply.u64_field("position")?);
        Ok(id)
    }

    /// Deposit through the seed route (200) and record it; answers the event's position.
    pub async fn deposit(&mut self, api: &Api, id: &str, amount: &str) -> Result<u64> {
        let position = api.deposit(id, amount).await?;
        self.record_deposit(id, amount, position)?;
        Ok(position)
    }

    /// Record a deposit acknowledged at `position` (sent elsewhere, e.g. by a load task).
    pub fn record_deposit(&mut self, id: &str, amount: &str, position: u64) -> Result<()> {
        let account = self.accounts.get_mut(id).ok_or_else(|| anyhow!("deposit into {id}, not in the ledger"))?;
        account.cents += cents(amount)?;
        account.transactions += 1;
        self.last_position = self.last_position.max(position);
        Ok(())
    }

    pub fn ids(&self) -> Vec<String> {
        self.accounts.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    pub fn account(&self, id: &str) -> Option<LedgerAccount> {
        self.accounts.get(id).copied()
    }

    /// The highest position a recorded command answered.
    pub fn last_position(&self) -> u64 {
        self.last_position
    }

    /// Every balance, by id, as [`decimal`] spells it.
    pub fn balances(&self) -> BTreeMap<String, String> {
        self.accounts.iter().map(|(id, account)| (id.clone(), cents_text(account.cents))).collect()
    }

    /// Checks a lookup answer (`{"accounts": [...]}`) shows exactly the ledger: the same accounts,
    /// each once, with exact balances, and each `transactions`, where an account has one (the
    /// `accounts` projection's version 2), equal to the deposits recorded.
    pub fn check(&self, body: &Value) -> Result<()> {
        let listed = body["accounts"].as_array().ok_or_else(|| anyhow!("no accounts list in {body}"))?;
        ensure!(listed.len() == self.len(), "{} accounts listed, {} opened: {body}", listed.len(), self.len());
        let mut seen = std::collections::BTreeSet::new();
        for account in listed {
            let id = account["id"].as_str().ok_or_else(|| anyhow!("no id in {account}"))?;
            ensure!(seen.insert(id), "{id} listed twice");
            let expected = self.account(id).ok_or_else(|| anyhow!("{id} listed but never opened: {account}"))?;
            let balance = decimal(&account["balance"])?;
            ensure!(
                balance == cents_text(expected.cents),
                "{id} has balance {balance}, expected {}: {account}",
                cents_text(expected.cents)
            );
            if let Some(transactions) = account.get("transactions") {
                ensure!(
                    transactions.as_u64() == Some(expected.transactions),
                    "{id} counts {transactions} transactions, expected {}: {account}",
                    expected.transactions
                );
            }
        }
        Ok(())
    }

    /// Waits (bounded) until `GET /api/v1/bankAccountLookup/`, asked to reflect the last
    /// position (`Sluice-Position`), answers 200, and checks that answer shows exactly the ledger.
    /// Until then the route may be missing (404, the projection is not loaded yet) or the
    /// projection behind (503); any other answer fails, and so does a 200 that differs, since
    /// read-your-writes promises everything up to the position.
    pub async fn wait_for_lookup(&self, api: &Api, timeout: Duration) -> Result<Reply> {
        let position = self.last_position.to_string();
        let what = format!("{LOOKUP} shows the {} accounts as of position {position}", self.len());
        wait_until(&what, timeout, || async {
            let request = api.request(Method::GET, LOOKUP).header("Sluice-Position", &position);
            let reply = api.send(request).await?;
            match reply.status.as_u16() {
                200 => {
                    self.check(&reply.body).with_context(|| format!("a 200 as of position {position}"))?;
                    Ok(Check::Done(reply))
                }
                404 if reply.code() == Some("route_not_found") => Ok(Check::NotYet(reply.to_string())),
                503 if reply.code() == Some("projection_behind") => Ok(Check::NotYet(reply.to_string())),
                _ => bail!("{LOOKUP} answered {reply}"),
            }
        })
        .await
    }
}

/// Hundredths of a decimal the tests wrote (`"10.5"`, `"3"`, `"0.05"`).
pub fn cents(amount: &str) -> Result<i64> {
    let (negative, digits) = match amount.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    ensure!(
        !whole.is_empty() && fraction.len() <= 2 && whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()),
        "{amount:?} is not an amount with at most 2 decimal places"
    );
    let value = whole.parse::<i64>()? * 100 + format!("{fraction:0<2}").parse::<i64>()?;
    Ok(if negative { -value } else { value })
}

/// Hundredths as [`decimal`] spells an amount: `1050` is `"10.5"`, `300` is `"3"`.
pub fn cents_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let (whole, fraction) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    match fraction {
        0 => format!("{sign}{whole}"),
        f if f % 10 == 0 => format!("{sign}{whole}.{}", f / 10),
        f => format!("{sign}{whole}.{f:02}"),
    }
}

/// The host's output: a bounded tail shared by the reader threads of every run.
#[derive(Clone, Default)]
struct Log {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Log {
    fn push(&self, line: String) {
        // Reader threads inherit the test's output capture: libtest shows these lines with a
        // failing test (or live under `--nocapture`).
        eprintln!("{line}");
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn tail(&self, count: usize) -> String {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = lines.len().saturating_sub(count);
        lines.iter().skip(skip).map(String::as_str).collect::<Vec<_>>().join("\n")
    }

    fn report(&self) -> String {
        format!(
            "----- sluice output (last {LOG_LINES_SHOWN} lines) -----\n{}\n----- end of sluice output -----",
            self.tail(LOG_LINES_SHOWN)
        )
    }

    /// Drain `pipe` on a thread (the host must never block on a full pipe), prefixing each
    /// line; the first `sluice listening on URL` line sends URL to `listening`.
    fn follow(&self, pipe: impl Read + Send + 'static, prefix: String, mut listening: Option<oneshot::Sender<String>>) {
        let log = self.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                // Bytes, not `lines()`: a line that is not UTF-8 must not stop the draining.
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some(url) = line.strip_prefix(LISTENING)
                    && let Some(tx) = listening.take()
                {
                    let _ = tx.send(url.trim().to_owned());
                }
                log.push(format!("{prefix} {line}"));
            }
            // Dropping `listening` unsent tells `launch` that stdout closed first.
        });
    }
}

/// A server the scale-out tests need, named by the environment `scripts/test` sets after
/// `scripts/servers start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    MariaDb,
    MongoDb,
    Kafka,
}

impl Server {
    fn variable(self) -> &'static str {
        match self {
            Self::Postgres => "SLUICE_TEST_POSTGRES_URL",
            Self::MariaDb => "SLUICE_TEST_MYSQL_URL",
            Self::MongoDb => "SLUICE_TEST_MONGODB_URL",
            Self::Kafka => "SLUICE_TEST_KAFKA_URL",
        }
    }

    /// The server's URL, or `None` when it is not configured — in which case the test says so
    /// and passes, unless `SLUICE_REQUIRE_SERVERS=1` (as in `scripts/test`), where it fails.
    pub fn url(self) -> Result<Option<String>> {
        match std::env::var(self.variable()) {
            Ok(url) if !url.is_empty() => Ok(Some(url)),
            _ if std::env::var("SLUICE_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
                bail!(
                    "{} is not set but SLUICE_REQUIRE_SERVERS=1: start the servers with scripts/servers",
                    self.variable()
                )
            }
            _ => {
                eprintln!("skipped: set {} (scripts/servers prints it) to run this test", self.variable());
                Ok(None)
            }
        }
    }

    /// A URL for a fresh database of this test (SQL servers), so tests never share tables.
    pub fn fresh_database_url(self) -> Result<Option<String>> {
        let Some(url) = self.url()? else { return Ok(None) };
        let name = format!("sluice_t{}", uuid::Uuid::new_v4().simple());
        let base = match url.rfind('/') {
            Some(slash) if slash > url.find("://").map_or(0, |i| i + 2) => &url[..slash],
            _ => url.as_str(),
        };
        Ok(Some(format!("{base}/{}", &name[..24])))
    }
}

/// A fresh scale-out stack for one test: its own MongoDB database `sluice_t<12 hex>` on the
/// configured FerretDB, its own fresh PostgreSQL database ([`Server::fresh_database_url`]) and
/// its own Kafka topic prefix `t<12 hex>.` (the same 12 hex digits), so tests on one set of
/// servers never see each other's events, rows, topics or consumer groups. The databases are
/// left for inspection; `scripts/servers sweep` drops every `sluice_t…` one.
///
/// [`Stack::options_with`] gives `sluice serve` these stores and the bus; a test may add its own
/// arguments, request timeout or admin token to them, or change [`Stack::read_store`] first
/// (another SQL server) or name [`Stack::mongodb`] alone (the embedded bus on the same events).
#[derive(Debug, Clone)]
pub struct Stack {
    /// Kafka's bootstrap servers, `host:port` (the configured URL without `kafka://`).
    pub kafka: String,
    /// This test's topic (and consumer group) prefix, `t<12 hex>.`.
    pub prefix: String,
    /// The `--event-store` URL: this test's MongoDB database.
    pub mongodb: String,
    /// The `--read-store` URL: this test's PostgreSQL database.
    pub read_store: String,
}

impl Stack {
    /// A stack with fresh names, or `None` (the test is skipped, with the reason printed, or
    /// fails under `SLUICE_REQUIRE_SERVERS=1`) when Kafka, MongoDB or PostgreSQL is not configured.
    pub fn fresh() -> Result<Option<Self>> {
        let (Some(kafka), Some(mongodb), Some(postgres)) =
            (Server::Kafka.url()?, Server::MongoDb.url()?, Server::Postgres.fresh_database_url()?)
        else {
            return Ok(None);
        };
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let base = mongodb.rsplit_once('/').map_or(mongodb.as_str(), |(base, _)| base);
        Ok(Some(Self {
            kafka: kafka.trim_start_matches("kafka://").to_owned(),
            prefix: format!("t{}.", &unique[..12]),
            mongodb: format!("{base}/sluice_t{}", &unique[..12]),
            read_store: postgres,
        }))
    }

    /// The `--bus` URL: `kafka://BOOTSTRAP?topic_prefix=PREFIX`.
    pub fn bus(&self) -> String {
        format!("kafka://{}?topic_prefix={}", self.kafka, self.prefix)
    }

    /// [`HostOptions::with_plugins`] on this stack: `--event-store`, `--bus` and `--read-store`.
    pub fn options_with(&self, plugins: &[Plugin]) -> HostOptions {
        HostOptions::with_plugins(plugins)
            .arg("--event-store")
            .arg(&self.mongodb)
            .arg("--bus")
            .arg(self.bus())
            .arg("--read-store")
            .arg(&self.read_store)
    }

    /// `name` with this test's prefix: a topic (`topic("BankAccountEvents")`) or a consumer
    /// group (`topic("sluice.projection.accounts")`) as the host names it on this stack.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// 30 withdrawals of 10 from account `id`, half through each host, all at once; a lost race
/// (409) decides again on the new state. Answers how many succeeded: every other one must have
/// been refused (400) for want of funds, never answered anything else.
pub async fn race_withdrawals(first: &Host, second: &Host, id: &str) -> Result<usize> {
    let attempts: Vec<_> = (0..30)
        .map(|n| {
            let api = if n % 2 == 0 { first.api().clone() } else { second.api().clone() };
            let path = format!("/api/v1/withdrawFunds/{id}");
            tokio::spawn(async move {
                loop {
                    let reply = api.put_json(&path, &serde_json::json!({ "amount": number("10") })).await?;
                    if reply.status != 409 {
                        return anyhow::Ok(reply.status);
                    }
                }
            })
        })
        .collect();
    let mut succeeded = 0;
    for attempt in attempts {
        let status = attempt.await??;
        ensure!(status == 200 || status == 400, "withdrawal answered {status}");
        succeeded += usize::from(status == 200);
    }
    Ok(succeeded)
}

/// Run `sluice ARGS…` to completion (an operator command) and return its stdout.
pub fn sluice_command(args: &[&str]) -> Result<String> {
    let output = Command::new(sluice_bin()?)
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .context("failed to run sluice")?;
    ensure!(
        output.status.success(),
        "sluice {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Plugins replaced while clients send commands (the hot-reload issue's acceptance point 2), on
/// whatever stores and bus the caller's [`HostOptions`] name: `hot_reload.rs` runs these bodies
/// on the embedded default, `hot_reload_stack.rs` on Kafka + MongoDB (FerretDB) + PostgreSQL.
/// Only the load's [`Scale`] differs between them; the swaps and the checks are the same.
pub mod under_load {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use anyhow::{Context, Result, bail, ensure};
    use serde_json::{Value, json};
    use tokio::task::JoinSet;

    use super::{Api, Check, Host, HostOptions, Ledger, Plugin, Reply, check_plugin, check_stream, distinct_build};
    use super::{sha256_hex, wait_until};

    /// The admin token the hosts of the hot-reload tests start with.
    pub const TOKEN: &str = "hot-reload-test-token";
    const BANK: &str = "BankAccount";
    /// Replacements of the accounts projection, alternating two builds.
    pub const PROJECTION_SWAPS: usize = 20;
    /// Replacements of the `BankAccount` aggregate, alternating two builds.
    pub const AGGREGATE_SWAPS: usize = 10;
    /// What the load clients deposit, one amount per client.
    pub const AMOUNTS: [&str; 4] = ["1", "0.01", "2.5", "10.05"];

    /// How hard the load pushes and how long the checks wait, for one configuration.
    #[derive(Debug, Clone)]
    pub struct Scale {
        /// Accounts opened before the load; the clients deposit into them round robin.
        pub accounts: usize,
        /// Clients depositing at once.
        pub clients: usize,
        /// A bound on the deposits of each client; they stop sooner, once the swaps are done.
        pub commands_per_client: usize,
        /// The pause after a projection replacement is answered, before the next one.
        pub projection_pause: Duration,
        /// The pause after an aggregate replacement is answered, before the next one.
        pub aggregate_pause: Duration,
        /// How long the load goes on after the last replacement.
        pub settle: Duration,
        /// A bound on catching up (after the swaps, after the rebuild).
        pub catch_up: Duration,
    }

    impl Scale {
        /// The embedded default: 20 accounts, 8 clients depositing until the swaps are done.
        pub const EMBEDDED: Self = Self {
            accounts: 20,
            clients: 8,
            commands_per_client: usize::MAX,
            projection_pause: Duration::from_millis(100),
            aggregate_pause: Duration::from_millis(150),
            settle: Duration::from_millis(300),
            catch_up: Duration::from_secs(60),
        };
    }

    /// Waits until the plugin is listed as running with no lag, and answers its object.
    pub async fn caught_up(api: &Api, name: &str, timeout: Duration) -> Result<Value> {
        wait_until(&format!("{name} runs with no lag"), timeout, || async {
            Ok(match api.admin_plugin(name).await? {
                Some(plugin) if plugin["status"] == "running" && plugin["lag"] == 0 => Check::Done(plugin),
                other => Check::NotYet(format!("{other:?}")),
            })
        })
        .await
    }

    /// `reply.body[flag]` is `true` and its plugin is the accounts projection with this sha256.
    pub fn check_upload(reply: &Reply, flag: &str, component: &[u8]) -> Result<()> {
        ensure!(reply.body[flag] == true, "expected `{flag}: true`: {reply}");
        let plugin = &reply.body["plugin"];
        check_plugin(plugin, "accounts", "projection").with_context(|| format!("in {reply}"))?;
        // A new schema is built while the old version serves: the answer names it as the upgrade.
        let sha256 = sha256_hex(component);
        ensure!(plugin["sha256"] == sha256 || plugin["upgradingTo"] == sha256, "sha256 of another component: {reply}");
        Ok(())
    }

    /// One deposit a load client sent, and what came back.
    #[derive(Debug)]
    struct Sent {
        id: String,
        amount: &'static str,
        /// 0 when the request itself failed.
        status: u16,
        position: Option<u64>,
        answer: String,
    }

    /// Clients depositing into a set of accounts, round robin, until stopped (or each has sent
    /// its bound).
    pub struct Load {
        stop: Arc<AtomicBool>,
        answered: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        clients: JoinSet<Vec<Sent>>,
    }

    impl Load {
        pub fn start(api: &Api, ids: &[String], clients: usize, commands_per_client: usize) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let answered = Arc::new(AtomicUsize::new(0));
            let running = Arc::new(AtomicUsize::new(clients));
            let mut tasks = JoinSet::new();
            for client in 0..clients {
                let (api, ids) = (api.clone(), ids.to_vec());
                let (stop, answered, running) = (stop.clone(), answered.clone(), running.clone());
                let amount = AMOUNTS[client % AMOUNTS.len()];
                tasks.spawn(async move {
                    let mut sent = Vec::new();
                    let mut n = client;
                    while !stop.load(Ordering::Relaxed) && sent.len() < commands_per_client {
                        let id = ids[n % ids.len()].clone();
                        n += clients;
                        let path = format!("/api/v1/depositFunds/{id}");
                        let body = json!({ "amount": super::number(amount) });
                        sent.push(match api.put_json(&path, &body).await {
                            Ok(reply) => Sent {
                                id,
                                amount,
                                status: reply.status.as_u16(),
                                position: reply.body["position"].as_u64(),
                                answer: reply.to_string(),
                            },
                            Err(e) => Sent { id, amount, status: 0, position: None, answer: format!("{e:#}") },
                        });
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    running.fetch_sub(1, Ordering::Relaxed);
                    sent
                });
            }
            Self { stop, answered, running, clients: tasks }
        }

        /// Commands answered so far (successfully or not).
        pub fn answered(&self) -> usize {
            self.answered.load(Ordering::Relaxed)
        }

        /// Clients still sending.
        pub fn running(&self) -> usize {
            self.running.load(Ordering::Relaxed)
        }

        /// Stops the clients and checks every command succeeded (2xx, with a position); records
        /// them in `ledger` and answers how many there were.
        pub async fn finish(mut self, ledger: &mut Ledger) -> Result<usize> {
            self.stop.store(true, Ordering::Relaxed);
            let mut sent = Vec::new();
            while let Some(client) = self.clients.join_next().await {
                sent.extend(client.context("a load client panicked")?);
            }
            let failed: Vec<&Sent> =
                sent.iter().filter(|s| !(200..300).contains(&s.status) || s.position.is_none()).collect();
            if let Some(first) = failed.first() {
                bail!(
                    "{} of {} commands under load failed; the first: deposit {} into {}: {}",
                    failed.len(),
                    sent.len(),
                    first.amount,
                    first.id,
                    first.answer
                );
            }
            for s in &sent {
                ledger.record_deposit(&s.id, s.amount, s.position.unwrap_or_default())?;
            }
            ensure!(!sent.is_empty(), "the load sent no command");
            Ok(sent.len())
        }
    }

    /// `options` with these plugins and the admin token: the caller's options name the stores
    /// and the bus.
    async fn start(options: HostOptions, plugins: &[Plugin]) -> Result<Host> {
        let options = HostOptions { plugins: plugins.to_vec(), ..options };
        Host::start(options.admin_token(TOKEN)).await
    }

    async fn open_accounts(api: &Api, ledger: &mut Ledger, accounts: usize) -> Result<()> {
        for n in 0..accounts {
            ledger.open(api, &format!("holder {n}"), "100").await?;
        }
        Ok(())
    }

    /// The swaps are done: the load must still have been running, or they were not under load.
    fn check_overlap(load: &Load, swaps: usize, scale: &Scale) -> Result<usize> {
        let answered = load.answered();
        ensure!(
            load.running() > 0,
            "every client had sent its {} deposits before the last of {swaps} replacements was answered \
             ({answered} in all): the last replacements were not under load; raise commands_per_client",
            scale.commands_per_client
        );
        Ok(answered)
    }

    /// The accounts projection replaced [`PROJECTION_SWAPS`] times, alternating two builds,
    /// while the clients deposit: every command 2xx, then every acknowledged deposit in the read
    /// model exactly once, the last build running, and a rebuild from the event store agreeing.
    pub async fn replace_projection(options: HostOptions, scale: &Scale) -> Result<()> {
        let host = start(options, &[Plugin::BankAccount, Plugin::AccountsProjection]).await?;
        let mut ledger = Ledger::default();
        open_accounts(&host, &mut ledger, scale.accounts).await?;
        ledger.wait_for_lookup(&host, scale.catch_up).await?;

        let component = Plugin::AccountsProjection.bytes()?;
        let builds = [distinct_build(&component, "a"), distinct_build(&component, "b")];
        let load = Load::start(host.api(), &ledger.ids(), scale.clients, scale.commands_per_client);
        let started = std::time::Instant::now();
        for round in 0..PROJECTION_SWAPS {
            let build = &builds[round % 2];
            let reply = host.admin_put_wasm("accounts", build.clone()).await?;
            let reply = reply.expect_status(200).with_context(|| format!("replacement {round}"))?;
            check_upload(&reply, "replaced", build).with_context(|| format!("replacement {round}"))?;
            tokio::time::sleep(scale.projection_pause).await;
        }
        let during = check_overlap(&load, PROJECTION_SWAPS, scale)?;
        let swapping = started.elapsed();
        tokio::time::sleep(scale.settle).await;
        let commands = load.finish(&mut ledger).await?;
        eprintln!(
            "{commands} deposits from {} clients, {during} answered during {PROJECTION_SWAPS} replacements \
             ({swapping:.1?})",
            scale.clients
        );

        // Every acknowledged deposit once: the read model, as of the last position, is the ledger.
        ledger.wait_for_lookup(&host, scale.catch_up).await?;
        ensure!(host.balances_by_query(ledger.last_position()).await? == ledger.balances(), "generic query differs");
        let running = caught_up(&host, "accounts", scale.catch_up).await?;
        let last = &builds[(PROJECTION_SWAPS - 1) % 2];
        ensure!(running["sha256"] == sha256_hex(last), "the last replacement is not running: {running}");

        // A rebuild from the event store agrees.
        let reply = host.admin_post("/admin/projections/accounts/rebuild", &json!({})).await?.expect_status(200)?;
        ensure!(reply.body["projection"] == "accounts", "rebuilt another projection: {reply}");
        ensure!(reply.u64_field("position")? >= ledger.last_position(), "rebuilt to an older position: {reply}");
        ledger.wait_for_lookup(&host, scale.catch_up).await?;
        Ok(())
    }

    /// `BankAccount` replaced [`AGGREGATE_SWAPS`] times, alternating two builds, while the
    /// clients deposit: every command 2xx, each stream gapless with one event per acknowledged
    /// command, and the replayed balances those of the ledger.
    pub async fn replace_aggregate(options: HostOptions, scale: &Scale) -> Result<()> {
        let host = start(options, &[Plugin::BankAccount]).await?;
        let mut ledger = Ledger::default();
        open_accounts(&host, &mut ledger, scale.accounts).await?;

        let component = Plugin::BankAccount.bytes()?;
        let builds = [distinct_build(&component, "a"), distinct_build(&component, "b")];
        let load = Load::start(host.api(), &ledger.ids(), scale.clients, scale.commands_per_client);
        let started = std::time::Instant::now();
        for round in 0..AGGREGATE_SWAPS {
            let build = &builds[round % 2];
            let reply = host.admin_put_wasm(BANK, build.clone()).await?;
            let reply = reply.expect_status(200).with_context(|| format!("replacement {round}"))?;
            ensure!(reply.body["replaced"] == true, "replacement {round}: {reply}");
            check_plugin(&reply.body["plugin"], BANK, "aggregate")?;
            ensure!(reply.body["plugin"]["sha256"] == sha256_hex(build), "replacement {round}: {reply}");
            tokio::time::sleep(scale.aggregate_pause).await;
        }
        let during = check_overlap(&load, AGGREGATE_SWAPS, scale)?;
        let swapping = started.elapsed();
        tokio::time::sleep(scale.settle).await;
        let commands = load.finish(&mut ledger).await?;
        eprintln!(
            "{commands} deposits from {} clients, {during} answered during {AGGREGATE_SWAPS} replacements \
             ({swapping:.1?})",
            scale.clients
        );

        // Each stream: versions 1..=n without a gap, one event per acknowledged command.
        for id in ledger.ids() {
            let events = host.events(BANK, &id).await?;
            check_stream(&events, BANK, &id)?;
            let deposits = ledger.account(&id).map_or(0, |a| a.transactions);
            ensure!(events.len() as u64 == 1 + deposits, "{id}: {} events for {deposits} deposits", events.len());
        }
        ensure!(host.balances_by_replay(&ledger.ids()).await? == ledger.balances(), "replayed balances differ");
        Ok(())
    }
}
