//! Typed configuration, loaded once at the edge: command-line flags, then `SLUICE_*` environment
//! variables, then an optional TOML file, then defaults — validated with messages that name the
//! setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::projection::letters::DeadLetterPolicy;
use crate::reactor::channels::{ChannelSpec, DEFAULT_WEBHOOK_TIMEOUT};
use crate::reactor::delivery::DeliveryPolicy;
use crate::runtime::SandboxLimits;

/// `sluice serve` options; each is also `SLUICE_<NAME>` and a key of the TOML file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SLUICE_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the embedded stores, the component cache and plugins [default: ./data].
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of plugin components (*.wasm) [default: <data-dir>/plugins].
    #[arg(long, env = "SLUICE_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// Event store URL: sqlite://PATH (default <data-dir>/events.db), mongodb://… or postgres://…
    #[arg(long, env = "SLUICE_EVENT_STORE")]
    pub event_store: Option<String>,
    /// Bus: `embedded` (default) or kafka://HOST:PORT.
    #[arg(long, env = "SLUICE_BUS")]
    pub bus: Option<String>,
    /// Read store URL: sqlite://PATH (default <data-dir>/read.db), postgres://… or mysql://…
    #[arg(long, env = "SLUICE_READ_STORE")]
    pub read_store: Option<String>,
    /// Bearer token for the admin API.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// How often to read the event store's head for other hosts' appends, milliseconds
    /// (PostgreSQL also tells of them at once) [default: 500].
    #[arg(long, env = "SLUICE_LOG_POLL_MS")]
    pub log_poll_ms: Option<u64>,
}

/// The optional TOML file: the same keys as the flags (snake_case), plus `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    plugins: Option<PathBuf>,
    event_store: Option<String>,
    bus: Option<String>,
    read_store: Option<String>,
    admin_token: Option<String>,
    log_poll_ms: Option<u64>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    dead_letters: FileDeadLetters,
    /// `[channels.NAME]`: the channels reactors may send to (none unless granted here).
    #[serde(default)]
    channels: std::collections::BTreeMap<String, FileChannel>,
    #[serde(default)]
    delivery: FileDelivery,
}

/// `[channels.NAME]`: exactly one of `webhook` or `kafka_topic`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChannel {
    /// URL the payload is POSTed to.
    webhook: Option<String>,
    /// Time a webhook has to answer, milliseconds (default 5000).
    timeout_ms: Option<u64>,
    /// Extra headers of every webhook request.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// Kafka topic the payload is produced to.
    kafka_topic: Option<String>,
    /// Brokers of the topic (default: the bus's).
    brokers: Option<String>,
}

/// `[delivery]`: how reactors' messages are retried before they are parked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDelivery {
    /// Calls per message before it is parked (default 10).
    attempts: Option<u32>,
    /// The wait before the second call, doubling after (with jitter), milliseconds (default 50).
    backoff_ms: Option<u64>,
    /// The longest wait between two calls, milliseconds (default 5000).
    max_backoff_ms: Option<u64>,
    /// How long a delivered message stays in its reactor's outbox, seconds (default 604800, a
    /// week); the delivery worker deletes older ones.
    retention_secs: Option<u64>,
}

/// `[dead_letters]`: how consumers treat an event that keeps failing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDeadLetters {
    /// Calls at a failing event before it is parked (default 3).
    attempts: Option<u32>,
    /// The wait before the second call, doubling after (with jitter), milliseconds (default 100).
    backoff_ms: Option<u64>,
    /// Parked letters a consumer may hold before it pauses instead (default 100).
    pause_after: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    /// Linear memory per plugin instance, MiB.
    plugin_memory_mib: Option<usize>,
    /// Time budget of one plugin call, milliseconds.
    plugin_timeout_ms: Option<u64>,
    /// Time budget of a plugin's `describe` at load (its first start), milliseconds (default
    /// 10 000: enough for a JavaScript or Python component's engine to start).
    describe_timeout_ms: Option<u64>,
    /// Largest request body, KiB.
    body_limit_kib: Option<usize>,
    /// Largest plugin upload through the admin API, MiB.
    upload_limit_mib: Option<usize>,
    /// Aggregate states kept in memory, so commands replay only what was appended since (0: none).
    cached_states: Option<usize>,
}

