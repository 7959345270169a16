//! Apache Kafka: one topic per aggregate type (the manifest's `topic`), key = aggregate id, value
//! = the JSON event envelope, headers `event-type`, `schema-version` and `position`.
//!
//! `--bus kafka://HOST:PORT[,HOST:PORT…][?topic_prefix=PREFIX]`: the prefix goes in front of
//! every topic and consumer group name, so several event stores can share one cluster.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

/// Partitions of a topic the host creates: consumers of one group share at most this many.
pub const PARTITIONS: i32 = 6;
/// Replicas of a topic the host creates (a single broker here; clusters create topics ahead).
const REPLICATION: i32 = 1;

pub const HEADER_EVENT_TYPE: &str = "event-type";
pub const HEADER_SCHEMA_VERSION: &str = "schema-version";
pub const HEADER_POSITION: &str = "position";

/// Why talking to Kafka failed: the broker or the network, never the caller.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The client or the broker failed (unreachable, timed out, refused): the caller retries
    /// (relay, consumers) or the host does not start.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The broker refused to create a topic the host needs (e.g. not authorised): the host does
    /// not start.
    #[error("kafka: cannot create topic {topic}: {code}")]
    Topic { topic: String, code: RDKafkaErrorCode },
    /// The `--bus` URL is malformed: the operator's to fix.
    #[error("--bus kafka://{0}: {1}")]
    Config(String, String),
}

/// A Kafka cluster and the names the host uses in it.
#[derive(Debug, Clone)]
pub struct KafkaBus {
    bootstrap: String,
    prefix: String,
}

impl KafkaBus {
    /// `address` is what follows `kafka://` in the `--bus` URL.
    pub fn new(address: &str) -> Result<Self, BusError> {
        let (bootstrap, query) = address.split_once('?').unwrap_or((address, ""));
        let mut prefix = String::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("topic_prefix", value)) => value.clone_into(&mut prefix),
                _ => return Err(BusError::Config(address.into(), format!("unknown option {pair:?}"))),
            }
        }
        if bootstrap.is_empty() {
            return Err(BusError::Config(address.into(), "no HOST:PORT".into()));
        }
        Ok(Self { bootstrap: bootstrap.to_owned(), prefix })
    }

    /// The Kafka topic of a manifest's topic name.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The consumer group of a projection.
    pub fn projection_group(&self, projection: &str) -> String {
        format!("{}sluice.projection.{projection}", self.prefix)
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap).set("client.id", "sluice");
        config
    }

    /// Create the topics that are missing, with [`PARTITIONS`] partitions.
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<(), BusError> {
        if topics.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self.config().create()?;
        let new: Vec<NewTopic<'_>> =
            topics.iter().map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(REPLICATION))).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(BusError::Topic { topic, code }),
            }
        }
        Ok(())
    }

    /// An idempotent producer: acknowledged by all in-sync replicas, in order per partition, and
    /// a gap (a message lost while later ones land) is a fatal error instead of a silent hole.
    pub fn producer(&self) -> Result<FutureProducer, BusError> {
        Ok(self
            .config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("enable.gapless.guarantee", "true")
            .set("linger.ms", "5")
            // Room for the relay's batches in flight (crate::relay) with a margin.
            .set("queue.buffering.max.messages", "250000")
            .set("message.timeout.ms", "30000")
            .create()?)
    }

    /// A consumer in `group` that never commits on its own and starts a new group at the
    /// beginning of each partition. `member` is its static membership: a member restarted under
    /// the same name gets its partitions back at once, without waiting for the session timeout
    /// of its previous incarnation. The price: a static member does not leave the group when it
    /// stops, so its partitions wait for the session timeout (6 s, the broker's default minimum)
    /// before another host takes them.
    pub fn consumer<C: ConsumerContext + 'static>(
        &self,
        group: &str,
        member: &str,
        context: C,
    ) -> Result<StreamConsumer<C>, BusError> {
        Ok(self
            .config()
            .set("group.id", group)
            .set("group.instance.id", member)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "2000")
            .create_with_context(context)?)
    }

    /// A consumer outside any group, for metadata and watermarks.
    pub fn observer(&self) -> Result<rdkafka::consumer::BaseConsumer, BusError> {
        Ok(self.config().create()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_names_topics_and_groups() {
        let bus = KafkaBus::new("127.0.0.1:9092?topic_prefix=t1.").expect("valid");
        assert_eq!(bus.topic("Orders"), "t1.Orders");
        assert_eq!(bus.projection_group("totals"), "t1.sluice.projection.totals");
        assert!(KafkaBus::new("127.0.0.1:9092?colour=red").is_err());
        assert_eq!(KafkaBus::new("h:1").expect("valid").topic("X"), "X");
    }
}
