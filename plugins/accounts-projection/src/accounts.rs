//! The `accounts` projection: what it declares, how each event changes the `accounts` table, and
//! the seed's `bankAccountLookup` queries over it.

use accounts_read_model::{AccountChange, lookup};
use sluice_projection_sdk::{
    Answer, Assignment, Condition, Db, Event, Manifest, Params, Projection, QueryError, Table, Value,
};

/// The bank account read model.
pub struct Accounts;

const ACCOUNTS: &str = "accounts";

impl Projection for Accounts {
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

    /// Updates and deletes of an account that is not in the table change nothing, as in the seed.
    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        let by_id = |id: String| vec![Condition::eq("id", Value::Text(id))];
        // Only subscribed types arrive; anything else has nothing to change here.
        let Some(change) = AccountChange::read(event)? else { return Ok(()) };
        let written = match change {
            AccountChange::Opened(opened) => db.insert(
                ACCOUNTS,
                &["id", "account_holder", "creation_date", "account_type", "balance"],
                vec![
                    Value::Text(opened.id),
                    Value::Text(opened.account_holder),
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
