//! The SQL each read store understands: placeholders, quoting, types, upserts, and how values of
//! each column type are bound and read so decimals stay exact everywhere (SQLite keeps them as
//! integer hundredths, the servers as `DECIMAL(17,2)` bound and read as text).

use super::schema::{ColumnType, TableSchema};

/// Characters of TEXT prefixes one MySQL index may hold: (3072 - 64) bytes at 4 a character.
const MYSQL_INDEX_CHARS: usize = (3072 - 64) / 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split("://").next()?;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The `n`th (1-based) bind placeholder.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::Sqlite | Self::MySql => "?".to_owned(),
        }
    }

    /// A quoted identifier (names are validated identifiers; quoting guards against keywords).
    pub fn quote(self, identifier: &str) -> String {
        match self {
            Self::MySql => format!("`{identifier}`"),
            Self::Sqlite | Self::Postgres => format!("\"{identifier}\""),
        }
    }

    fn sql_type(self, column_type: ColumnType, keyed: bool) -> &'static str {
        match (self, column_type) {
            (Self::Sqlite, ColumnType::Integer | ColumnType::Decimal | ColumnType::Boolean) => "INTEGER",
            (Self::Sqlite, ColumnType::Text | ColumnType::Timestamp) => "TEXT",
            (Self::Postgres, ColumnType::Integer) | (Self::MySql, ColumnType::Integer) => "BIGINT",
            (Self::Postgres, ColumnType::Decimal) => "NUMERIC(17,2)",
            (Self::MySql, ColumnType::Decimal) => "DECIMAL(17,2)",
            (Self::Postgres, ColumnType::Boolean) | (Self::MySql, ColumnType::Boolean) => "BOOLEAN",
            (Self::Postgres, ColumnType::Text | ColumnType::Timestamp) => "TEXT",
            (Self::MySql, ColumnType::Timestamp) => "VARCHAR(64)",
            // A key must be whole, so it is bounded (ids are at most 200 bytes). Other text holds
            // whatever the other stores hold (TEXT would stop at 64 KiB), and an index on it takes
            // its prefix (see `create_table`).
            (Self::MySql, ColumnType::Text) if keyed => "VARCHAR(255)",
            (Self::MySql, ColumnType::Text) => "LONGTEXT",
        }
    }

    /// `CREATE TABLE` and `CREATE INDEX` statements for `table` under its physical name.
    pub fn create_table(self, table: &TableSchema, physical: &str) -> Vec<String> {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                let keyed = table.primary_key.contains(&c.name);
                format!("{} {}{null}", self.quote(&c.name), self.sql_type(c.column_type, keyed))
            })
            .collect();
        let key: Vec<String> = table.primary_key.iter().map(|k| self.quote(k)).collect();
        let mut statements = vec![format!(
            "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
            self.quote(physical),
            columns.join(", "),
            key.join(", ")
        )];
        for (i, index) in table.indexes.iter().enumerate() {
            let is_long_text = |c: &String| {
                self == Self::MySql
                    && !table.primary_key.contains(c)
                    && table.column(c).is_some_and(|c| c.column_type == ColumnType::Text)
            };
            // MySQL indexes TEXT by a prefix; the prefixes of one index share InnoDB's 3072-byte
            // key limit at 4 bytes a character (utf8mb4), beside at most 64 bytes of the rest.
            let long_texts = index.iter().filter(|c| is_long_text(c)).count().max(1);
            let prefix = (MYSQL_INDEX_CHARS / long_texts).min(255);
            let columns: Vec<String> = index
                .iter()
                .map(|c| if is_long_text(c) { format!("{}({prefix})", self.quote(c)) } else { self.quote(c) })
                .collect();
            statements.push(format!(
                "CREATE INDEX {} ON {} ({})",
                self.quote(&format!("{physical}_ix{i}")),
                self.quote(physical),
                columns.join(", ")
            ));
        }
        statements
    }

    /// The host's own tables.
    pub fn bookkeeping_ddl(self) -> Vec<String> {
        let text = if self == Self::MySql { "VARCHAR(255)" } else { "TEXT" };
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS sluice_projections (name {text} NOT NULL PRIMARY KEY, generation BIGINT NOT NULL, \
                 position BIGINT NOT NULL, schema_version BIGINT NOT NULL, updated_at {text} NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS sluice_offsets (projection {text} NOT NULL, topic {text} NOT NULL, \
                 part BIGINT NOT NULL, next_offset BIGINT NOT NULL, last_position BIGINT NOT NULL, \
                 PRIMARY KEY (projection, topic, part))"
            ),
        ]
    }

    /// Upsert of a checkpoint: binds name, generation, position, schema version, updated at.
    pub fn upsert_checkpoint_sql(self) -> String {
        let p = |n| self.placeholder(n);
        let insert = format!(
            "INSERT INTO sluice_projections (name, generation, position, schema_version, updated_at) VALUES ({}, {}, {}, {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        );
        match self {
            Self::MySql => format!(
                "{insert} ON DUPLICATE KEY UPDATE generation = VALUES(generation), position = VALUES(position), \
                 schema_version = VALUES(schema_version), updated_at = VALUES(updated_at)"
            ),
            Self::Sqlite | Self::Postgres => format!(
                "{insert} ON CONFLICT (name) DO UPDATE SET generation = excluded.generation, position = excluded.position, \
                 schema_version = excluded.schema_version, updated_at = excluded.updated_at"
            ),
        }
    }

    /// The expression a bound value of `column_type` takes at placeholder `n`.
    pub fn param(self, n: usize, column_type: ColumnType) -> String {
        match (self, column_type) {
            (Self::Postgres, ColumnType::Decimal) => format!("CAST({} AS NUMERIC)", self.placeholder(n)),
            // Bound as text, which MySQL would otherwise add and compare as a double: inexact past
            // 2^53 hundredths, and `balance + '0.99'` near the top rounds out of the column's range.
            (Self::MySql, ColumnType::Decimal) => format!("CAST({} AS DECIMAL(17,2))", self.placeholder(n)),
            _ => self.placeholder(n),
        }
    }

    /// The expression that reads a column as the type the host decodes (text for decimals,
    /// integers for booleans).
    pub fn read(self, column: &str, column_type: ColumnType) -> String {
        let quoted = self.quote(column);
        match (self, column_type) {
            (Self::Postgres, ColumnType::Decimal) => format!("CAST({quoted} AS TEXT)"),
            (Self::MySql, ColumnType::Decimal) => format!("CAST({quoted} AS CHAR)"),
            (Self::Postgres, ColumnType::Boolean) => format!("CAST({quoted} AS INTEGER)"),
            (Self::MySql, ColumnType::Boolean) => format!("CAST({quoted} AS SIGNED)"),
            _ => quoted,
        }
    }

    /// The tail of an upsert: on a key match, replace `others`.
    pub fn upsert_tail(self, key: &[String], others: &[String]) -> String {
        if others.is_empty() {
            return match self {
                Self::MySql => format!(" ON DUPLICATE KEY UPDATE {0} = {0}", self.quote(&key[0])),
                Self::Sqlite | Self::Postgres => {
                    let key: Vec<String> = key.iter().map(|k| self.quote(k)).collect();
                    format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
                }
            };
        }
        match self {
            Self::MySql => {
                let sets: Vec<String> = others.iter().map(|c| format!("{0} = VALUES({0})", self.quote(c))).collect();
                format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
            Self::Sqlite | Self::Postgres => {
                let key: Vec<String> = key.iter().map(|k| self.quote(k)).collect();
                let sets: Vec<String> = others.iter().map(|c| format!("{0} = excluded.{0}", self.quote(c))).collect();
                format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(", "), sets.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_store::schema::ColumnSchema;

    fn table() -> TableSchema {
        let column = |name: &str, column_type| ColumnSchema { name: name.into(), column_type, nullable: false };
        TableSchema {
            name: "t".into(),
            columns: vec![
                column("id", ColumnType::Text),
                column("name", ColumnType::Text),
                column("note", ColumnType::Text),
                column("n", ColumnType::Integer),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![vec!["name".into()], vec!["name".into(), "note".into(), "n".into()], vec!["id".into()]],
        }
    }

    /// Text is as long on MySQL as elsewhere: LONGTEXT, indexed by a prefix; keys stay whole.
    #[test]
    fn mysql_indexes_long_text_by_its_prefix() {
        let ddl = Dialect::MySql.create_table(&table(), "p_g1_t");
        assert_eq!(
            ddl,
            [
                "CREATE TABLE `p_g1_t` (`id` VARCHAR(255) NOT NULL, `name` LONGTEXT NOT NULL, `note` LONGTEXT NOT NULL, \
                 `n` BIGINT NOT NULL, PRIMARY KEY (`id`))",
                "CREATE INDEX `p_g1_t_ix0` ON `p_g1_t` (`name`(255))",
                "CREATE INDEX `p_g1_t_ix1` ON `p_g1_t` (`name`(255), `note`(255), `n`)",
                "CREATE INDEX `p_g1_t_ix2` ON `p_g1_t` (`id`)",
            ]
        );
        assert_eq!(Dialect::MySql.param(1, ColumnType::Decimal), "CAST(? AS DECIMAL(17,2))");
        let postgres = Dialect::Postgres.create_table(&table(), "p_g1_t");
        assert_eq!(postgres[1], r#"CREATE INDEX "p_g1_t_ix0" ON "p_g1_t" ("name")"#);
    }
}
