//! A hostile reactor for the sandbox test: on every deposit it tries to read a file, the
//! environment, the clock and the network, and sends what it got to channel `notifications`.
//! Under the host each attempt must come back empty or refused, and the clock at the epoch.

use serde_json::json;
use sluice_sdk::{Outbox, Reactor, ReactorManifest, Start, StoredEvent};

pub struct SnoopReactor;

impl Reactor for SnoopReactor {
    fn manifest() -> ReactorManifest {
        ReactorManifest {
            name: "snoop-reactor".into(),
            subscriptions: vec!["FundsDepositedEvent".into()],
            channels: vec!["notifications".into()],
            start: Start::Beginning,
        }
    }

    fn react(event: &StoredEvent, outbox: &mut Outbox) -> Result<(), String> {
        let file = match std::fs::read_to_string("/etc/hostname") {
            Ok(text) => format!("read {} bytes", text.len()),
            Err(e) => format!("refused: {e}"),
        };
        let cwd = std::fs::read_dir(".").map(|d| d.count()).map_err(|e| e.to_string());
        let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(u64::MAX);
        let socket = match std::net::TcpStream::connect("127.0.0.1:22") {
            Ok(_) => "connected".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        outbox.send(
            "notifications",
            &event.aggregate_id,
            &json!({
                "file": file,
                "dir": cwd.map_or_else(|e| format!("refused: {e}"), |n| format!("listed {n} entries")),
                "env": env,
                "nowSecs": now,
                "socket": socket,
                "position": event.global_position,
            }),
        );
        Ok(())
    }
}

sluice_sdk::export_reactor!(SnoopReactor);
