//! The `sql` capability: the host side of the WIT `sql` interface, a thin adapter on its own
//! context ([`SqlCapability`]). It converts the guest's statements into the read store's own
//! statement types and hands them to the call's [`SqlSession`], which scopes them to the
//! projection's tables; a call that was granted no session is refused by value, not trapped.
//!
//! WIT 0.1.0 and 0.2.0 declare the same `sql` interface under two package versions, so the
//! bindings generate two sets of alike types: [`adapter!`] writes the adapter once and
//! instantiates it for each ([`v0_1`], [`v0_2`]).

use crate::read_store::session::SqlSession;
use crate::read_store::statement as st;

/// The capability's context in a store: the session of this call, if one was granted.
#[derive(Default)]
pub struct SqlCapability {
    session: Option<SqlSession>,
}

impl SqlCapability {
    /// Grant `session` to the call.
    pub fn grant(&mut self, session: SqlSession) {
        self.session = Some(session);
    }

    /// Take the session back after the call (to commit or roll back).
    pub fn take(&mut self) -> Option<SqlSession> {
        self.session.take()
    }

    fn session(&mut self) -> Result<&mut SqlSession, String> {
        // Only projection calls are given a session; any other caller gets a clear refusal.
        self.session.as_mut().ok_or_else(|| "no read store is granted to this call".to_owned())
    }
}

/// The `Host` impl of one version's `sql` interface (`wit` in scope at the call site) for
/// [`SqlCapability`], and its conversions to the read store's statements.
macro_rules! adapter {
    () => {
        use super::{SqlCapability, st};
        use wit::{Assignment, Condition, Rows, Selection, SqlError, Value};

        fn granted(capability: &mut SqlCapability) -> Result<&mut super::SqlSession, SqlError> {
            capability.session().map_err(SqlError::Backend)
        }

        impl wit::Host for SqlCapability {
            fn insert(&mut self, table: String, columns: Vec<String>, values: Vec<Value>) -> Result<(), SqlError> {
                let values = values.into_iter().map(value).collect::<Vec<_>>();
                granted(self)?.insert(&table, &columns, &values).map_err(error)
            }

            fn upsert(&mut self, table: String, columns: Vec<String>, values: Vec<Value>) -> Result<(), SqlError> {
                let values = values.into_iter().map(value).collect::<Vec<_>>();
                granted(self)?.upsert(&table, &columns, &values).map_err(error)
            }

            fn update(
                &mut self,
                table: String,
                assignments: Vec<Assignment>,
                filter: Vec<Condition>,
            ) -> Result<u64, SqlError> {
                let assignments = assignments
                    .into_iter()
                    .map(|a| st::Assignment {
                        column: a.column,
                        change: match a.change {
                            wit::Change::Set(v) => st::Change::Set(value(v)),
                            wit::Change::Add(v) => st::Change::Add(value(v)),
                        },
                    })
                    .collect::<Vec<_>>();
                let filter = filter.into_iter().map(condition).collect::<Vec<_>>();
                granted(self)?.update(&table, &assignments, &filter).map_err(error)
            }

            fn delete(&mut self, table: String, filter: Vec<Condition>) -> Result<u64, SqlError> {
                let filter = filter.into_iter().map(condition).collect::<Vec<_>>();
                granted(self)?.delete(&table, &filter).map_err(error)
            }

            fn select(&mut self, query: Selection) -> Result<Rows, SqlError> {
                let selection = st::Selection {
                    table: query.table,
                    columns: query.columns,
                    filter: query.filter.into_iter().map(condition).collect(),
                    order_by: query
                        .order_by
                        .into_iter()
                        .map(|o| st::Ordering { column: o.column, descending: o.descending })
                        .collect(),
                    limit: query.limit,
                };
                let found = granted(self)?.select(selection).map_err(error)?;
                Ok(Rows {
                    columns: found.columns,
                    rows: found.rows.into_iter().map(|row| row.into_iter().map(wit_value).collect()).collect(),
                })
            }
        }

        fn value(v: Value) -> st::Value {
            match v {
                Value::Null => st::Value::Null,
                Value::Integer(n) => st::Value::Integer(n),
                Value::Decimal(d) => st::Value::Decimal(d),
                Value::Text(t) => st::Value::Text(t),
                Value::Boolean(b) => st::Value::Boolean(b),
            }
        }

        fn wit_value(v: st::Value) -> Value {
            match v {
                st::Value::Null => Value::Null,
                st::Value::Integer(n) => Value::Integer(n),
                st::Value::Decimal(d) => Value::Decimal(d),
                st::Value::Text(t) => Value::Text(t),
                st::Value::Boolean(b) => Value::Boolean(b),
            }
        }

        fn condition(c: Condition) -> st::Condition {
            st::Condition {
                column: c.column,
                comparison: match c.comparison {
                    wit::Comparison::Eq => st::Comparison::Eq,
                    wit::Comparison::Ne => st::Comparison::Ne,
                    wit::Comparison::Lt => st::Comparison::Lt,
                    wit::Comparison::Le => st::Comparison::Le,
                    wit::Comparison::Gt => st::Comparison::Gt,
                    wit::Comparison::Ge => st::Comparison::Ge,
                },
                value: value(c.value),
            }
        }

        fn error(e: st::SqlError) -> SqlError {
            match e {
                st::SqlError::UnknownTable(m) => SqlError::UnknownTable(m),
                st::SqlError::UnknownColumn(m) => SqlError::UnknownColumn(m),
                st::SqlError::ReadOnly => SqlError::ReadOnly,
                st::SqlError::Constraint(m) => SqlError::Constraint(m),
                st::SqlError::InvalidValue(m) => SqlError::InvalidValue(m),
                st::SqlError::Backend(m) => SqlError::Backend(m),
            }
        }
    };
}

/// The 0.1.0 `sql` interface.
mod v0_1 {
    use crate::bindings::sql as wit;
    adapter!();
}

/// The 0.2.0 `sql` interface (the same statements, `log` beside it in the world).
mod v0_2 {
    use crate::bindings::sql_v2 as wit;
    adapter!();
}

// The shared `types` interface has no functions; linking it grants nothing.
impl crate::bindings::types::Host for SqlCapability {}
