//! Native tests for projections: an in-memory [`MemoryDb`] that keeps the host's rules (only
//! declared tables and columns, primary keys unique, decimals exact with 2 fractional digits,
//! read-only while querying), and a given/when/then harness.
//!
//! ```ignore
//! ProjectionTest::<Accounts>::given(&[("AccountOpenedEvent", r#"{...}"#)])
//!     .query("byId", &[("id", "a1")])
//!     .then_expect_status(200);
//! ```

use std::cmp::Ordering as CmpOrdering;
use std::marker::PhantomData;

use crate::projection::{Answer, ColumnType, Event, Params, Projection, QueryError, Table};
use crate::sql::{Assignment, Change, Comparison, Condition, Db, Rows, Select, SqlError, Value};

/// An in-memory read store for one projection.
#[derive(Debug, Clone)]
pub struct MemoryDb {
    tables: Vec<(Table, Vec<Vec<Value>>)>,
    read_only: bool,
}

impl MemoryDb {
    pub fn new(tables: Vec<Table>) -> Self {
        Self { tables: tables.into_iter().map(|t| (t, Vec::new())).collect(), read_only: false }
    }

    /// Refuse writes, as the host does while a query runs.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    /// All rows of a table, in declared column order.
    pub fn rows(&self, table: &str) -> Vec<Vec<Value>> {
        self.tables.iter().find(|(t, _)| t.name == table).map(|(_, rows)| rows.clone()).unwrap_or_default()
    }

    fn table(&mut self, name: &str) -> Result<&mut (Table, Vec<Vec<Value>>), SqlError> {
        self.tables
            .iter_mut()
            .find(|(t, _)| t.name == name)
            .ok_or_else(|| SqlError::UnknownTable(format!("{name} is not a table of this projection")))
    }

    fn writable(&self) -> Result<(), SqlError> {
        if self.read_only { Err(SqlError::ReadOnly) } else { Ok(()) }
    }

    fn write_row(&mut self, table: &str, columns: &[&str], values: Vec<Value>, replace: bool) -> Result<(), SqlError> {
        self.writable()?;
        let (def, rows) = self.table(table)?;
        if columns.len() != values.len() {
            return Err(SqlError::InvalidValue(format!("{} columns but {} values", columns.len(), values.len())));
        }
        let mut row = vec![Value::Null; def.columns.len()];
        for (column, value) in columns.iter().zip(values) {
            let index = column_index(def, column)?;
            row[index] = normalise(def.columns[index].column_type, value)?;
        }
        for (index, column) in def.columns.iter().enumerate() {
            if !column.nullable && row[index] == Value::Null {
                return Err(SqlError::InvalidValue(format!("{}.{} may not be null", def.name, column.name)));
            }
        }
        let key: Vec<usize> =
            def.primary_key.iter().filter_map(|k| def.columns.iter().position(|c| &c.name == k)).collect();
        let existing = rows.iter().position(|r| key.iter().all(|&i| r[i] == row[i]));
        match (existing, replace) {
            (Some(_), false) => Err(SqlError::Constraint(format!("duplicate primary key in {}", def.name))),
            (Some(i), true) => {
                rows[i] = row;
                Ok(())
            }
            (None, _) => {
                rows.push(row);
                Ok(())
            }
        }
    }
}

fn column_index(table: &Table, column: &str) -> Result<usize, SqlError> {
    table
        .columns
        .iter()
        .position(|c| c.name == column)
        .ok_or_else(|| SqlError::UnknownColumn(format!("{}.{column}", table.name)))
}

/// Decimals as hundredths, exactly.
fn cents(text: &str) -> Result<i128, SqlError> {
    let invalid = || SqlError::InvalidValue(format!("{text:?} is not a decimal with at most 2 fractional digits"));
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction = fraction.trim_end_matches('0');
    if whole.is_empty() || fraction.len() > 2 || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let whole: i128 = whole.parse().map_err(|_| invalid())?;
    let fraction: i128 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
    let value = whole * 100 + fraction;
    Ok(if negative { -value } else { value })
}

