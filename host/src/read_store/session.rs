//! Sessions: structured statements ([`super::statement`]) on one projection's own tables, turned
//! into the read store's SQL. A table that is not the projection's is refused by name — the
//! caller never names a physical table, so it has no way to reach another projection's rows.
//!
//! Statements are synchronous (guest calls run on a blocking thread); each one is executed with
//! `Handle::block_on` on the session's transaction (writes) or pool (reads), or called in place
//! on a rebuild's staging database ([`super::staging`]).

use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::schema::TableSchema;
use super::statement::{Assignment, Change, Comparison, Condition, Rows, Selection, SqlError, Value};
use super::{ColumnType, Dialect, ProjectionSchema, ReadStore};

/// Largest decimal the read models hold: 15 integer digits, 2 fractional (DECIMAL(17,2)).
const DECIMAL_LIMIT: i64 = 1_000_000_000_000_000;

enum Access {
    /// Writes join this transaction (which also advances the position).
    Write(Transaction<'static, Any>),
    /// Reads only, from the pool.
    Read(AnyPool),
    /// Writes called in place on a SQLite connection, inside a transaction the caller opened:
    /// a rebuild's staging database, or a live batch on a SQLite read store
    /// ([`super::direct`]); `.1` names it in failures.
    Staging(rusqlite::Connection, &'static str),
}

/// One call's access to a projection's tables.
pub struct SqlSession {
    handle: tokio::runtime::Handle,
    dialect: Dialect,
    schema: Arc<ProjectionSchema>,
    generation: i64,
    access: Access,
    backend_failure: Option<String>,
}

impl SqlSession {
    /// A write session on `tx` for the tables of `generation`.
    pub fn write(
        store: &ReadStore,
        schema: Arc<ProjectionSchema>,
        generation: i64,
        tx: Transaction<'static, Any>,
    ) -> Self {
        Self {
            handle: tokio::runtime::Handle::current(),
            dialect: store.dialect(),
            schema,
            generation,
            access: Access::Write(tx),
            backend_failure: None,
        }
    }

    /// A read-only session for queries.
    pub fn read(store: &ReadStore, schema: Arc<ProjectionSchema>, generation: i64) -> Self {
        Self {
            handle: tokio::runtime::Handle::current(),
            dialect: store.dialect(),
            schema,
            generation,
            access: Access::Read(store.pool().clone()),
            backend_failure: None,
        }
    }

    /// A write session on a staging database (SQLite), for the tables of `generation`.
    pub fn staging(schema: Arc<ProjectionSchema>, generation: i64, conn: rusqlite::Connection) -> Self {
        Self::in_place(schema, generation, conn, "staging database")
    }

    /// A write session on a SQLite read store's own file, called in place
    /// ([`super::direct`]), for the tables of `generation`.
    pub fn direct(schema: Arc<ProjectionSchema>, generation: i64, conn: rusqlite::Connection) -> Self {
        Self::in_place(schema, generation, conn, "read store")
    }

    /// A write session called in place on `conn` (database `what`, as failures name it).
    fn in_place(
        schema: Arc<ProjectionSchema>,
        generation: i64,
        conn: rusqlite::Connection,
        what: &'static str,
    ) -> Self {
        Self {
            handle: tokio::runtime::Handle::current(),
            dialect: Dialect::Sqlite,
            schema,
            generation,
            access: Access::Staging(conn, what),
            backend_failure: None,
        }
    }

    /// The transaction of a write session, to commit or roll back.
    pub fn into_transaction(self) -> Option<Transaction<'static, Any>> {
        match self.access {
            Access::Write(tx) => Some(tx),
            Access::Read(_) | Access::Staging(..) => None,
        }
    }

    /// The connection of a staging session, to commit or roll back.
    pub fn into_staging(self) -> Option<rusqlite::Connection> {
        match self.access {
            Access::Staging(conn, _) => Some(conn),
            Access::Write(_) | Access::Read(_) => None,
        }
    }

    /// The read store failure seen during the call, if any (transient, not the plugin's fault).
    pub fn backend_failure(&self) -> Option<&str> {
        self.backend_failure.as_deref()
    }

    fn table(&self, name: &str) -> Result<(TableSchema, String), SqlError> {
        match self.schema.table(name) {
            Some(table) => Ok((table.clone(), self.schema.physical_name(name, self.generation))),
            None => {
                let own: Vec<&str> = self.schema.tables.iter().map(|t| t.name.as_str()).collect();
                Err(SqlError::UnknownTable(format!(
                    "{name:?} is not a table of projection {} (its tables: {})",
                    self.schema.projection,
                    own.join(", ")
                )))
            }
        }
    }

    fn writable(&self) -> Result<(), SqlError> {
        match self.access {
            Access::Write(_) | Access::Staging(..) => Ok(()),
            Access::Read(_) => Err(SqlError::ReadOnly),
        }
    }

    /// Run a statement that returns no rows.
    fn execute(&mut self, sql: &str, binds: Vec<Bind>) -> Result<u64, SqlError> {
        let result = match &mut self.access {
            Access::Read(_) => return Err(SqlError::ReadOnly),
            Access::Staging(conn, what) => {
                let what = *what;
                return staged_execute(conn, sql, &binds).map_err(|e| self.classify_staged(what, e));
            }
            Access::Write(tx) => {
                let handle = self.handle.clone();
                handle.block_on(async { bind_all(sqlx::query(sql), binds).execute(&mut **tx).await })
            }
        };
        match result {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Run a query whose columns have `types`, and read its rows as values.
    fn fetch(&mut self, sql: &str, binds: Vec<Bind>, types: &[ColumnType]) -> Result<Vec<Vec<Value>>, SqlError> {
        let handle = self.handle.clone();
        let dialect = self.dialect;
        let fetched = match &mut self.access {
            Access::Staging(conn, what) => {
                let what = *what;
                return staged_fetch(conn, sql, &binds, types).map_err(|e| self.classify_staged(what, e));
            }
            Access::Write(tx) => {
                handle.block_on(async { bind_all(sqlx::query(sql), binds).fetch_all(&mut **tx).await })
            }
            Access::Read(pool) => handle.block_on(async { bind_all(sqlx::query(sql), binds).fetch_all(&*pool).await }),
        };
        let fetched = fetched.map_err(|e| self.classify(e))?;
        let mut rows = Vec::with_capacity(fetched.len());
        for row in &fetched {
            let mut values = Vec::with_capacity(types.len());
            for (i, column_type) in types.iter().enumerate() {
                values.push(read_value(dialect, row, i, *column_type).map_err(|e| self.classify(e))?);
            }
            rows.push(values);
        }
        Ok(rows)
    }

    fn classify_staged(&mut self, what: &str, error: rusqlite::Error) -> SqlError {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => SqlError::Constraint(error.to_string()),
            Some(rusqlite::ErrorCode::TooBig | rusqlite::ErrorCode::TypeMismatch) => {
                SqlError::InvalidValue(error.to_string())
            }
            _ => {
                let message = format!("{what}: {error}");
                self.backend_failure = Some(message.clone());
                SqlError::Backend(message)
            }
        }
    }

    fn classify(&mut self, error: sqlx::Error) -> SqlError {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => SqlError::Constraint(db.message().to_owned()),
            sqlx::Error::Database(db) if db.is_check_violation() || db.is_foreign_key_violation() => {
                SqlError::Constraint(db.message().to_owned())
            }
            sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::NotNullViolation => {
                SqlError::Constraint(db.message().to_owned())
            }
            // The value the plugin wrote does not fit (too long, out of range, not representable):
            // its failure, which parks the event, not the store's, which would be retried forever.
            sqlx::Error::Database(db) if is_data_error(self.dialect, db.code().as_deref()) => {
                SqlError::InvalidValue(db.message().to_owned())
            }
            _ => {
                let message = error.to_string();
                self.backend_failure = Some(message.clone());
                SqlError::Backend(message)
            }
        }
    }

    fn conditions(
        &self,
        table: &TableSchema,
        filter: &[Condition],
        first: usize,
    ) -> Result<(String, Vec<Bind>), SqlError> {
        let mut clauses = Vec::with_capacity(filter.len());
        let mut binds = Vec::with_capacity(filter.len());
        for (i, condition) in filter.iter().enumerate() {
            let column_type = column_type(table, &condition.column)?;
            let operator = match condition.comparison {
                Comparison::Eq => "=",
                Comparison::Ne => "<>",
                Comparison::Lt => "<",
                Comparison::Le => "<=",
                Comparison::Gt => ">",
                Comparison::Ge => ">=",
            };
            if matches!(condition.value, Value::Null) {
                let test = match condition.comparison {
                    Comparison::Eq => "IS NULL",
                    Comparison::Ne => "IS NOT NULL",
                    _ => return Err(SqlError::InvalidValue("null can only be compared with eq or ne".into())),
                };
                clauses.push(format!("{} {test}", self.dialect.quote(&condition.column)));
                continue;
            }
            let n = first + binds.len();
            clauses.push(format!(
                "{} {operator} {}",
                self.dialect.quote(&condition.column),
                self.dialect.param(n, column_type)
            ));
            binds.push(to_bind(self.dialect, column_type, &condition.value, &condition.column)?);
            let _ = i;
        }
        let sql = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
        Ok((sql, binds))
    }

    fn write_row(&mut self, table: &str, columns: &[String], values: &[Value], upsert: bool) -> Result<(), SqlError> {
        self.writable()?;
        let (schema, physical) = self.table(table)?;
        if columns.len() != values.len() || columns.is_empty() {
            return Err(SqlError::InvalidValue(format!("{} columns but {} values", columns.len(), values.len())));
        }
        let mut binds = Vec::with_capacity(values.len());
        let mut params = Vec::with_capacity(values.len());
        for (i, (column, value)) in columns.iter().zip(values).enumerate() {
            let column_type = column_type(&schema, column)?;
            if columns[..i].contains(column) {
                return Err(SqlError::InvalidValue(format!("column {column} is given twice")));
            }
            binds.push(to_bind(self.dialect, column_type, value, column)?);
            params.push(self.dialect.param(i + 1, column_type));
        }
        let quoted: Vec<String> = columns.iter().map(|c| self.dialect.quote(c)).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.dialect.quote(&physical),
            quoted.join(", "),
            params.join(", ")
        );
        if upsert {
            if let Some(missing) = schema.primary_key.iter().find(|k| !columns.contains(k)) {
                return Err(SqlError::InvalidValue(format!("an upsert must give the key column {missing}")));
            }
            let others: Vec<String> = columns.iter().filter(|c| !schema.primary_key.contains(c)).cloned().collect();
            sql.push_str(&self.dialect.upsert_tail(&schema.primary_key, &others));
        }
        self.execute(&sql, binds).map(|_| ())
    }
}

