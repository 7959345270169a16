//! Channels: where reactors' messages go, granted by the operator by name in the configuration
//! (`[channels.NAME]`) and denied by default — a reactor that names a channel that is not
//! configured is refused at load. A channel is a webhook (a `POST` of the message's JSON
//! payload) or a Kafka topic; either way the message's id travels with it as its idempotency
//! key (`Idempotency-Key` HTTP header, `idempotency-key` Kafka header), so a receiver can drop
//! the duplicates that at-least-once delivery brings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::bus::{BusError, KafkaBus};

/// Default time a webhook has to answer.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the operator configured for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSpec {
    /// `POST` the payload to `url`, with `headers`, within `timeout`.
    Webhook { url: String, timeout: Duration, headers: Vec<(String, String)> },
    /// Produce the payload to `topic`, keyed by the message's key, on `brokers` (none: the bus's).
    Kafka { topic: String, brokers: Option<String> },
}

/// A message on its way out.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// Stable: the idempotency key.
    pub id: &'a str,
    pub key: &'a str,
    /// JSON text.
    pub payload: &'a str,
}

/// Why a delivery failed (every failure is retried with backoff, then parked).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    #[error("channel {0:?} is not configured")]
    NotGranted(String),
    #[error("{0}")]
    Failed(String),
}

/// The granted channels, ready to deliver; cheap to clone.
#[derive(Clone, Default)]
pub struct Channels {
    inner: Arc<BTreeMap<String, Channel>>,
    /// Topics of Kafka channels on the host's own bus, created with the aggregates' topics.
    bus_topics: Arc<Vec<String>>,
}

enum Channel {
    Webhook { client: reqwest::Client, url: String, headers: Vec<(String, String)> },
    Kafka { producer: FutureProducer, topic: String },
}

impl Channels {
    /// Open the configured channels (`bus`: the host's Kafka bus, for Kafka channels naming no
    /// brokers of their own).
    pub fn open(specs: &BTreeMap<String, ChannelSpec>, bus: Option<&KafkaBus>) -> Result<Self, BusError> {
        let mut channels = BTreeMap::new();
        let mut bus_topics = Vec::new();
        for (name, spec) in specs {
            let channel = match spec {
                ChannelSpec::Webhook { url, timeout, headers } => {
                    let client = reqwest::Client::builder()
                        .timeout(*timeout)
                        .build()
                        .map_err(|e| BusError::Config(name.clone(), e.to_string()))?;
                    Channel::Webhook { client, url: url.clone(), headers: headers.clone() }
                }
                ChannelSpec::Kafka { topic, brokers } => {
                    let (producer, topic) = match (brokers, bus) {
                        (Some(brokers), _) => (KafkaBus::new(brokers)?.producer()?, topic.clone()),
                        // On the host's bus the topic takes the bus's prefix, like every topic.
                        (None, Some(bus)) => {
                            bus_topics.push(bus.topic(topic));
                            (bus.producer()?, bus.topic(topic))
                        }
                        (None, None) => {
                            return Err(BusError::Config(
                                format!("channels.{name}"),
                                "a kafka_topic channel needs `brokers` when the bus is embedded".into(),
                            ));
                        }
                    };
                    Channel::Kafka { producer, topic }
                }
            };
            channels.insert(name.clone(), channel);
        }
        Ok(Self { inner: Arc::new(channels), bus_topics: Arc::new(bus_topics) })
    }

    /// The topics of Kafka channels on the host's bus (the host creates them when missing).
    pub fn bus_topics(&self) -> &[String] {
        &self.bus_topics
    }

    /// Is `name` granted?
    pub fn granted(&self, name: &str) -> bool {
        self.inner.contains_key(name)
    }

    /// The granted channels' names.
    pub fn names(&self) -> Vec<String> {
        self.inner.keys().cloned().collect()
    }

    /// Deliver `message` to channel `name` once.
    pub async fn deliver(&self, name: &str, message: &Delivery<'_>) -> Result<(), DeliveryError> {
        match self.inner.get(name) {
            None => Err(DeliveryError::NotGranted(name.to_owned())),
            Some(Channel::Webhook { client, url, headers }) => {
                let mut request = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("Idempotency-Key", message.id)
                    .body(message.payload.to_owned());
                for (header, value) in headers {
                    request = request.header(header, value);
                }
                let response = request.send().await.map_err(|e| DeliveryError::Failed(format!("POST {url}: {e}")))?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(DeliveryError::Failed(format!("POST {url}: answered {status}")))
                }
            }
            Some(Channel::Kafka { producer, topic }) => {
                let headers = OwnedHeaders::new().insert(Header { key: "idempotency-key", value: Some(message.id) });
                let record = FutureRecord::to(topic).key(message.key).payload(message.payload).headers(headers);
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| DeliveryError::Failed(format!("produce to {topic}: {e}")))
            }
        }
    }
}