/// The bus the host publishes events on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusConfig {
    Embedded,
    Kafka { bootstrap: String },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub event_store: String,
    pub bus: BusConfig,
    pub read_store: String,
    pub admin_token: Option<String>,
    pub limits: SandboxLimits,
    pub body_limit: usize,
    /// Largest plugin upload (`PUT /admin/plugins/{name}`), bytes.
    pub upload_limit: usize,
    /// Streams whose latest state commands may start from.
    pub cached_states: usize,
    /// Retries, backoff and the pause limit of dead letters.
    pub dead_letters: DeadLetterPolicy,
    /// The channels granted to reactors, by name.
    pub channels: std::collections::BTreeMap<String, ChannelSpec>,
    /// Retries and backoff of reactors' deliveries.
    pub delivery: DeliveryPolicy,
    /// How often the event store's head is read for other hosts' appends.
    pub log_poll: Duration,
}

/// Largest request body unless `limits.body_limit_kib` says otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Largest plugin upload unless `limits.upload_limit_mib` says otherwise.
pub const DEFAULT_UPLOAD_LIMIT: usize = 64 << 20;

/// Streams whose state is kept in memory unless `limits.cached_states` says otherwise.
pub const DEFAULT_CACHED_STATES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid { setting: &'static str, message: String },
    #[error("channels.{name}: {message}")]
    Channel { name: String, message: String },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting, message: message.into() }
}

impl Config {
    /// Merge flags/environment (`args`) over the TOML file at `file` over the defaults.
    pub fn load(args: &ServeArgs, file: Option<&Path>) -> Result<Self, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?
            }
            None => FileConfig::default(),
        };
        let listen_text = args.listen.clone().or(from_file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen =
            listen_text.parse().map_err(|e| invalid("--listen", format!("{listen_text:?} is not HOST:PORT ({e})")))?;
        let data_dir = args.data_dir.clone().or(from_file.data_dir).unwrap_or_else(|| PathBuf::from("./data"));
        let plugins_dir = args.plugins.clone().or(from_file.plugins).unwrap_or_else(|| data_dir.join("plugins"));
        let event_store = args
            .event_store
            .clone()
            .or(from_file.event_store)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("events.db").display()));
        if !["sqlite:", "mongodb:", "mongodb+srv:", "postgres:", "postgresql:"]
            .iter()
            .any(|s| event_store.starts_with(s))
        {
            return Err(invalid(
                "--event-store",
                format!("{event_store:?}: expected sqlite://…, mongodb://… or postgres://…"),
            ));
        }
        let bus_text = args.bus.clone().or(from_file.bus).unwrap_or_else(|| "embedded".into());
        let bus = match bus_text.strip_prefix("kafka://") {
            Some(bootstrap) if !bootstrap.is_empty() => BusConfig::Kafka { bootstrap: bootstrap.to_owned() },
            _ if bus_text == "embedded" => BusConfig::Embedded,
            _ => return Err(invalid("--bus", format!("{bus_text:?}: expected `embedded` or kafka://HOST:PORT"))),
        };
        let read_store = args
            .read_store
            .clone()
            .or(from_file.read_store)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("read.db").display()));
        if !["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"].iter().any(|s| read_store.starts_with(s)) {
            return Err(invalid(
                "--read-store",
                format!("{read_store:?}: expected sqlite://…, postgres://… or mysql://…"),
            ));
        }
        let admin_token = args.admin_token.clone().or(from_file.admin_token).filter(|t| !t.is_empty());
        let defaults = SandboxLimits::default();
        let limits = SandboxLimits {
            memory_bytes: from_file.limits.plugin_memory_mib.map_or(defaults.memory_bytes, |mib| mib << 20),
            call_timeout: from_file.limits.plugin_timeout_ms.map_or(defaults.call_timeout, Duration::from_millis),
            describe_timeout: from_file
                .limits
                .describe_timeout_ms
                .map_or(defaults.describe_timeout, Duration::from_millis),
        };
        if limits.memory_bytes < (1 << 20) {
            return Err(invalid("limits.plugin_memory_mib", "must be at least 1"));
        }
        if limits.call_timeout < Duration::from_millis(10) {
            return Err(invalid("limits.plugin_timeout_ms", "must be at least 10"));
        }
        if limits.describe_timeout < Duration::from_millis(10) {
            return Err(invalid("limits.describe_timeout_ms", "must be at least 10"));
        }
        let body_limit = from_file.limits.body_limit_kib.map_or(DEFAULT_BODY_LIMIT, |kib| kib << 10);
        let cached_states = from_file.limits.cached_states.unwrap_or(DEFAULT_CACHED_STATES);
        let upload_limit = from_file.limits.upload_limit_mib.map_or(DEFAULT_UPLOAD_LIMIT, |mib| mib << 20);
        let letter_defaults = DeadLetterPolicy::default();
        let dead_letters = DeadLetterPolicy {
            attempts: from_file.dead_letters.attempts.unwrap_or(letter_defaults.attempts),
            first_backoff: from_file
                .dead_letters
                .backoff_ms
                .map_or(letter_defaults.first_backoff, Duration::from_millis),
            pause_after: from_file.dead_letters.pause_after.unwrap_or(letter_defaults.pause_after),
        };
        if dead_letters.attempts == 0 {
            return Err(invalid("dead_letters.attempts", "must be at least 1"));
        }
        let channels = from_file
            .channels
            .into_iter()
            .map(|(name, channel)| channel_spec(&name, channel).map(|spec| (name, spec)))
            .collect::<Result<_, _>>()?;
        let delivery_defaults = DeliveryPolicy::default();
        let delivery = DeliveryPolicy {
            attempts: from_file.delivery.attempts.unwrap_or(delivery_defaults.attempts),
            first_backoff: from_file.delivery.backoff_ms.map_or(delivery_defaults.first_backoff, Duration::from_millis),
            max_backoff: from_file.delivery.max_backoff_ms.map_or(delivery_defaults.max_backoff, Duration::from_millis),
            concurrency: delivery_defaults.concurrency,
            retention: from_file.delivery.retention_secs.map_or(delivery_defaults.retention, Duration::from_secs),
        };
        if delivery.attempts == 0 {
            return Err(invalid("delivery.attempts", "must be at least 1"));
        }
        if delivery.retention.is_zero() {
            return Err(invalid("delivery.retention_secs", "must be at least 1"));
        }
        let log_poll =
            args.log_poll_ms.or(from_file.log_poll_ms).map_or(crate::event_store::DEFAULT_POLL, Duration::from_millis);
        if log_poll.is_zero() {
            return Err(invalid("--log-poll-ms", "must be at least 1"));
        }
        Ok(Self {
            listen,
            data_dir,
            plugins_dir,
            event_store,
            bus,
            read_store,
            admin_token,
            limits,
            body_limit,
            upload_limit,
            cached_states,
            dead_letters,
            channels,
            delivery,
            log_poll,
        })
    }
}