/// A value ready to bind, typed as the column wants it.
pub(crate) enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

pub(crate) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Int(v) => query.bind(v),
            Bind::Text(v) => query.bind(v),
            Bind::Bool(v) => query.bind(v),
        };
    }
    query
}

fn column_type(table: &TableSchema, column: &str) -> Result<ColumnType, SqlError> {
    table
        .column(column)
        .map(|c| c.column_type)
        .ok_or_else(|| SqlError::UnknownColumn(format!("{} has no column {column:?}", table.name)))
}

/// A decimal with at most 2 fractional digits and 15 integer digits.
fn parse_decimal(text: &str) -> Result<Decimal, SqlError> {
    let invalid = || SqlError::InvalidValue(format!("{text:?} is not a decimal with at most 2 fractional digits"));
    let value = Decimal::from_str(text.trim()).map_err(|_| invalid())?.normalize();
    if value.scale() > 2 || value.abs() >= Decimal::from(DECIMAL_LIMIT) {
        return Err(invalid());
    }
    Ok(value)
}

pub(crate) fn to_bind(
    dialect: Dialect,
    column_type: ColumnType,
    value: &Value,
    column: &str,
) -> Result<Bind, SqlError> {
    let mismatch = || SqlError::InvalidValue(format!("{value:?} does not fit column {column} ({column_type:?})"));
    Ok(match (column_type, value) {
        (ColumnType::Integer, Value::Null) => Bind::Int(None),
        (ColumnType::Boolean, Value::Null) => Bind::Bool(None),
        (ColumnType::Decimal, Value::Null) if dialect == Dialect::Sqlite => Bind::Int(None),
        (_, Value::Null) => Bind::Text(None),
        (ColumnType::Integer, Value::Integer(n)) => Bind::Int(Some(*n)),
        (ColumnType::Boolean, Value::Boolean(b)) => Bind::Bool(Some(*b)),
        // PostgreSQL cannot hold NUL in text; refused on every store so all behave the same.
        (ColumnType::Text | ColumnType::Timestamp, Value::Text(s)) if s.contains('\0') => {
            return Err(SqlError::InvalidValue(format!(
                "the text for column {column} contains a NUL character (U+0000), which no read store can hold"
            )));
        }
        // MySQL keeps timestamps in 64 characters; an RFC 3339 time needs far fewer.
        (ColumnType::Timestamp, Value::Text(s)) if s.chars().count() > 64 => {
            return Err(SqlError::InvalidValue(format!(
                "the timestamp for column {column} is longer than 64 characters, which is no RFC 3339 time"
            )));
        }
        (ColumnType::Text | ColumnType::Timestamp, Value::Text(s)) => Bind::Text(Some(s.clone())),
        (ColumnType::Decimal, Value::Decimal(_) | Value::Integer(_)) => {
            let decimal = match value {
                Value::Integer(n) => parse_decimal(&n.to_string())?,
                Value::Decimal(s) => parse_decimal(s)?,
                _ => return Err(mismatch()),
            };
            if dialect == Dialect::Sqlite {
                // Hundredths as an integer: exact, and ordered correctly by SQLite.
                let cents = (decimal * Decimal::from(100)).trunc();
                Bind::Int(Some(i64::try_from(cents).map_err(|_| mismatch())?))
            } else {
                let mut fixed = decimal;
                fixed.rescale(2);
                Bind::Text(Some(fixed.to_string()))
            }
        }
        _ => return Err(mismatch()),
    })
}

