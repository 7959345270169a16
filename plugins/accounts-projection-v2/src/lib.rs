//! A test plugin: the `accounts` projection one schema version later, for the host's hot-reload
//! tests (replacing a projection whose tables change while queries keep answering).
//!
//! Same name, subscriptions, queries and routes as `accounts-projection`, but `schema-version`
//! 2 and one more column, `transactions`: how many deposits and withdrawals the account has seen.
//! Every answer says which version gave it: the body carries `"schemaVersion": 2` at the top
//! level (version 1's answers have no such field) and each account its `transactions`. A 204
//! has no body, in either version.

use accounts_read_model::{AccountChange, lookup};
use serde_json::json;
use sluice_projection_sdk::{
    Answer, Assignment, Column, ColumnType, Condition, Db, Event, Manifest, Params, Projection, QueryError, Table,
    Value,
};

/// The bank account read model, version 2.
pub struct AccountsV2;

/// The manifest's `schema-version`, also in every answer.
pub const SCHEMA_VERSION: u32 = 2;

const ACCOUNTS: &str = "accounts";

impl Projection for AccountsV2 {
    fn manifest() -> Manifest {
        let mut columns = lookup::columns();
        columns.push(Column::new("transactions", ColumnType::Integer));
        let accounts = Table::new(ACCOUNTS, columns, &["id"]).index(&["account_holder"]).index(&["balance"]);
        Manifest {
            name: "accounts".to_owned(),
            subscriptions: lookup::SUBSCRIPTIONS.map(String::from).to_vec(),
            schema_version: SCHEMA_VERSION,
            tables: vec![accounts],
            queries: lookup::QUERIES.map(String::from).to_vec(),
            routes: lookup::routes(),
            rebuild_routes: lookup::rebuild_routes(),
        }
    }

    /// As version 1, and each deposit or withdrawal counts one more transaction.
    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        let by_id = |id: String| vec![Condition::eq("id", Value::Text(id))];
        let Some(change) = AccountChange::read(event)? else { return Ok(()) };
        let written = match change {
            AccountChange::Opened(opened) => db.insert(
                ACCOUNTS,
                &["id", "account_holder", "creation_date", "account_type", "balance", "transactions"],
                vec![
                    Value::Text(opened.id),
                    Value::Text(opened.account_holder),
                    Value::Text(opened.opened_at),
                    Value::Text(opened.account_type),
                    Value::decimal(opened.opening_balance.as_str()),
                    Value::Integer(0),
                ],
            ),
            AccountChange::Moved { id, amount } => {
                let changes = vec![
                    Assignment::add("balance", Value::decimal(amount.as_str())),
                    Assignment::add("transactions", Value::Integer(1)),
                ];
                db.update(ACCOUNTS, changes, by_id(id)).map(drop)
            }
            AccountChange::Closed { id } => db.delete(ACCOUNTS, by_id(id)).map(drop),
        };
        written.map_err(|e| format!("{}: {e}", event.event_type))
    }

    fn query(db: &mut dyn Db, name: &str, params: &Params) -> Result<Answer, QueryError> {
        let rows = db.select(lookup::select(ACCOUNTS, name, params)?)?;
        if rows.is_empty() {
            return Ok(Answer::no_content());
        }
        let accounts = rows
            .records()
            .map(|row| {
                let mut account = lookup::account_json(row)?;
                account["transactions"] = json!(row.integer("transactions"));
                Ok(account)
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        let mut body = lookup::body(name, accounts);
        body["schemaVersion"] = json!(SCHEMA_VERSION);
        Ok(Answer::ok(&body))
    }
}

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(AccountsV2);
