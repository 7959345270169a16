//! The projection contract and what a projection declares.

use crate::sql::Db;

/// A read model built from events.
pub trait Projection {
    /// What the projection declares to the host.
    fn manifest() -> Manifest;

    /// Apply one event (only subscribed types arrive). Runs inside the host's transaction: an
    /// error rolls back the batch, and the host dead-letters the event that keeps failing.
    fn handle(db: &mut dyn Db, event: &Event) -> Result<(), String>;

    /// Answer a declared query. Writes are refused while querying.
    fn query(db: &mut dyn Db, name: &str, params: &Params) -> Result<Answer, QueryError>;
}

/// An event as the projection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
    pub global_position: u64,
    pub event_type: String,
    pub schema_version: u32,
    /// JSON text.
    pub data: String,
    /// RFC 3339.
    pub recorded_at: String,
}

impl Event {
    /// The data as a typed value.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.data).map_err(|e| format!("{} v{}: {e}", self.event_type, self.schema_version))
    }
}

/// A query's parameters: path parameters and the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &str) -> Result<&str, QueryError> {
        self.get(name).ok_or_else(|| QueryError::Invalid(format!("missing parameter {name}")))
    }
}

/// An HTTP answer chosen by the projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// JSON text (may be empty for 204).
    pub body: String,
}

impl Answer {
    pub fn ok(body: &serde_json::Value) -> Self {
        Self { status: 200, body: body.to_string() }
    }
    pub fn no_content() -> Self {
        Self { status: 204, body: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    UnknownQuery(String),
    Invalid(String),
    NotFound(String),
    Failed(String),
}

impl From<crate::sql::SqlError> for QueryError {
    fn from(e: crate::sql::SqlError) -> Self {
        Self::Failed(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub subscriptions: Vec<String>,
    pub schema_version: u32,
    pub tables: Vec<Table>,
    pub queries: Vec<String>,
    pub routes: Vec<QueryRoute>,
    pub rebuild_routes: Vec<RebuildRoute>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    /// Exact, 2 fractional digits.
    Decimal,
    Boolean,
    /// RFC 3339 text.
    Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
}

impl Column {
    pub fn new(name: &str, column_type: ColumnType) -> Self {
        Self { name: name.to_owned(), column_type, nullable: false }
    }
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub indexes: Vec<Vec<String>>,
}

impl Table {
    pub fn new(name: &str, columns: Vec<Column>, primary_key: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            columns,
            primary_key: primary_key.iter().map(|c| (*c).to_owned()).collect(),
            indexes: Vec::new(),
        }
    }
    pub fn index(mut self, columns: &[&str]) -> Self {
        self.indexes.push(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRoute {
    pub path: String,
    pub query: String,
    pub case_insensitive: bool,
}

impl QueryRoute {
    pub fn new(path: &str, query: &str) -> Self {
        Self { path: path.to_owned(), query: query.to_owned(), case_insensitive: false }
    }
    pub fn case_insensitive(mut self) -> Self {
        self.case_insensitive = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildRoute {
    pub path: String,
    pub success_status: u16,
    pub success_message: String,
}