/// Whether a database error code says the data was refused: SQLSTATE class 22 ("data
/// exception": string too long, numeric out of range, bad encoding) on PostgreSQL and MariaDB;
/// `SQLITE_TOOBIG` (18) and `SQLITE_MISMATCH` (20) on SQLite.
fn is_data_error(dialect: Dialect, code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    match dialect {
        Dialect::Postgres | Dialect::MySql => code.len() == 5 && code.starts_with("22"),
        Dialect::Sqlite => matches!(code, "18" | "20"),
    }
}

fn read_value(dialect: Dialect, row: &AnyRow, index: usize, column_type: ColumnType) -> Result<Value, sqlx::Error> {
    Ok(match column_type {
        ColumnType::Integer => row.try_get::<Option<i64>, _>(index)?.map_or(Value::Null, Value::Integer),
        ColumnType::Boolean => row.try_get::<Option<i64>, _>(index)?.map_or(Value::Null, |n| Value::Boolean(n != 0)),
        ColumnType::Decimal if dialect == Dialect::Sqlite => row
            .try_get::<Option<i64>, _>(index)?
            .map_or(Value::Null, |cents| Value::Decimal(Decimal::new(cents, 2).to_string())),
        ColumnType::Decimal => read_text(row, index)?.map_or(Value::Null, |text| {
            // Normalise what the server prints ("60.00", "60.0000") to two places.
            match Decimal::from_str(&text) {
                Ok(mut d) => {
                    d.rescale(2);
                    Value::Decimal(d.to_string())
                }
                Err(_) => Value::Decimal(text),
            }
        }),
        ColumnType::Text | ColumnType::Timestamp => read_text(row, index)?.map_or(Value::Null, Value::Text),
    })
}

