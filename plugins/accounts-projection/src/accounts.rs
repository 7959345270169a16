//! The `accounts` projection: what it declares, how each event changes the `accounts` table, and
//! the seed's `bankAccountLookup` queries over it.

use serde_json::json;
use sluice_projection_sdk::sql::Record;
use sluice_projection_sdk::{
    Answer, Assignment, Column, ColumnType, Comparison, Condition, Db, Event, Manifest, Params, Projection, QueryError,
    QueryRoute, RebuildRoute, Select, Table, Value,
};

use crate::amount::Amount;
use crate::event::{AccountClosed, AccountOpened, FundsMoved};

/// The bank account read model.
pub struct Accounts;

const ACCOUNTS: &str = "accounts";

/// The seed's lookup routes, each with the query it answers.
const ROUTES: [(&str, &str); 5] = [
    ("/api/v1/bankAccountLookup/", "all"),
    ("/api/v1/bankAccountLookup", "all"),
    ("/api/v1/bankAccountLookup/byId/{id}", "byId"),
    ("/api/v1/bankAccountLookup/byHolder/{accountHolder}", "byHolder"),
    ("/api/v1/bankAccountLookup/withBalance/{equalityType}/{balance}", "withBalance"),
];

impl Projection for Accounts {
    fn manifest() -> Manifest {
        let accounts = Table::new(
            ACCOUNTS,
            vec![
                Column::new("id", ColumnType::Text),
                Column::new("account_holder", ColumnType::Text),
                Column::new("creation_date", ColumnType::Timestamp),
                Column::new("account_type", ColumnType::Text),
                Column::new("balance", ColumnType::Decimal),
            ],
            &["id"],
        )
        .index(&["account_holder"])
        .index(&["balance"]);
        Manifest {
            name: "accounts".to_owned(),
            subscriptions: ["AccountOpenedEvent", "FundsDepositedEvent", "FundsWithdrawnEvent", "AccountClosedEvent"]
                .map(String::from)
                .to_vec(),
            schema_version: 1,
            tables: vec![accounts],
            queries: ["all", "byId", "byHolder", "withBalance"].map(String::from).to_vec(),
            routes: ROUTES.iter().map(|(path, query)| QueryRoute::new(path, query)).collect(),
            rebuild_routes: vec![RebuildRoute {
                path: "/api/v1/restoreReadDb".to_owned(),
                success_status: 201,
                success_message: "Read database restore request completed successfully!".to_owned(),
            }],
        }
    }

    /// Updates and deletes of an account that is not in the table change nothing, as in the seed.
    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String> {
        let by_id = |id: String| vec![Condition::eq("id", Value::Text(id))];
        let written = match event.event_type.as_str() {
            "AccountOpenedEvent" => {
                let opened: AccountOpened = event.parse()?;
                db.insert(
                    ACCOUNTS,
                    &["id", "account_holder", "creation_date", "account_type", "balance"],
                    vec![
                        Value::Text(opened.id),
                        Value::Text(opened.account_holder),
                        Value::Text(opened.created_date),
                        Value::Text(opened.account_type),
                        Value::decimal(opened.opening_balance.as_str()),
                    ],
                )
            }
            "FundsDepositedEvent" => {
                let deposited: FundsMoved = event.parse()?;
                let change = Assignment::add("balance", Value::decimal(deposited.amount.as_str()));
                db.update(ACCOUNTS, vec![change], by_id(deposited.id)).map(drop)
            }
            "FundsWithdrawnEvent" => {
                let withdrawn: FundsMoved = event.parse()?;
                let change = Assignment::add("balance", Value::decimal(withdrawn.amount.negated().as_str()));
                db.update(ACCOUNTS, vec![change], by_id(withdrawn.id)).map(drop)
            }
            "AccountClosedEvent" => {
                let closed: AccountClosed = event.parse()?;
                db.delete(ACCOUNTS, by_id(closed.id)).map(drop)
            }
            // Only subscribed types arrive; anything else has nothing to change here.
            _ => Ok(()),
        };
        written.map_err(|e| format!("{}: {e}", event.event_type))
    }

    fn query(db: &mut dyn Db, name: &str, params: &Params) -> Result<Answer, QueryError> {
        let all = Select::from(ACCOUNTS).order_by("creation_date").order_by("id");
        let select = match name {
            "all" => all,
            "byId" => all.filter(Condition::eq("id", Value::text(params.require("id")?))),
            "byHolder" => all.filter(Condition::eq("account_holder", Value::text(params.require("accountHolder")?))),
            "withBalance" => all.filter(balance_condition(params)?),
            other => return Err(QueryError::UnknownQuery(other.to_owned())),
        };
        let rows = db.select(select)?;
        if rows.is_empty() {
            return Ok(Answer::no_content());
        }
        let accounts = rows.records().map(account_json).collect::<Result<Vec<_>, _>>()?;
        Ok(Answer::ok(&json!({
            "message": format!("Successfully returned {} bank account(s)!", accounts.len()),
            "accounts": accounts,
        })))
    }
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
fn account_json(row: Record<'_>) -> Result<serde_json::Value, QueryError> {
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
