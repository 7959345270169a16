//! A real `sluice serve` for the benchmarks that measure over HTTP (hot swaps, load as the log
//! grows): started from the release binary in a temp folder of its own with the components it
//! is given, talked to with `reqwest`, killed when the benchmark is done with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

/// The line `sluice serve` prints on stdout once it listens.
const LISTENING: &str = "sluice listening on http://";
/// The projection the benchmarks watch (and the swaps replace).
pub const PROJECTION: &str = "accounts";
const TOKEN: &str = "sluice-bench-token";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// What a host starts with.
pub struct Launch<'a> {
    pub sluice: &'a Path,
    /// Components for its plugins directory: file name and bytes.
    pub plugins: Vec<(&'static str, Vec<u8>)>,
    /// Compiled components to seed its cache with.
    pub cache: Option<&'a Path>,
    /// More `sluice serve` arguments (`--event-store`, `--bus`, `--read-store`, ...).
    pub args: Vec<String>,
}

/// An admin request with the benchmark host's token.
pub fn admin(http: &reqwest::Client, base: &str, method: Method, path: &str) -> RequestBuilder {
    http.request(method, format!("{base}{path}")).bearer_auth(TOKEN)
}

/// A plugin as `GET /admin/plugins/{name}` shows it.
pub struct PluginStatus(pub Value);

impl PluginStatus {
    pub fn u64(&self, field: &str) -> Result<u64> {
        self.0[field].as_u64().with_context(|| format!("the plugin has no {field}: {}", self.0))
    }

    pub fn sha256(&self) -> Result<String> {
        Ok(self.0["sha256"].as_str().with_context(|| format!("the plugin has no sha256: {}", self.0))?.to_owned())
    }
}

/// User plus system time from a `/proc/…/stat` line. The fields after the command name (which
/// may hold spaces) start with the state, field 3; utime and stime are fields 14 and 15, in ticks.
fn stat_cpu_time(stat: &str) -> Option<Duration> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 where it cannot be asked).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// A running `sluice serve` in a temp folder of its own (data and plugins directories, its log).
pub struct Server {
    child: tokio::process::Child,
    pub base: String,
    pub http: reqwest::Client,
    root: tempfile::TempDir,
}

