//! A rebuild's staging database loaded into the read store: every column type, NULLs, and more
//! rows than one load chunk, into SQLite always and PostgreSQL when `SLUICE_TEST_POSTGRES_URL` is
//! set (a fresh database; failing when `SLUICE_REQUIRE_SERVERS=1`).

mod common;

use std::sync::Arc;

use sluice::read_store::schema::{ColumnSchema, ColumnType, ProjectionSchema, TableSchema};
use sluice::read_store::staging::Staging;
use sluice::read_store::{Dialect, ReadStore};
use sqlx::Row;

fn schema() -> Arc<ProjectionSchema> {
    let column = |name: &str, column_type, nullable| ColumnSchema { name: name.into(), column_type, nullable };
    Arc::new(ProjectionSchema {
        projection: "typed".into(),
        tables: vec![TableSchema {
            name: "things".into(),
            columns: vec![
                column("id", ColumnType::Text, false),
                column("n", ColumnType::Integer, true),
                column("amount", ColumnType::Decimal, true),
                column("flag", ColumnType::Boolean, true),
                column("at", ColumnType::Timestamp, true),
                column("note", ColumnType::Text, true),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![vec!["n".into()]],
        }],
    })
}

/// One row as text, whatever the dialect stores: (id, n, amount, flag, at, note).
type Row6 = (String, Option<i64>, Option<String>, Option<bool>, Option<String>, Option<String>);

const BULK: i64 = 2500;

fn expected() -> Vec<Row6> {
    let mut rows = vec![
        (
            "a".into(),
            Some(5),
            Some("12.34".into()),
            Some(true),
            Some("2026-01-01T00:00:00Z".into()),
            Some("héllo 'q'".into()),
        ),
        ("b".into(), None, None, None, None, None),
        ("c".into(), Some(-7), Some("-0.05".into()), Some(false), None, Some(String::new())),
    ];
    rows.extend(
        (0..BULK).map(|i| (format!("r{i:05}"), Some(i), Some(format!("{}.{:02}", i / 100, i % 100)), None, None, None)),
    );
    rows.sort();
    rows
}

fn fill(staging: &Staging) {
    let conn = staging.take().expect("staging connection");
    let table = schema().physical_name("things", 1);
    let insert = format!("INSERT INTO \"{table}\" (id, n, amount, flag, at, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    // The SQLite dialect's storage: decimals as hundredths, booleans as 0/1.
    conn.execute(&insert, rusqlite::params!["a", 5, 1234, 1, "2026-01-01T00:00:00Z", "héllo 'q'"]).expect("a");
    conn.execute(
        &insert,
        rusqlite::params!["b", None::<i64>, None::<i64>, None::<i64>, None::<String>, None::<String>],
    )
    .expect("b");
    conn.execute(&insert, rusqlite::params!["c", -7, -5, 0, None::<String>, ""]).expect("c");
    for i in 0..BULK {
        conn.execute(&insert, rusqlite::params![format!("r{i:05}"), i, i, None::<i64>, None::<String>, None::<String>])
            .expect("bulk row");
    }
    staging.give_back(conn);
}

async fn loaded(store: &ReadStore) -> Vec<Row6> {
    let d = store.dialect();
    let table = d.quote(&schema().physical_name("things", 1));
    let sql = format!(
        "SELECT id, n, {}, {}, at, note FROM {table}",
        d.read("amount", ColumnType::Decimal),
        d.read("flag", ColumnType::Boolean)
    );
    let rows = sqlx::query(&sql).fetch_all(store.pool()).await.expect("read back");
    let mut out: Vec<Row6> = rows
        .iter()
        .map(|row| {
            let amount = if d == Dialect::Sqlite {
                row.get::<Option<i64>, _>(2).map(|c| format!("{}", rust_decimal::Decimal::new(c, 2)))
            } else {
                row.get::<Option<String>, _>(2)
            };
            (row.get(0), row.get(1), amount, row.get::<Option<i64>, _>(3).map(|b| b != 0), row.get(4), row.get(5))
        })
        .collect();
    out.sort();
    out
}

async fn staged_rows_land_unchanged(url: &str) {
    let target = ReadStore::open(url).await.expect("open the read store");
    let schema = schema();
    target.create_tables(&schema, 1).await.expect("fresh tables");
    let staging = Staging::open(schema.clone(), 1).expect("staging");
    fill(&staging);
    let copied = staging.load_into(&target).await.expect("load");
    assert_eq!(copied, 3 + BULK as u64);
    assert_eq!(loaded(&target).await, expected());
    target.drop_tables(&schema, 1).await.expect("clean up");
}

#[tokio::test]
async fn staged_rows_land_unchanged_in_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    staged_rows_land_unchanged(&format!("sqlite://{}", dir.path().join("read.db").display())).await;
}

#[tokio::test]
async fn staged_rows_land_unchanged_in_postgres() {
    if let Some(url) = common::fresh_database("SLUICE_TEST_POSTGRES_URL", "staging") {
        staged_rows_land_unchanged(&url).await;
    }
}