fn from_cents(value: i128) -> String {
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", value.abs() / 100, value.abs() % 100)
}

fn normalise(column_type: ColumnType, value: Value) -> Result<Value, SqlError> {
    match (column_type, value) {
        (_, Value::Null) => Ok(Value::Null),
        (ColumnType::Decimal, Value::Decimal(s)) => Ok(Value::Decimal(from_cents(cents(&s)?))),
        (ColumnType::Decimal, Value::Integer(n)) => Ok(Value::Decimal(from_cents(i128::from(n) * 100))),
        (ColumnType::Integer, v @ Value::Integer(_)) | (ColumnType::Boolean, v @ Value::Boolean(_)) => Ok(v),
        (ColumnType::Text | ColumnType::Timestamp, v @ Value::Text(_)) => Ok(v),
        (t, v) => Err(SqlError::InvalidValue(format!("{v:?} does not fit a {t:?} column"))),
    }
}

fn compare(a: &Value, b: &Value) -> Option<CmpOrdering> {
    match (a, b) {
        (Value::Decimal(x), Value::Decimal(y)) => Some(cents(x).ok()?.cmp(&cents(y).ok()?)),
        (Value::Integer(x), Value::Integer(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Boolean(x), Value::Boolean(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn matches(table: &Table, row: &[Value], filter: &[Condition]) -> Result<bool, SqlError> {
    for condition in filter {
        let index = column_index(table, &condition.column)?;
        let wanted = normalise(table.columns[index].column_type, condition.value.clone())?;
        let ordering = compare(&row[index], &wanted);
        let holds = match condition.comparison {
            Comparison::Eq => ordering == Some(CmpOrdering::Equal),
            Comparison::Ne => ordering.is_some_and(|o| o != CmpOrdering::Equal),
            Comparison::Lt => ordering == Some(CmpOrdering::Less),
            Comparison::Le => ordering.is_some_and(|o| o != CmpOrdering::Greater),
            Comparison::Gt => ordering == Some(CmpOrdering::Greater),
            Comparison::Ge => ordering.is_some_and(|o| o != CmpOrdering::Less),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Db for MemoryDb {
    fn insert(&mut self, table: &str, columns: &[&str], values: Vec<Value>) -> Result<(), SqlError> {
        self.write_row(table, columns, values, false)
    }

    fn upsert(&mut self, table: &str, columns: &[&str], values: Vec<Value>) -> Result<(), SqlError> {
        self.write_row(table, columns, values, true)
    }

    fn update(&mut self, table: &str, assignments: Vec<Assignment>, filter: Vec<Condition>) -> Result<u64, SqlError> {
        self.writable()?;
        let (def, rows) = self.table(table)?;
        let mut changed = 0;
        for row in rows.iter_mut() {
            if !matches(def, row, &filter)? {
                continue;
            }
            for assignment in &assignments {
                let index = column_index(def, &assignment.column)?;
                let column_type = def.columns[index].column_type;
                row[index] = match &assignment.change {
                    Change::Set(v) => normalise(column_type, v.clone())?,
                    Change::Add(v) => match (&row[index], normalise(column_type, v.clone())?) {
                        (Value::Decimal(a), Value::Decimal(b)) => Value::Decimal(from_cents(cents(a)? + cents(&b)?)),
                        (Value::Integer(a), Value::Integer(b)) => Value::Integer(a + b),
                        (a, b) => return Err(SqlError::InvalidValue(format!("cannot add {b:?} to {a:?}"))),
                    },
                };
            }
            changed += 1;
        }
        Ok(changed)
    }

    fn delete(&mut self, table: &str, filter: Vec<Condition>) -> Result<u64, SqlError> {
        self.writable()?;
        let (def, rows) = self.table(table)?;
        let before = rows.len();
        let mut kept = Vec::with_capacity(before);
        for row in rows.drain(..) {
            if !matches(def, &row, &filter)? {
                kept.push(row);
            }
        }
        *rows = kept;
        Ok((before - rows.len()) as u64)
    }

    fn select(&mut self, query: Select) -> Result<Rows, SqlError> {
        let (def, rows) = self.table(&query.table)?;
        let columns: Vec<String> =
            if query.columns.is_empty() { def.columns.iter().map(|c| c.name.clone()).collect() } else { query.columns };
        let indexes = columns.iter().map(|c| column_index(def, c)).collect::<Result<Vec<_>, _>>()?;
        let mut selected = Vec::new();
        for row in rows.iter() {
            if matches(def, row, &query.filter)? {
                selected.push(row.clone());
            }
        }
        for ordering in query.order_by.iter().rev() {
            let index = column_index(def, &ordering.column)?;
            selected.sort_by(|a, b| {
                let o = compare(&a[index], &b[index]).unwrap_or(CmpOrdering::Equal);
                if ordering.descending { o.reverse() } else { o }
            });
        }
        if let Some(limit) = query.limit {
            selected.truncate(limit as usize);
        }
        let rows = selected.into_iter().map(|row| indexes.iter().map(|&i| row[i].clone()).collect()).collect();
        Ok(Rows { columns, rows })
    }
}

/// A given/when/then test of one projection.
pub struct ProjectionTest<P: Projection> {
    db: MemoryDb,
    position: u64,
    projection: PhantomData<P>,
}

impl<P: Projection> ProjectionTest<P> {
    /// Start from empty tables and apply `events` (type, JSON data) in order, all on one
    /// aggregate id per event's `id` field when present.
    #[track_caller]
    pub fn given(events: &[(&str, &str)]) -> Self {
        let mut test = Self { db: MemoryDb::new(P::manifest().tables), position: 0, projection: PhantomData };
        for (event_type, data) in events {
            test = test.and(event_type, data);
        }
        test
    }

    /// Apply one more event.
    #[track_caller]
    pub fn and(mut self, event_type: &str, data: &str) -> Self {
        if let Err(e) = self.apply(event_type, data) {
            panic!("handling {event_type} failed: {e}");
        }
        self
    }

    /// Apply one event and return the handler's result (for refusal tests).
    pub fn apply(&mut self, event_type: &str, data: &str) -> Result<(), String> {
        self.position += 1;
        let aggregate_id = serde_json::from_str::<serde_json::Value>(data)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let event = Event {
            aggregate_type: String::new(),
            aggregate_id,
            version: self.position,
            global_position: self.position,
            event_type: event_type.to_owned(),
            schema_version: 1,
            data: data.to_owned(),
            recorded_at: "2026-01-02T03:04:05Z".to_owned(),
        };
        if !P::manifest().subscriptions.iter().any(|s| s == event_type) {
            return Ok(());
        }
        P::handle(&mut self.db, &event)
    }

    /// Run a query, read-only as on the host.
    pub fn query(&mut self, name: &str, params: &[(&str, &str)]) -> QueryOutcome {
        self.db.set_read_only(true);
        let params = Params(params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        let result = P::query(&mut self.db, name, &params);
        self.db.set_read_only(false);
        QueryOutcome { result }
    }

    pub fn db(&self) -> &MemoryDb {
        &self.db
    }
}

/// A query's result under test.
#[derive(Debug)]
pub struct QueryOutcome {
    pub result: Result<Answer, QueryError>,
}

impl QueryOutcome {
    /// The answer's status.
    #[track_caller]
    pub fn then_expect_status(self, status: u16) -> Self {
        match &self.result {
            Ok(answer) => assert_eq!(answer.status, status, "answer {answer:?}"),
            Err(e) => panic!("expected status {status}, got error {e:?}"),
        }
        self
    }

    /// The answer's body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        match &self.result {
            Ok(answer) => serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("body {:?}: {e}", answer.body)),
            Err(e) => panic!("expected an answer, got error {e:?}"),
        }
    }
}
