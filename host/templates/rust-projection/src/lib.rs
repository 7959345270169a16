//! The `{{snake}}` projection: one row per item, kept from the `ItemCreatedEvent`,
//! `ItemRenamedEvent` and `ItemArchivedEvent` events, with a query by id and a list.
//!
//! Replace the subscriptions, tables and queries with your read model's. `handle` and `query`
//! run inside the host's transaction through the `sql` capability ([`Db`]); `tests/{{snake}}.rs`
//! runs them natively on the SDK's in-memory store. [`log`] writes to the host's log under the
//! projection's name (WIT 0.2.0's `log`, rate-limited by the host).

use serde::Deserialize;
use serde_json::json;
use sluice_projection_sdk::{
    Answer, Assignment, Column, ColumnType, Condition, Db, Event, Manifest, Params, Projection, QueryError, QueryRoute,
    Select, Table, Value,
};
use sluice_projection_sdk::{Level, log};

pub struct {{Pascal}};

const ITEMS: &str = "{{snake}}_items";

#[derive(Deserialize)]
struct Named {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

impl Projection for {{Pascal}} {
    fn manifest() -> Manifest {
        let items = Table::new(
            ITEMS,
            vec![
                Column::new("id", ColumnType::Text),
                Column::new("name", ColumnType::Text),
                Column::new("renames", ColumnType::Integer),
                Column::new("created_at", ColumnType::Timestamp),
            ],
            &["id"],
        )
        .index(&["name"]);
        Manifest {
            name: "{{snake}}".to_owned(),
            subscriptions: ["ItemCreatedEvent", "ItemRenamedEvent", "ItemArchivedEvent"].map(String::from).to_vec(),
            schema_version: 1,
            tables: vec![items],
            queries: vec!["all".to_owned(), "byId".to_owned()],
            routes: vec![
                QueryRoute::new("/api/v1/{{camel}}Lookup", "all"),
                QueryRoute::new("/api/v1/{{camel}}Lookup/{id}", "byId"),
            ],
            rebuild_routes: vec![],
        }
    }

    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        let written = match event.event_type.as_str() {
            "ItemCreatedEvent" => {
                let item: Named = event.parse()?;
                db.insert(
                    ITEMS,
                    &["id", "name", "renames", "created_at"],
                    vec![Value::Text(item.id), Value::Text(item.name), Value::Integer(0), Value::text(&event.recorded_at)],
                )
            }
            "ItemRenamedEvent" => {
                let item: Named = event.parse()?;
                let matched = db.update(
                    ITEMS,
                    vec![Assignment::set("name", Value::Text(item.name)), Assignment::add("renames", Value::Integer(1))],
                    vec![Condition::eq("id", Value::Text(item.id.clone()))],
                );
                if matched == Ok(0) {
                    let at = event.global_position;
                    log(Level::Warn, &format!("rename of unknown item {} at position {at}", item.id));
                }
                matched.map(drop)
            }
            "ItemArchivedEvent" => {
                let item: Id = event.parse()?;
                db.delete(ITEMS, vec![Condition::eq("id", Value::Text(item.id))]).map(drop)
            }
            // Only subscribed types arrive.
            _ => Ok(()),
        };
        written.map_err(|e| format!("{}: {e}", event.event_type))
    }

    fn query(db: &mut dyn Db, name: &str, params: &Params) -> Result<Answer, QueryError> {
        let select = Select::from(ITEMS).order_by("created_at").order_by("id");
        let select = match name {
            "all" => select,
            "byId" => select.filter(Condition::eq("id", Value::text(params.require("id")?))),
            other => return Err(QueryError::UnknownQuery(other.to_owned())),
        };
        let rows = db.select(select)?;
        if rows.is_empty() {
            return Ok(Answer::no_content());
        }
        let items: Vec<_> = rows
            .records()
            .map(|r| json!({ "id": r.text("id"), "name": r.text("name"), "renames": r.integer("renames") }))
            .collect();
        Ok(Answer::ok(&json!({ "message": format!("Successfully returned {} item(s)!", items.len()), "items": items })))
    }
}

// Only the component exports it; natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!({{Pascal}});