impl Server {
    /// Lay out the folders (the components, the compiled cache), start the host and wait until
    /// it listens.
    pub async fn start(launch: &Launch<'_>) -> Result<Self> {
        let root = tempfile::Builder::new().prefix("sluice-bench-").tempdir()?;
        let (data, plugins, cache) =
            (root.path().join("data"), root.path().join("plugins"), root.path().join("data").join("cache"));
        for dir in [&plugins, &cache] {
            std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
        }
        for (name, bytes) in &launch.plugins {
            std::fs::write(plugins.join(name), bytes)?;
        }
        if let Some(compiled) = launch.cache {
            for entry in std::fs::read_dir(compiled)? {
                let entry = entry?;
                std::fs::copy(entry.path(), cache.join(entry.file_name()))?;
            }
        }
        let log = std::fs::File::create(root.path().join("sluice.log"))?;
        let mut command = tokio::process::Command::new(launch.sluice);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-token", TOKEN])
            .args(&launch.args)
            .arg("--data-dir")
            .arg(&data)
            .arg("--plugins")
            .arg(&plugins)
            .current_dir(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SLUICE_") {
                command.env_remove(&name);
            }
        }
        let mut child = command.spawn().with_context(|| format!("failed to start {}", launch.sluice.display()))?;
        let stdout = child.stdout.take().context("sluice has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(address) = line.strip_prefix(LISTENING) {
                    return Ok(Some(address.trim().to_owned()));
                }
            }
            anyhow::Ok(None)
        })
        .await;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let server = Self { child, base: String::new(), http, root };
        let address = match listening {
            Ok(Ok(Some(address))) => address,
            Ok(Ok(None)) => bail!("sluice exited before it listened:\n{}", server.log_tail(30)),
            Ok(Err(e)) => bail!("cannot read sluice's stdout: {e:#}"),
            Err(_) => bail!("sluice did not listen within {START_TIMEOUT:?}:\n{}", server.log_tail(30)),
        };
        // Keep reading stdout, so the host never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { base: format!("http://{address}"), ..server })
    }

    /// Open `n` accounts; their ids.
    pub async fn open_accounts(&self, n: usize) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let response = self
                .http
                .post(format!("{}/api/v1/openBankAccount", self.base))
                .header("content-type", "application/json")
                .body(r#"{"accountHolder":"h","accountType":"SAVINGS","openingBalance":10}"#)
                .send()
                .await?;
            let status = response.status();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            ensure!(status == StatusCode::CREATED, "opening an account answered {status}: {json}");
            ids.push(json["id"].as_str().map(str::to_owned).with_context(|| format!("no id in {json}"))?);
        }
        Ok(ids)
    }

    pub async fn plugin(&self) -> Result<PluginStatus> {
        let response =
            admin(&self.http, &self.base, Method::GET, &format!("/admin/plugins/{PROJECTION}")).send().await?;
        let status = response.status();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(status == StatusCode::OK, "GET /admin/plugins/{PROJECTION} answered {status}: {json}");
        Ok(PluginStatus(json))
    }

    /// Replace the projection with `build` outside any measurement.
    pub async fn replace(&self, build: &[u8]) -> Result<PluginStatus> {
        let response = admin(&self.http, &self.base, Method::PUT, &format!("/admin/plugins/{PROJECTION}"))
            .header("content-type", "application/wasm")
            .body(build.to_vec())
            .send()
            .await?;
        let status = response.status();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(
            status == StatusCode::OK && json["replaced"] == Value::Bool(true),
            "replacing the projection answered {status}: {json}"
        );
        Ok(PluginStatus(json["plugin"].clone()))
    }

    /// Wait until the projection's lag is 0; its status then.
    pub async fn caught_up(&self) -> Result<PluginStatus> {
        let started = Instant::now();
        loop {
            let plugin = self.plugin().await?;
            if plugin.u64("lag")? == 0 {
                return Ok(plugin);
            }
            if started.elapsed() > CATCH_UP_TIMEOUT {
                bail!("the projection did not catch up within {CATCH_UP_TIMEOUT:?}: {}", plugin.0);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn copy_cache(&self, into: &Path) -> Result<()> {
        let cache = self.root.path().join("data").join("cache");
        for entry in std::fs::read_dir(&cache).with_context(|| format!("no compiled cache in {}", cache.display()))? {
            let entry = entry?;
            if entry.path().extension().is_some_and(|e| e == "cwasm") {
                std::fs::copy(entry.path(), into.join(entry.file_name()))?;
            }
        }
        Ok(())
    }

    /// The CPU time (user + system, all threads) the host has used so far, from
    /// `/proc/PID/stat`; `None` where there is no procfs. Robust on a busy machine where
    /// wall-clock rates are not: divided by the commands served, it is the cost of one.
    pub fn cpu_time(&self) -> Option<Duration> {
        stat_cpu_time(&std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()?)).ok()?)
    }

    /// The CPU time each live thread of the host has used so far, by thread id: its name (tokio's
    /// workers and blocking threads, the event store's writer, sqlx's SQLite workers, ...) and
    /// time. Threads that have exited are no longer listed (their time stays in [`Self::cpu_time`]).
    pub fn thread_cpu_times(&self) -> Option<BTreeMap<u32, (String, Duration)>> {
        let tasks = format!("/proc/{}/task", self.child.id()?);
        let mut threads = BTreeMap::new();
        for entry in std::fs::read_dir(&tasks).ok()?.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let (Some(tid), Some((name, _)), Some(time)) = (
                entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()),
                stat.split_once('(').and_then(|(_, rest)| rest.rsplit_once(')')),
                stat_cpu_time(&stat),
            ) else {
                continue;
            };
            threads.insert(tid, (name.to_owned(), time));
        }
        Some(threads)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.root.path().join("sluice.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
