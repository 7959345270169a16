//! What a projection declares about its tables, validated, and where the tables physically live.

/// A column's type as projections declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    /// Exact, 2 fractional digits, up to 15 integer digits.
    Decimal,
    Boolean,
    /// RFC 3339 text.
    Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    pub primary_key: Vec<String>,
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A projection's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionSchema {
    pub projection: String,
    pub tables: Vec<TableSchema>,
}

impl ProjectionSchema {
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The table's name in the database: projection, generation and table, so projections never
    /// share a table and a rebuild fills fresh tables beside the ones still serving.
    pub fn physical_name(&self, table: &str, generation: i64) -> String {
        format!("{}_g{generation}_{table}", self.projection)
    }

    /// Names are lower-case identifiers, tables have a key of declared columns.
    pub fn validate(&self) -> Result<(), String> {
        if !is_identifier(&self.projection) {
            return Err(format!(
                "projection name {:?} must be a lower-case identifier ([a-z][a-z0-9_]*)",
                self.projection
            ));
        }
        if self.tables.is_empty() {
            return Err("declares no tables".into());
        }
        for (i, table) in self.tables.iter().enumerate() {
            if !is_identifier(&table.name) {
                return Err(format!("table name {:?} must be a lower-case identifier", table.name));
            }
            if self.tables[..i].iter().any(|t| t.name == table.name) {
                return Err(format!("table {} is declared twice", table.name));
            }
            if self.physical_name(&table.name, i64::from(u32::MAX)).len() > 63 {
                return Err(format!("table {}: projection and table names together are too long", table.name));
            }
            for (j, column) in table.columns.iter().enumerate() {
                if !is_identifier(&column.name) {
                    return Err(format!("column {}.{} must be a lower-case identifier", table.name, column.name));
                }
                if table.columns[..j].iter().any(|c| c.name == column.name) {
                    return Err(format!("column {}.{} is declared twice", table.name, column.name));
                }
            }
            if table.primary_key.is_empty() {
                return Err(format!("table {} has no primary key", table.name));
            }
            for column in table.primary_key.iter().chain(table.indexes.iter().flatten()) {
                if table.column(column).is_none() {
                    return Err(format!("table {}: key or index names undeclared column {column}", table.name));
                }
            }
        }
        Ok(())
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 40
}
