//! The seed's `bankAccountLookup` API over a table of accounts: the routes, the queries they
//! answer, the rows each query selects and how a row reads as the seed's account JSON.
//!
//! The table has at least the [`columns`] declared here; a projection may keep more.

use serde_json::json;
use sluice_projection_sdk::sql::Record;
use sluice_projection_sdk::{
    Column, ColumnType, Comparison, Condition, Params, QueryError, QueryRoute, RebuildRoute, Select, Value,
};

use crate::amount::Amount;

/// The events a bank account read model follows.
pub const SUBSCRIPTIONS: [&str; 4] =
    ["AccountOpenedEvent", "FundsDepositedEvent", "FundsWithdrawnEvent", "AccountClosedEvent"];

/// The seed's queries.
pub const QUERIES: [&str; 4] = ["all", "byId", "byHolder", "withBalance"];

/// The seed's lookup routes, each with the query it answers.
const ROUTES: [(&str, &str); 5] = [
    ("/api/v1/bankAccountLookup/", "all"),
    ("/api/v1/bankAccountLookup", "all"),
    ("/api/v1/bankAccountLookup/byId/{id}", "byId"),
    ("/api/v1/bankAccountLookup/byHolder/{accountHolder}", "byHolder"),
    ("/api/v1/bankAccountLookup/withBalance/{equalityType}/{balance}", "withBalance"),
];

pub fn routes() -> Vec<QueryRoute> {
    ROUTES.iter().map(|(path, query)| QueryRoute::new(path, query)).collect()
}

/// The seed's shared `restoreReadDb` route.
pub fn rebuild_routes() -> Vec<RebuildRoute> {
    vec![RebuildRoute {
        path: "/api/v1/restoreReadDb".to_owned(),
        success_status: 201,
        success_message: "Read database restore request completed successfully!".to_owned(),
    }]
}

/// The columns the seed's account JSON is read from; `id` is the key.
pub fn columns() -> Vec<Column> {
    vec![
        Column::new("id", ColumnType::Text),
        Column::new("account_holder", ColumnType::Text),
        Column::new("creation_date", ColumnType::Timestamp),
        Column::new("account_type", ColumnType::Text),
        Column::new("balance", ColumnType::Decimal),
    ]
}

/// The rows of `table` the query `name` answers with, in the seed's order.
pub fn select(table: &str, name: &str, params: &Params) -> Result<Select, QueryError> {
    let all = Select::from(table).order_by("creation_date").order_by("id");
    Ok(match name {
        "all" => all,
        "byId" => all.filter(Condition::eq("id", Value::text(params.require("id")?))),
        "byHolder" => all.filter(Condition::eq("account_holder", Value::text(params.require("accountHolder")?))),
        "withBalance" => all.filter(balance_condition(params)?),
        other => return Err(QueryError::UnknownQuery(other.to_owned())),
    })
}

/// `balance > x` or `balance < x`, from the seed's `{equalityType}/{balance}`.
fn balance_condition(params: &Params) -> Result<Condition, QueryError> {
    let comparison = match params.require("equalityType")? {
        "GREATER_THAN" => Comparison::Gt,
        "LESS_THAN" => Comparison::Lt,
        other => {
            return Err(QueryError::Invalid(format!("equalityType must be GREATER_THAN or LESS_THAN, not {other:?}")));
        }
    };
    let balance = Amount::parse(params.require("balance")?)
        .map_err(|e| QueryError::Invalid(format!("balance must be an amount of money: {e}")))?;
    Ok(Condition::new("balance", comparison, Value::decimal(balance.as_str())))
}

/// One row as the seed's account JSON; the balance is a JSON number with the store's exact text.
pub fn account_json(row: Record<'_>) -> Result<serde_json::Value, QueryError> {
    let balance = row.text("balance");
    let balance: serde_json::Number = serde_json::from_str(&balance)
        .map_err(|_| QueryError::Failed(format!("the read store returned balance {balance:?}, not a number")))?;
    Ok(json!({
        "id": row.text("id"),
        "accountHolder": row.text("account_holder"),
        "creationDate": row.text("creation_date"),
        "accountType": row.text("account_type"),
        "balance": balance,
    }))
}

/// The seed's message for `count` accounts found by `query`: the lookups of one account (`byId`,
/// `byHolder`) say so without a count, the lists count what they found.
pub fn message(query: &str, count: usize) -> String {
    match query {
        "byId" | "byHolder" => "Successfully returned bank account!".to_owned(),
        _ => format!("Successfully returned {count} bank account(s)!"),
    }
}

/// The seed's answer to `query` for a list of accounts (the seed answers 204, without a body,
/// for none).
pub fn body(query: &str, accounts: Vec<serde_json::Value>) -> serde_json::Value {
    json!({
        "message": message(query, accounts.len()),
        "accounts": accounts,
    })
}
