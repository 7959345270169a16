//! A test projection that talks: for every `AccountOpenedEvent` it writes one line to the host's
//! log (`chatty saw holder … at position …`) and records the holder in its table; a holder named
//! `flood N` makes it write N more lines (`chatty flood line i of N`) in the same call. The
//! end-to-end tests read the host's log to show that a projection's lines arrive under its name
//! and that a flood is cut by the host's rate limit, with a note of how many were dropped.

use serde::Deserialize;
use serde_json::json;
use sluice_projection_sdk::{
    Answer, Column, ColumnType, Db, Event, Level, Manifest, Params, Projection, QueryError, QueryRoute, Select, Table,
    Value, log,
};

/// The talking projection.
pub struct Chatty;

const HOLDERS: &str = "holders";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Opened {
    account_holder: String,
}

/// The number of extra lines a holder asks for: `flood N`.
pub fn flood_size(holder: &str) -> Option<u32> {
    holder.strip_prefix("flood ").and_then(|n| n.trim().parse().ok())
}

impl Projection for Chatty {
    fn manifest() -> Manifest {
        Manifest {
            name: "chatty".to_owned(),
            subscriptions: vec!["AccountOpenedEvent".to_owned()],
            schema_version: 1,
            tables: vec![Table::new(
                HOLDERS,
                vec![Column::new("id", ColumnType::Text), Column::new("holder", ColumnType::Text)],
                &["id"],
            )],
            queries: vec!["holders".to_owned()],
            routes: vec![QueryRoute::new("/api/test/chatty/holders", "holders")],
            rebuild_routes: Vec::new(),
        }
    }

    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        let opened: Opened = event.parse()?;
        log(Level::Info, &format!("chatty saw holder {} at position {}", opened.account_holder, event.global_position));
        if let Some(lines) = flood_size(&opened.account_holder) {
            for line in 1..=lines {
                log(Level::Info, &format!("chatty flood line {line} of {lines}"));
            }
        }
        db.upsert(
            HOLDERS,
            &["id", "holder"],
            vec![Value::Text(event.aggregate_id.clone()), Value::Text(opened.account_holder)],
        )
        .map_err(|e| e.to_string())
    }

    fn query(db: &mut dyn Db, name: &str, _params: &Params) -> Result<Answer, QueryError> {
        if name != "holders" {
            return Err(QueryError::UnknownQuery(name.to_owned()));
        }
        let rows =
            db.select(Select::from(HOLDERS).columns(&["holder"])).map_err(|e| QueryError::Failed(e.to_string()))?;
        let holders: Vec<String> = rows
            .rows
            .into_iter()
            .filter_map(|row| match row.into_iter().next() {
                Some(Value::Text(holder)) => Some(holder),
                _ => None,
            })
            .collect();
        Ok(Answer::ok(&json!({ "holders": holders })))
    }
}

sluice_projection_sdk::export_projection!(Chatty);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_asked_for_by_name() {
        assert_eq!(flood_size("flood 1000"), Some(1000));
        assert_eq!(flood_size("quiet"), None);
        assert_eq!(flood_size("flood lots"), None);
    }
}
