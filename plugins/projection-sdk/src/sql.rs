//! Structured statements over the projection's own tables. The host turns them into the SQL of
//! the configured read store; [`crate::testing::MemoryDb`] runs them in memory.

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Integer(i64),
    /// Exact decimal text, e.g. "10.25".
    Decimal(String),
    Text(String),
    Boolean(bool),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Self {
        Self::Text(s.into())
    }
    pub fn decimal(s: impl Into<String>) -> Self {
        Self::Decimal(s.into())
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) | Self::Decimal(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Integer(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `column <comparison> value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub column: String,
    pub comparison: Comparison,
    pub value: Value,
}

impl Condition {
    pub fn new(column: &str, comparison: Comparison, value: Value) -> Self {
        Self { column: column.to_owned(), comparison, value }
    }
    pub fn eq(column: &str, value: Value) -> Self {
        Self::new(column, Comparison::Eq, value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(Value),
    Add(Value),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub column: String,
    pub change: Change,
}

impl Assignment {
    pub fn set(column: &str, value: Value) -> Self {
        Self { column: column.to_owned(), change: Change::Set(value) }
    }
    pub fn add(column: &str, value: Value) -> Self {
        Self { column: column.to_owned(), change: Change::Add(value) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordering {
    pub column: String,
    pub descending: bool,
}

/// A select, built fluently: `Select::from("accounts").filter(Condition::eq("id", id))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub table: String,
    pub columns: Vec<String>,
    pub filter: Vec<Condition>,
    pub order_by: Vec<Ordering>,
    pub limit: Option<u32>,
}

impl Select {
    pub fn from(table: &str) -> Self {
        Self { table: table.to_owned(), columns: Vec::new(), filter: Vec::new(), order_by: Vec::new(), limit: None }
    }
    pub fn columns(mut self, columns: &[&str]) -> Self {
        self.columns = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }
    pub fn filter(mut self, condition: Condition) -> Self {
        self.filter.push(condition);
        self
    }
    pub fn order_by(mut self, column: &str) -> Self {
        self.order_by.push(Ordering { column: column.to_owned(), descending: false });
        self
    }
    pub fn order_by_desc(mut self, column: &str) -> Self {
        self.order_by.push(Ordering { column: column.to_owned(), descending: true });
        self
    }
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Selected rows; values in `columns` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each row as (column name, value) pairs.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.rows.iter().map(|values| Record { columns: &self.columns, values })
    }
}

/// One row with access by column name.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Record<'a> {
    pub fn get(&self, column: &str) -> Option<&'a Value> {
        self.columns.iter().position(|c| c == column).and_then(|i| self.values.get(i))
    }
    pub fn text(&self, column: &str) -> String {
        self.get(column).and_then(Value::as_str).unwrap_or_default().to_owned()
    }
    pub fn integer(&self, column: &str) -> i64 {
        self.get(column).and_then(Value::as_i64).unwrap_or_default()
    }
    pub fn boolean(&self, column: &str) -> bool {
        self.get(column).and_then(Value::as_bool).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlError {
    UnknownTable(String),
    UnknownColumn(String),
    ReadOnly,
    Constraint(String),
    InvalidValue(String),
    Backend(String),
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownTable(m) => write!(f, "unknown table: {m}"),
            Self::UnknownColumn(m) => write!(f, "unknown column: {m}"),
            Self::ReadOnly => write!(f, "the read store is read-only during a query"),
            Self::Constraint(m) => write!(f, "constraint violated: {m}"),
            Self::InvalidValue(m) => write!(f, "invalid value: {m}"),
            Self::Backend(m) => write!(f, "read store failure: {m}"),
        }
    }
}

impl std::error::Error for SqlError {}

/// The projection's view of its tables.
pub trait Db {
    fn insert(&mut self, table: &str, columns: &[&str], values: Vec<Value>) -> Result<(), SqlError>;
    /// Insert, or replace the non-key columns of the row with the same primary key.
    fn upsert(&mut self, table: &str, columns: &[&str], values: Vec<Value>) -> Result<(), SqlError>;
    fn update(&mut self, table: &str, assignments: Vec<Assignment>, filter: Vec<Condition>) -> Result<u64, SqlError>;
    fn delete(&mut self, table: &str, filter: Vec<Condition>) -> Result<u64, SqlError>;
    fn select(&mut self, query: Select) -> Result<Rows, SqlError>;
}
