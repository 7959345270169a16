//! Conversions between the generated WIT types and the SDK's plain types, and the `Db` that
//! calls the host's `sql` capability.
//!
//! WIT 0.1.0 and 0.2.0 declare the same projection interfaces under two package versions, so
//! the bindings hold two sets of alike types: `glue!` writes the glue once, `v1` and `v2`
//! instantiate it for each.

/// The glue of one WIT version (`wit`, `host` and `types` in scope at the call site).
macro_rules! glue {
    () => {
        use crate::projection::{ColumnType, Event, Params, Projection, QueryError};
        use crate::sql::{Assignment, Change, Comparison, Condition, Db, Rows, Select, SqlError, Value};

        pub fn manifest<P: Projection>() -> wit::Manifest {
            let m = P::manifest();
            wit::Manifest {
                name: m.name,
                subscriptions: m.subscriptions,
                schema_version: m.schema_version,
                tables: m
                    .tables
                    .into_iter()
                    .map(|t| wit::Table {
                        name: t.name,
                        columns: t
                            .columns
                            .into_iter()
                            .map(|c| wit::Column {
                                name: c.name,
                                column_type: match c.column_type {
                                    ColumnType::Text => wit::ColumnType::Text,
                                    ColumnType::Integer => wit::ColumnType::Integer,
                                    ColumnType::Decimal => wit::ColumnType::Decimal,
                                    ColumnType::Boolean => wit::ColumnType::Boolean,
                                    ColumnType::Timestamp => wit::ColumnType::Timestamp,
                                },
                                nullable: c.nullable,
                            })
                            .collect(),
                        primary_key: t.primary_key,
                        indexes: t.indexes,
                    })
                    .collect(),
                queries: m.queries,
                routes: m
                    .routes
                    .into_iter()
                    .map(|r| wit::QueryRoute { path: r.path, query: r.query, case_insensitive: r.case_insensitive })
                    .collect(),
                rebuild_routes: m
                    .rebuild_routes
                    .into_iter()
                    .map(|r| wit::RebuildRoute {
                        path: r.path,
                        success_status: r.success_status,
                        success_message: r.success_message,
                    })
                    .collect(),
            }
        }

        pub fn handle<P: Projection>(events: Vec<types::EventEnvelope>) -> Result<(), String> {
            let mut db = HostDb;
            for e in events {
                let event = Event {
                    aggregate_type: e.aggregate_type,
                    aggregate_id: e.aggregate_id,
                    version: e.version,
                    global_position: e.global_position,
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                    data: e.data,
                    recorded_at: e.recorded_at,
                };
                P::handle(&mut db, &event).map_err(|m| format!("event at position {}: {m}", event.global_position))?;
            }
            Ok(())
        }

        pub fn query<P: Projection>(
            name: String,
            params: Vec<(String, String)>,
        ) -> Result<wit::Answer, wit::QueryError> {
            let mut db = HostDb;
            P::query(&mut db, &name, &Params(params)).map(|a| wit::Answer { status: a.status, body: a.body }).map_err(
                |e| match e {
                    QueryError::UnknownQuery(m) => wit::QueryError::UnknownQuery(m),
                    QueryError::Invalid(m) => wit::QueryError::Invalid(m),
                    QueryError::NotFound(m) => wit::QueryError::NotFound(m),
                    QueryError::Failed(m) => wit::QueryError::Failed(m),
                },
            )
        }

        /// The host's `sql` capability.
        struct HostDb;

        impl Db for HostDb {
            fn insert(&mut self, table: &str, columns: &[&str], values: Vec<Value>) -> Result<(), SqlError> {
                let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
                let values: Vec<host::Value> = values.into_iter().map(to_host).collect();
                host::insert(table, &columns, &values).map_err(from_host_error)
            }

            fn upsert(&mut self, table: &str, columns: &[&str], values: Vec<Value>) -> Result<(), SqlError> {
                let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
                let values: Vec<host::Value> = values.into_iter().map(to_host).collect();
                host::upsert(table, &columns, &values).map_err(from_host_error)
            }

            fn update(
                &mut self,
                table: &str,
                assignments: Vec<Assignment>,
                filter: Vec<Condition>,
            ) -> Result<u64, SqlError> {
                let assignments: Vec<host::Assignment> = assignments
                    .into_iter()
                    .map(|a| host::Assignment {
                        column: a.column,
                        change: match a.change {
                            Change::Set(v) => host::Change::Set(to_host(v)),
                            Change::Add(v) => host::Change::Add(to_host(v)),
                        },
                    })
                    .collect();
                let filter: Vec<host::Condition> = filter.into_iter().map(to_host_condition).collect();
                host::update(table, &assignments, &filter).map_err(from_host_error)
            }

            fn delete(&mut self, table: &str, filter: Vec<Condition>) -> Result<u64, SqlError> {
                let filter: Vec<host::Condition> = filter.into_iter().map(to_host_condition).collect();
                host::delete(table, &filter).map_err(from_host_error)
            }

            fn select(&mut self, query: Select) -> Result<Rows, SqlError> {
                let selection = host::Selection {
                    table: query.table,
                    columns: query.columns,
                    filter: query.filter.into_iter().map(to_host_condition).collect(),
                    order_by: query
                        .order_by
                        .into_iter()
                        .map(|o| host::Ordering { column: o.column, descending: o.descending })
                        .collect(),
                    limit: query.limit,
                };
                let rows = host::select(&selection).map_err(from_host_error)?;
                Ok(Rows {
                    columns: rows.columns,
                    rows: rows.rows.into_iter().map(|r| r.into_iter().map(from_host).collect()).collect(),
                })
            }
        }

        fn to_host(value: Value) -> host::Value {
            match value {
                Value::Null => host::Value::Null,
                Value::Integer(n) => host::Value::Integer(n),
                Value::Decimal(s) => host::Value::Decimal(s),
                Value::Text(s) => host::Value::Text(s),
                Value::Boolean(b) => host::Value::Boolean(b),
            }
        }

        fn from_host(value: host::Value) -> Value {
            match value {
                host::Value::Null => Value::Null,
                host::Value::Integer(n) => Value::Integer(n),
                host::Value::Decimal(s) => Value::Decimal(s),
                host::Value::Text(s) => Value::Text(s),
                host::Value::Boolean(b) => Value::Boolean(b),
            }
        }

        fn to_host_condition(c: Condition) -> host::Condition {
            host::Condition {
                column: c.column,
                comparison: match c.comparison {
                    Comparison::Eq => host::Comparison::Eq,
                    Comparison::Ne => host::Comparison::Ne,
                    Comparison::Lt => host::Comparison::Lt,
                    Comparison::Le => host::Comparison::Le,
                    Comparison::Gt => host::Comparison::Gt,
                    Comparison::Ge => host::Comparison::Ge,
                },
                value: to_host(c.value),
            }
        }

        fn from_host_error(e: host::SqlError) -> SqlError {
            match e {
                host::SqlError::UnknownTable(m) => SqlError::UnknownTable(m),
                host::SqlError::UnknownColumn(m) => SqlError::UnknownColumn(m),
                host::SqlError::ReadOnly => SqlError::ReadOnly,
                host::SqlError::Constraint(m) => SqlError::Constraint(m),
                host::SqlError::InvalidValue(m) => SqlError::InvalidValue(m),
                host::SqlError::Backend(m) => SqlError::Backend(m),
            }
        }
    };
}

/// `sluice:plugin@0.1.0` (`export_projection_v1!`).
pub mod v1 {
    use crate::bindings::exports::sluice::plugin::projection as wit;
    use crate::bindings::sluice::plugin::sql as host;
    use crate::bindings::sluice::plugin::types;
    glue!();
}

/// `sluice:plugin@0.2.0` (`export_projection!`).
pub mod v2 {
    use crate::bindings_v2::exports::sluice::plugin::projection as wit;
    use crate::bindings_v2::sluice::plugin::sql as host;
    use crate::bindings_v2::sluice::plugin::types;
    glue!();
}