fn staged_params(binds: &[Bind]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    binds
        .iter()
        .map(|bind| match bind {
            Bind::Int(v) => v.map_or(V::Null, V::Integer),
            Bind::Text(v) => v.clone().map_or(V::Null, V::Text),
            Bind::Bool(v) => v.map_or(V::Null, |b| V::Integer(i64::from(b))),
        })
        .collect()
}

fn staged_execute(conn: &rusqlite::Connection, sql: &str, binds: &[Bind]) -> rusqlite::Result<u64> {
    let mut statement = conn.prepare_cached(sql)?;
    let changed = statement.execute(rusqlite::params_from_iter(staged_params(binds)))?;
    Ok(changed as u64)
}

/// Rows of the staging database, whose columns are typed as the SQLite dialect stores them.
pub(crate) fn staged_fetch(
    conn: &rusqlite::Connection,
    sql: &str,
    binds: &[Bind],
    types: &[ColumnType],
) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(staged_params(binds)))?;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        let mut row_values = Vec::with_capacity(types.len());
        for (i, column_type) in types.iter().enumerate() {
            row_values.push(match column_type {
                ColumnType::Integer => row.get::<_, Option<i64>>(i)?.map_or(Value::Null, Value::Integer),
                ColumnType::Boolean => row.get::<_, Option<i64>>(i)?.map_or(Value::Null, |n| Value::Boolean(n != 0)),
                ColumnType::Decimal => row
                    .get::<_, Option<i64>>(i)?
                    .map_or(Value::Null, |cents| Value::Decimal(Decimal::new(cents, 2).to_string())),
                ColumnType::Text | ColumnType::Timestamp => {
                    row.get::<_, Option<String>>(i)?.map_or(Value::Null, Value::Text)
                }
            });
        }
        values.push(row_values);
    }
    Ok(values)
}