/// A `[channels.NAME]` table, checked: a channel is a webhook or a Kafka topic, not both.
fn channel_spec(name: &str, channel: FileChannel) -> Result<ChannelSpec, ConfigError> {
    let invalid = |message: String| ConfigError::Channel { name: name.to_owned(), message };
    let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(invalid("a channel name uses letters, digits, '-' and '_'".into()));
    }
    match (channel.webhook, channel.kafka_topic) {
        (Some(url), None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(format!("webhook {url:?}: expected http://… or https://…")));
            }
            if channel.brokers.is_some() {
                return Err(invalid("`brokers` belongs to a kafka_topic channel".into()));
            }
            let timeout = channel.timeout_ms.map_or(DEFAULT_WEBHOOK_TIMEOUT, Duration::from_millis);
            Ok(ChannelSpec::Webhook { url, timeout, headers: channel.headers.into_iter().collect() })
        }
        (None, Some(topic)) if !topic.is_empty() => {
            if channel.timeout_ms.is_some() || !channel.headers.is_empty() {
                return Err(invalid("`timeout_ms` and `headers` belong to a webhook channel".into()));
            }
            Ok(ChannelSpec::Kafka { topic, brokers: channel.brokers })
        }
        _ => Err(invalid("give exactly one of `webhook = \"http://…\"` or `kafka_topic = \"…\"`".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_data_dir() {
        let args = ServeArgs { data_dir: Some("/tmp/x".into()), ..ServeArgs::default() };
        let config = Config::load(&args, None).expect("valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.plugins_dir, PathBuf::from("/tmp/x/plugins"));
        assert_eq!(config.event_store, "sqlite:///tmp/x/events.db");
        assert_eq!(config.bus, BusConfig::Embedded);
    }

    #[test]
    fn dead_letters_default_to_three_attempts_and_a_zero_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("sluice.toml");
        assert_eq!(Config::load(&ServeArgs::default(), None).expect("valid").dead_letters, DeadLetterPolicy::default());
        std::fs::write(&file, "[dead_letters]\nattempts = 5\nbackoff_ms = 20\npause_after = 7\n").expect("write");
        let policy = Config::load(&ServeArgs::default(), Some(&file)).expect("valid").dead_letters;
        assert_eq!(policy, DeadLetterPolicy { attempts: 5, first_backoff: Duration::from_millis(20), pause_after: 7 });
        std::fs::write(&file, "[dead_letters]\nattempts = 0\n").expect("write");
        let message = Config::load(&ServeArgs::default(), Some(&file)).expect_err("invalid").to_string();
        assert!(message.starts_with("dead_letters.attempts"), "{message}");
    }

    #[test]
    fn channels_are_webhooks_or_topics_and_a_bad_one_names_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("sluice.toml");
        assert!(Config::load(&ServeArgs::default(), None).expect("valid").channels.is_empty());
        std::fs::write(
            &file,
            "[channels.notifications]\nwebhook = \"http://127.0.0.1:9000/notify\"\ntimeout_ms = 250\n\
             headers = { Authorization = \"Bearer x\" }\n[channels.audit]\nkafka_topic = \"audit\"\n",
        )
        .expect("write");
        let channels = Config::load(&ServeArgs::default(), Some(&file)).expect("valid").channels;
        assert_eq!(
            channels.get("notifications"),
            Some(&ChannelSpec::Webhook {
                url: "http://127.0.0.1:9000/notify".into(),
                timeout: Duration::from_millis(250),
                headers: vec![("Authorization".into(), "Bearer x".into())],
            })
        );
        assert_eq!(channels.get("audit"), Some(&ChannelSpec::Kafka { topic: "audit".into(), brokers: None }));
        std::fs::write(&file, "[channels.both]\nwebhook = \"http://x\"\nkafka_topic = \"t\"\n").expect("write");
        let message = Config::load(&ServeArgs::default(), Some(&file)).expect_err("invalid").to_string();
        assert!(message.starts_with("channels.both"), "{message}");
    }

    #[test]
    fn flags_win_over_the_file_and_bad_values_name_the_setting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("sluice.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nbus = \"kafka://127.0.0.1:9092\"\n[limits]\nplugin_timeout_ms = 500\n",
        )
        .expect("write");
        let config = Config::load(&ServeArgs::default(), Some(&file)).expect("valid");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.bus, BusConfig::Kafka { bootstrap: "127.0.0.1:9092".into() });
        assert_eq!(config.limits.call_timeout, Duration::from_millis(500));

        let args = ServeArgs { listen: Some("127.0.0.1:9001".into()), ..ServeArgs::default() };
        assert_eq!(Config::load(&args, Some(&file)).expect("valid").listen.port(), 9001);

        let bad = ServeArgs { bus: Some("rabbit://x".into()), ..ServeArgs::default() };
        let message = Config::load(&bad, None).expect_err("invalid").to_string();
        assert!(message.starts_with("--bus"), "{message}");

        std::fs::write(&file, "lisen = \"x\"\n").expect("write");
        assert!(matches!(Config::load(&ServeArgs::default(), Some(&file)), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn describe_has_its_own_budget_default_generous() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("sluice.toml");
        let limits = Config::load(&ServeArgs::default(), None).expect("valid").limits;
        assert_eq!(limits.describe_timeout, crate::runtime::DEFAULT_DESCRIBE_TIMEOUT);
        assert!(limits.describe_timeout >= Duration::from_secs(10), "{limits:?}");
        std::fs::write(&file, "[limits]\nplugin_timeout_ms = 500\ndescribe_timeout_ms = 30000\n").expect("write");
        let limits = Config::load(&ServeArgs::default(), Some(&file)).expect("valid").limits;
        assert_eq!(
            (limits.call_timeout, limits.describe_timeout),
            (Duration::from_millis(500), Duration::from_secs(30))
        );
        std::fs::write(&file, "[limits]\ndescribe_timeout_ms = 1\n").expect("write");
        let message = Config::load(&ServeArgs::default(), Some(&file)).expect_err("invalid").to_string();
        assert!(message.starts_with("limits.describe_timeout_ms"), "{message}");
    }
}
