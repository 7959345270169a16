//! The read store's own statement types: what a projection may ask of its tables (insert,
//! upsert, update, delete, select) and the values it writes and reads. They mirror the WIT `sql`
//! interface, but belong here so the read store depends on nothing above it; the capability
//! ([`crate::capabilities::sql`]) converts between the two.

/// A value written to or read from a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Integer(i64),
    /// Decimal text, at most 2 fractional digits.
    Decimal(String),
    Text(String),
    Boolean(bool),
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

/// `column comparison value`; a filter is a conjunction of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub column: String,
    pub comparison: Comparison,
    pub value: Value,
}

/// What an update does to a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Set(Value),
    /// Add to a numeric column.
    Add(Value),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub column: String,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordering {
    pub column: String,
    pub descending: bool,
}

/// A read of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub table: String,
    /// Empty: every column.
    pub columns: Vec<String>,
    pub filter: Vec<Condition>,
    pub order_by: Vec<Ordering>,
    pub limit: Option<u32>,
}

/// What a selection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Why a statement was refused or failed. All but `Backend` are the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("unknown table: {0}")]
    UnknownTable(String),
    #[error("unknown column: {0}")]
    UnknownColumn(String),
    #[error("this call may only read")]
    ReadOnly,
    #[error("constraint violated: {0}")]
    Constraint(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The read store failed: not the caller's fault.
    #[error("read store: {0}")]
    Backend(String),
}