/// A text column. MySQL and MariaDB describe `TEXT` columns as BLOBs, which sqlx's `Any` driver
/// hands over as bytes; they hold UTF-8 all the same.
pub(crate) fn read_text(row: &AnyRow, index: usize) -> Result<Option<String>, sqlx::Error> {
    use sqlx::{Column, TypeInfo};
    if row.try_column(index)?.type_info().name() != "BLOB" {
        return row.try_get::<Option<String>, _>(index);
    }
    row.try_get::<Option<Vec<u8>>, _>(index)?
        .map(|bytes| String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// The statements a projection may run, each on its own tables only.
impl SqlSession {
    /// Insert one row.
    pub fn insert(&mut self, table: &str, columns: &[String], values: &[Value]) -> Result<(), SqlError> {
        self.write_row(table, columns, values, false)
    }

    /// Insert one row, or update the row with its key.
    pub fn upsert(&mut self, table: &str, columns: &[String], values: &[Value]) -> Result<(), SqlError> {
        self.write_row(table, columns, values, true)
    }

    /// Change the rows that match `filter`; returns how many.
    pub fn update(&mut self, table: &str, assignments: &[Assignment], filter: &[Condition]) -> Result<u64, SqlError> {
        let session = self;
        session.writable()?;
        let (schema, physical) = session.table(table)?;
        if assignments.is_empty() {
            return Err(SqlError::InvalidValue("an update needs at least one assignment".into()));
        }
        let d = session.dialect;
        let mut sets = Vec::with_capacity(assignments.len());
        let mut binds = Vec::with_capacity(assignments.len() + filter.len());
        for assignment in assignments {
            let column_type = column_type(&schema, &assignment.column)?;
            let column = d.quote(&assignment.column);
            let n = binds.len() + 1;
            match &assignment.change {
                Change::Set(value) => {
                    sets.push(format!("{column} = {}", d.param(n, column_type)));
                    binds.push(to_bind(d, column_type, value, &assignment.column)?);
                }
                Change::Add(value) => {
                    if !matches!(column_type, ColumnType::Integer | ColumnType::Decimal) {
                        return Err(SqlError::InvalidValue(format!(
                            "cannot add to {} ({column_type:?})",
                            assignment.column
                        )));
                    }
                    sets.push(format!("{column} = {column} + {}", d.param(n, column_type)));
                    binds.push(to_bind(d, column_type, value, &assignment.column)?);
                }
            }
        }
        let (filter_sql, filter_binds) = session.conditions(&schema, filter, binds.len() + 1)?;
        binds.extend(filter_binds);
        let sql = format!("UPDATE {} SET {}{filter_sql}", d.quote(&physical), sets.join(", "));
        session.execute(&sql, binds)
    }

    /// Delete the rows that match `filter`; returns how many.
    pub fn delete(&mut self, table: &str, filter: &[Condition]) -> Result<u64, SqlError> {
        let session = self;
        session.writable()?;
        let (schema, physical) = session.table(table)?;
        let (filter_sql, binds) = session.conditions(&schema, filter, 1)?;
        let sql = format!("DELETE FROM {}{filter_sql}", session.dialect.quote(&physical));
        session.execute(&sql, binds)
    }

    /// Read rows.
    pub fn select(&mut self, query: Selection) -> Result<Rows, SqlError> {
        let session = self;
        let (schema, physical) = session.table(&query.table)?;
        let d = session.dialect;
        let columns: Vec<String> = if query.columns.is_empty() {
            schema.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            query.columns
        };
        let types = columns.iter().map(|c| column_type(&schema, c)).collect::<Result<Vec<_>, _>>()?;
        let reads: Vec<String> = columns.iter().zip(&types).map(|(c, t)| d.read(c, *t)).collect();
        let (filter_sql, binds) = session.conditions(&schema, &query.filter, 1)?;
        let mut sql = format!("SELECT {} FROM {}{filter_sql}", reads.join(", "), d.quote(&physical));
        if !query.order_by.is_empty() {
            let mut orders = Vec::with_capacity(query.order_by.len());
            for ordering in &query.order_by {
                column_type(&schema, &ordering.column)?;
                orders.push(format!("{}{}", d.quote(&ordering.column), if ordering.descending { " DESC" } else { "" }));
            }
            sql.push_str(&format!(" ORDER BY {}", orders.join(", ")));
        }
        if let Some(limit) = query.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let rows = session.fetch(&sql, binds, &types)?;
        Ok(Rows { columns, rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values one store would take and another refuse are refused by every store alike.
    #[test]
    fn data_errors_are_told_from_backend_failures() {
        // PostgreSQL's and MariaDB's SQLSTATE: value too long, numeric overflow, bad encoding.
        for dialect in [Dialect::Postgres, Dialect::MySql] {
            for code in ["22001", "22003", "22021", "22P02"] {
                assert!(is_data_error(dialect, Some(code)), "{dialect:?} {code}");
            }
            for code in ["08006", "40001", "57P01", "23505", "HY000"] {
                assert!(!is_data_error(dialect, Some(code)), "{dialect:?} {code}");
            }
        }
        assert!(is_data_error(Dialect::Sqlite, Some("18")) && is_data_error(Dialect::Sqlite, Some("20")));
        assert!(!is_data_error(Dialect::Sqlite, Some("5")) && !is_data_error(Dialect::Postgres, None));
    }

    #[test]
    fn values_some_store_cannot_hold_are_refused_on_all() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            let refused = |column_type, value: Value| {
                matches!(to_bind(dialect, column_type, &value, "c"), Err(SqlError::InvalidValue(_)))
            };
            assert!(refused(ColumnType::Text, Value::Text("a\0b".into())), "{dialect:?}: NUL");
            assert!(refused(ColumnType::Timestamp, Value::Text("9".repeat(65))), "{dialect:?}: long time");
            assert!(refused(ColumnType::Decimal, Value::Decimal("1000000000000000".into())), "{dialect:?}: 16 digits");
            assert!(!refused(ColumnType::Text, Value::Text("é".repeat(100_000))), "{dialect:?}: long text");
            assert!(!refused(ColumnType::Decimal, Value::Decimal("999999999999999.99".into())), "{dialect:?}: max");
        }
    }
}
