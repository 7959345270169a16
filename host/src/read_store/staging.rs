//! A rebuild's scratch database: the projection replays the whole log into a private SQLite
//! database called in place, and the finished tables are then loaded into the target read store
//! with multi-row inserts.
//!
//! Why: a rebuild runs one statement per event, and a statement costs a network round trip on
//! PostgreSQL and a worker-thread hop through sqlx on SQLite; a read model usually has far fewer
//! rows than the log has events. The staging tables use the SQLite dialect, the same SQL the
//! plugin's statements become on a SQLite read store, so the rows are the ones a direct rebuild
//! would write. MySQL/MariaDB compare text case-insensitively by default, which SQLite would not
//! reproduce, so rebuilds into them write directly ([`Staging::suits`]).
//!
//! The database is SQLite's private temporary database (an empty file name): it lives in memory
//! while it fits the page cache, spills to a file SQLite deletes on close, and nobody else can open it.

use std::sync::{Arc, Mutex, PoisonError};

use super::session::{Bind, bind_all, staged_fetch, to_bind};
use super::statement::Value;
use super::{Dialect, ProjectionSchema, ReadStore, ReadStoreError};
use crate::read_store::schema::ColumnType;

/// Rows per read from the staging database while loading.
const LOAD_ROWS: usize = 1000;
/// Bound values per insert statement (SQLite allows 32766, PostgreSQL 65535).
const LOAD_BINDS: usize = 30_000;
/// Page cache of the staging database: 256 MiB before it spills to its file.
const CACHE_KIB: i64 = 256 * 1024;

/// A projection's tables of one generation, staged.
pub struct Staging {
    conn: Mutex<Option<rusqlite::Connection>>,
    schema: Arc<ProjectionSchema>,
    generation: i64,
}

fn staging_error(e: rusqlite::Error) -> ReadStoreError {
    ReadStoreError::Backend(format!("staging database: {e}"))
}

impl Staging {
    /// Whether a rebuild into `dialect` goes through a staging database.
    pub fn suits(dialect: Dialect) -> bool {
        matches!(dialect, Dialect::Sqlite | Dialect::Postgres)
    }

    /// A fresh staging database with the projection's tables of `generation`.
    pub fn open(schema: Arc<ProjectionSchema>, generation: i64) -> Result<Self, ReadStoreError> {
        let conn = rusqlite::Connection::open("").map_err(staging_error)?;
        // Nothing here must survive a crash: the rebuild starts over instead.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA cache_size = -{CACHE_KIB};"
        ))
        .map_err(staging_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        for table in &schema.tables {
            let physical = schema.physical_name(&table.name, generation);
            for statement in Dialect::Sqlite.create_table(table, &physical) {
                conn.execute(&statement, []).map_err(staging_error)?;
            }
        }
        Ok(Self { conn: Mutex::new(Some(conn)), schema, generation })
    }

    pub fn schema(&self) -> &Arc<ProjectionSchema> {
        &self.schema
    }

    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Borrow the connection for one batch; [`Staging::give_back`] returns it.
    pub fn take(&self) -> Result<rusqlite::Connection, ReadStoreError> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| ReadStoreError::Backend("the staging database is already in use".into()))
    }

    pub fn give_back(&self, conn: rusqlite::Connection) {
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
    }

    /// Copy every staged row into the same generation's (empty) tables of `target`. Returns the
    /// rows copied.
    pub async fn load_into(&self, target: &ReadStore) -> Result<u64, ReadStoreError> {
        let d = target.dialect();
        let mut copied = 0u64;
        for table in &self.schema.tables {
            let physical = self.schema.physical_name(&table.name, self.generation);
            let types: Vec<ColumnType> = table.columns.iter().map(|c| c.column_type).collect();
            let names: Vec<String> = table.columns.iter().map(|c| Dialect::Sqlite.quote(&c.name)).collect();
            let read: Arc<str> = format!(
                "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT {LOAD_ROWS}",
                names.join(", "),
                Dialect::Sqlite.quote(&physical)
            )
            .into();
            let read_types: Arc<[ColumnType]> =
                std::iter::once(ColumnType::Integer).chain(types.iter().copied()).collect();
            let target_columns: Vec<String> = table.columns.iter().map(|c| d.quote(&c.name)).collect();
            let rows_per_insert = (LOAD_BINDS / types.len().max(1)).clamp(1, LOAD_ROWS);
            let mut tx = target.pool().begin().await?;
            let mut after = 0i64;
            loop {
                let conn = self.take()?;
                let (read, read_types) = (read.clone(), read_types.clone());
                let (conn, rows) = tokio::task::spawn_blocking(move || {
                    let rows = staged_fetch(&conn, &read, &[Bind::Int(Some(after))], &read_types);
                    (conn, rows)
                })
                .await
                .map_err(|e| ReadStoreError::Backend(format!("staging task failed: {e}")))?;
                self.give_back(conn);
                let rows = rows.map_err(staging_error)?;
                let Some(last) = rows.last() else { break };
                after = match last.first() {
                    Some(Value::Integer(rowid)) => *rowid,
                    _ => return Err(ReadStoreError::Backend("staging row without a rowid".into())),
                };
                for chunk in rows.chunks(rows_per_insert) {
                    let mut binds = Vec::with_capacity(chunk.len() * types.len());
                    let mut tuples = Vec::with_capacity(chunk.len());
                    for row in chunk {
                        let mut params = Vec::with_capacity(types.len());
                        for ((column, column_type), value) in table.columns.iter().zip(&types).zip(&row[1..]) {
                            binds.push(
                                to_bind(d, *column_type, value, &column.name)
                                    .map_err(|e| ReadStoreError::Backend(format!("staged row: {e:?}")))?,
                            );
                            params.push(d.param(binds.len(), *column_type));
                        }
                        tuples.push(format!("({})", params.join(", ")));
                    }
                    let insert = format!(
                        "INSERT INTO {} ({}) VALUES {}",
                        d.quote(&physical),
                        target_columns.join(", "),
                        tuples.join(", ")
                    );
                    bind_all(sqlx::query(&insert), binds).execute(&mut *tx).await?;
                    copied += chunk.len() as u64;
                }
            }
            tx.commit().await?;
        }
        Ok(copied)
    }
}
