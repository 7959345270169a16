//! The `hostile` test projection, shared by its two builds: the hostile one fails on purpose for
//! aggregates whose id starts with a given prefix, so end-to-end tests can show the host parks
//! those events as dead letters and keeps everything else flowing; the fixed one handles them
//! all, so tests can replace the first with it and retry the letters.
//!
//! For every event it appends the event's global position to its stream's row of `streams`, so
//! the order in which a stream's events were applied shows in the read model. What the hostile
//! build does with an aggregate id's prefix:
//! - `trap-`: panics (a trap);
//! - `loop-`: spins forever (the host's time limit ends the call);
//! - `bomb-`: allocates until the host's memory limit refuses;
//! - `fail-`: refuses the event with a reason (a bug in the handler, as a value).

use serde_json::json;
use sluice_projection_sdk::{
    Answer, Column, ColumnType, Condition, Db, Event, Manifest, Params, Projection, QueryError, QueryRoute, Select,
    Table, Value,
};

/// The projection; `FIXED` handles every event, the hostile build does not.
pub struct Hostile<const FIXED: bool>;

const STREAMS: &str = "streams";

impl<const FIXED: bool> Hostile<FIXED> {
    /// The hostile part: fail the way the id's prefix says.
    fn misbehave(event: &Event) -> Result<(), String> {
        let id = event.aggregate_id.as_str();
        if id.starts_with("trap-") {
            panic!("hostile projection traps on {id} at position {}", event.global_position);
        }
        if id.starts_with("loop-") {
            let mut spins = 0u64;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        if id.starts_with("bomb-") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        if id.starts_with("fail-") {
            return Err(format!("hostile projection refuses {} of {id}", event.event_type));
        }
        Ok(())
    }
}

impl<const FIXED: bool> Hostile<FIXED> {
    /// The query routes; the fixed build adds one of its own, so replacing the hostile build
    /// with it changes the host's API (what the OpenAPI tests look for).
    fn routes() -> Vec<QueryRoute> {
        let mut routes = vec![QueryRoute::new("/api/test/hostile/streams", "streams")];
        if FIXED {
            routes.push(QueryRoute::new("/api/test/hostile/fixed/streams", "streams"));
        }
        routes
    }
}

impl<const FIXED: bool> Projection for Hostile<FIXED> {
    fn manifest() -> Manifest {
        Manifest {
            name: "hostile".to_owned(),
            subscriptions: ["AccountOpenedEvent", "FundsDepositedEvent", "FundsWithdrawnEvent", "AccountClosedEvent"]
                .map(str::to_owned)
                .to_vec(),
            schema_version: 1,
            tables: vec![Table::new(
                STREAMS,
                vec![
                    Column::new("id", ColumnType::Text),
                    Column::new("positions", ColumnType::Text),
                    Column::new("events", ColumnType::Integer),
                ],
                &["id"],
            )],
            queries: vec!["streams".to_owned()],
            routes: Self::routes(),
            rebuild_routes: Vec::new(),
        }
    }

    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        if !FIXED {
            Self::misbehave(event)?;
        }
        let id = event.aggregate_id.clone();
        let found = db
            .select(Select::from(STREAMS).filter(Condition::eq("id", Value::Text(id.clone()))))
            .map_err(|e| format!("reading {id}: {e}"))?;
        let (positions, events) = match found.records().next() {
            Some(row) => (format!("{},{}", row.text("positions"), event.global_position), row.integer("events") + 1),
            None => (event.global_position.to_string(), 1),
        };
        db.upsert(
            STREAMS,
            &["id", "positions", "events"],
            vec![Value::Text(id.clone()), Value::Text(positions), Value::Integer(events)],
        )
        .map_err(|e| format!("writing {id}: {e}"))
    }

    fn query(db: &mut dyn Db, name: &str, _params: &Params) -> Result<Answer, QueryError> {
        match name {
            "streams" => {
                let rows = db.select(Select::from(STREAMS).order_by("id"))?;
                let streams: serde_json::Map<String, serde_json::Value> =
                    rows.records().map(|r| (r.text("id"), json!(r.text("positions")))).collect();
                Ok(Answer::ok(&json!({ "streams": streams })))
            }
            other => Err(QueryError::UnknownQuery(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_projection_sdk::testing::MemoryDb;

    fn event(id: &str, position: u64) -> Event {
        Event {
            aggregate_type: "BankAccount".into(),
            aggregate_id: id.into(),
            version: 1,
            global_position: position,
            event_type: "FundsDepositedEvent".into(),
            schema_version: 1,
            data: "{}".into(),
            recorded_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_hostile_build_refuses_fail_ids_and_the_fixed_one_records_them_in_order() {
        let mut db = MemoryDb::new(Hostile::<false>::manifest().tables);
        assert!(Hostile::<false>::handle(&mut db, &event("fail-1", 3)).is_err());
        Hostile::<false>::handle(&mut db, &event("ok-1", 4)).expect("an ordinary id");
        Hostile::<true>::handle(&mut db, &event("fail-1", 3)).expect("fixed");
        Hostile::<true>::handle(&mut db, &event("fail-1", 5)).expect("fixed");
        let rows = db.select(Select::from(STREAMS).order_by("id")).expect("select");
        let positions: Vec<(String, String)> = rows.records().map(|r| (r.text("id"), r.text("positions"))).collect();
        assert_eq!(positions, vec![("fail-1".into(), "3,5".into()), ("ok-1".into(), "4".into())]);
    }
}
