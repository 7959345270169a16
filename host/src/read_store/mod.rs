//! The SQL read store projections write to: SQLite (default), PostgreSQL or MySQL/MariaDB
//! through sqlx's `Any` driver, chosen by URL.
//!
//! Projections never write SQL: they declare tables ([`ProjectionSchema`]) and send structured
//! statements, and [`dialect`] writes the SQL for the store at hand. The host's own bookkeeping
//! lives in three tables: `sluice_projections` (each projection's generation and position, updated
//! in the same transaction as its rows), `sluice_offsets` (with the Kafka bus, each projection's
//! offset per partition, likewise; see [`offsets`]) and the dead letters (`sluice_letters`, with the
//! audit of drops; see [`dead_letters`]).

pub mod dead_letters;
pub mod dialect;
pub mod direct;
pub mod offsets;
pub mod schema;
pub mod session;
pub mod staging;
pub mod statement;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor, Row};

pub use dead_letters::{DroppedLetter, Letter, LetterState};
pub use dialect::Dialect;
pub use offsets::{OffsetAdvance, PartitionOffset};
pub use schema::{ColumnType, ProjectionSchema, TableSchema};

/// Why the read store failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadStoreError {
    #[error("read store {url}: {message}")]
    Open { url: String, message: String },
    #[error("read store: {0}")]
    Backend(String),
    /// Another consumer moved the partition's offset first (it took the partition over): the
    /// transaction is rolled back and the consumer re-reads its offsets.
    #[error("projection {projection}: offset of {topic}/{partition} moved to {stored} by another consumer")]
    OffsetMoved { projection: String, topic: String, partition: i32, stored: i64 },
}

impl From<sqlx::Error> for ReadStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

/// A projection's bookkeeping row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub generation: i64,
    pub position: u64,
    pub schema_version: u32,
}

/// A connected read store.
#[derive(Clone)]
pub struct ReadStore {
    pool: AnyPool,
    dialect: Dialect,
    url: String,
    /// Live projection batches called in place, on a SQLite file ([`direct`]).
    direct: Option<Arc<direct::DirectWriter>>,
}

impl std::fmt::Debug for ReadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadStore").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

impl ReadStore {
    /// Connect, creating the database if it does not exist, and the host's tables.
    pub async fn open(url: &str) -> Result<Self, ReadStoreError> {
        sqlx::any::install_default_drivers();
        let open_error = |message: String| ReadStoreError::Open { url: redact(url), message };
        let dialect =
            Dialect::from_url(url).ok_or_else(|| open_error("expected sqlite://, postgres:// or mysql://".into()))?;
        let url = match dialect {
            Dialect::Sqlite => sqlite_url(url),
            Dialect::Postgres | Dialect::MySql => url.replacen("mariadb://", "mysql://", 1),
        };
        create_database(dialect, &url).await.map_err(|e| open_error(e.to_string()))?;
        let options = AnyConnectOptions::from_str(&url).map_err(|e| open_error(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let direct = (dialect == Dialect::Sqlite).then(|| direct::DirectWriter::for_url(&url)).flatten().map(Arc::new);
        let store = Self { pool, dialect, url, direct };
        for statement in dialect.bookkeeping_ddl().into_iter().chain(dead_letters::ddl(dialect)) {
            sqlx::query(&statement).execute(&store.pool).await.map_err(|e| open_error(e.to_string()))?;
        }
        Ok(store)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The in-place writer of live batches, on a SQLite file.
    pub fn direct(&self) -> Option<&direct::DirectWriter> {
        self.direct.as_deref()
    }

    /// The URL with any password hidden, for logs.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    /// The projection's checkpoint, if it has one here.
    pub async fn checkpoint(&self, projection: &str) -> Result<Option<Checkpoint>, ReadStoreError> {
        let sql = format!(
            "SELECT generation, position, schema_version FROM sluice_projections WHERE name = {}",
            self.dialect.placeholder(1)
        );
        let row = sqlx::query(&sql).bind(projection).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(row) => Some(Checkpoint {
                generation: row.try_get::<i64, _>(0)?,
                position: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                schema_version: u32::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
            }),
            None => None,
        })
    }

    /// Create the projection's tables for `generation` (dropping leftovers of an unfinished run)
    /// in one transaction where the dialect allows.
    pub async fn create_tables(&self, schema: &ProjectionSchema, generation: i64) -> Result<(), ReadStoreError> {
        let mut conn = self.pool.acquire().await?;
        for table in &schema.tables {
            let physical = schema.physical_name(&table.name, generation);
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", self.dialect.quote(&physical))).execute(&mut *conn).await?;
            for statement in self.dialect.create_table(table, &physical) {
                sqlx::query(&statement).execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    /// Drop the projection's tables of `generation`.
    pub async fn drop_tables(&self, schema: &ProjectionSchema, generation: i64) -> Result<(), ReadStoreError> {
        for table in &schema.tables {
            let physical = schema.physical_name(&table.name, generation);
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", self.dialect.quote(&physical))).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Write a checkpoint inside `tx` (the transaction that wrote the rows up to `position`).
    pub async fn save_checkpoint(
        &self,
        tx: &mut sqlx::AnyConnection,
        projection: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), ReadStoreError> {
        let d = self.dialect;
        let sql = d.upsert_checkpoint_sql();
        sqlx::query(&sql)
            .bind(projection)
            .bind(checkpoint.generation)
            .bind(i64::try_from(checkpoint.position).unwrap_or(i64::MAX))
            .bind(i64::from(checkpoint.schema_version))
            .bind(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// `sqlite://path` with `mode=rwc`, so the file is created when missing.
fn sqlite_url(url: &str) -> String {
    if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Create the database a server URL names, if it does not exist yet.
async fn create_database(dialect: Dialect, url: &str) -> Result<(), sqlx::Error> {
    match dialect {
        Dialect::Sqlite => Ok(()),
        Dialect::Postgres => {
            let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
            let Some(name) = options.get_database().map(str::to_owned) else { return Ok(()) };
            let mut conn = sqlx::PgConnection::connect_with(&options.database("postgres")).await?;
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(&name)
                .fetch_optional(&mut conn)
                .await?;
            if exists.is_none() {
                let created = sqlx::query(&format!("CREATE DATABASE {}", Dialect::Postgres.quote(&name)))
                    .execute(&mut conn)
                    .await;
                // Another host may have created it in the meantime.
                if let Err(e) = created
                    && !e.to_string().contains("already exists")
                {
                    return Err(e);
                }
            }
            conn.close().await
        }
        Dialect::MySql => {
            let options = sqlx::mysql::MySqlConnectOptions::from_str(url)?;
            let Some(name) = options.get_database().map(str::to_owned) else { return Ok(()) };
            let mut conn = sqlx::MySqlConnection::connect_with(&options.database("information_schema")).await?;
            sqlx::query(&format!("CREATE DATABASE IF NOT EXISTS {}", Dialect::MySql.quote(&name)))
                .execute(&mut conn)
                .await?;
            conn.close().await
        }
    }
}
