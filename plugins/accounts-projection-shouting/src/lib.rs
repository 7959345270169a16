//! A test plugin: a candidate version of the `accounts` projection that changes answers, for
//! the host's dry-run tests.
//!
//! The same name, schema, subscriptions, queries and routes as `accounts-projection`, but it
//! stores every account holder's name upper-cased: `Ada Lovelace` becomes `ADA LOVELACE`. A dry
//! run against version 1 reports every account row as changed, in `account_holder` only.

use accounts_read_model::{AccountChange, lookup};
use sluice_projection_sdk::{
    Answer, Assignment, Condition, Db, Event, Manifest, Params, Projection, QueryError, Table, Value,
};

/// The bank account read model, shouting.
pub struct AccountsShouting;

const ACCOUNTS: &str = "accounts";

impl Projection for AccountsShouting {
    fn manifest() -> Manifest {
        let accounts = Table::new(ACCOUNTS, lookup::columns(), &["id"]).index(&["account_holder"]).index(&["balance"]);
        Manifest {
            name: "accounts".to_owned(),
            subscriptions: lookup::SUBSCRIPTIONS.map(String::from).to_vec(),
            schema_version: 1,
            tables: vec![accounts],
            queries: lookup::QUERIES.map(String::from).to_vec(),
            routes: lookup::routes(),
            rebuild_routes: lookup::rebuild_routes(),
        }
    }

    /// As version 1, but the holder's name is stored upper-cased.
    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        let by_id = |id: String| vec![Condition::eq("id", Value::Text(id))];
        let Some(change) = AccountChange::read(event)? else { return Ok(()) };
        let written = match change {
            AccountChange::Opened(opened) => db.insert(
                ACCOUNTS,
                &["id", "account_holder", "creation_date", "account_type", "balance"],
                vec![
                    Value::Text(opened.id),
                    Value::Text(opened.account_holder.to_uppercase()),
                    Value::Text(opened.opened_at),
                    Value::Text(opened.account_type),
                    Value::decimal(opened.opening_balance.as_str()),
                ],
            ),
            AccountChange::Moved { id, amount } => db
                .update(ACCOUNTS, vec![Assignment::add("balance", Value::decimal(amount.as_str()))], by_id(id))
                .map(drop),
            AccountChange::Closed { id } => db.delete(ACCOUNTS, by_id(id)).map(drop),
        };
        written.map_err(|e| format!("{}: {e}", event.event_type))
    }

    fn query(db: &mut dyn Db, name: &str, params: &Params) -> Result<Answer, QueryError> {
        let rows = db.select(lookup::select(ACCOUNTS, name, params)?)?;
        if rows.is_empty() {
            return Ok(Answer::no_content());
        }
        let accounts = rows.records().map(lookup::account_json).collect::<Result<Vec<_>, _>>()?;
        Ok(Answer::ok(&lookup::body(name, accounts)))
    }
}

// Only the component exports it: natively the crate is a library for the tests.
sluice_projection_sdk::export_projection!(AccountsShouting);
