//! `state_count` keeps bytes beside its counts: `bytes`, the raw files' sizes, and
//! `tmb_bytes`, their TMB files' sizes, of a dataset's files in each state (0 for the
//! other entities). The budgets of a site (the disk a site's raw and TMB files hold) are
//! then sums over a row per dataset and state, kept by the writes that move the files,
//! instead of a sum over every file of the site in each guarded write.
//!
//! `up` adds the columns and fills every count again from the rows; `down` drops them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StateCount {
    Table,
    Bytes,
    TmbBytes,
}

/// The SQL expression `expr` (a `SUM`) as a 64-bit integer in every dialect.
fn as_i64(backend: DbBackend, expr: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("CAST({expr} AS BIGINT)"),
        DbBackend::MySql => format!("CAST({expr} AS SIGNED)"),
        _ => expr.to_owned(),
    }
}

/// `SELECT dataset_id, entity, state, n, sample, bytes, tmb_bytes`: what `state_count`
/// holds when it is right, one statement per counted table.
pub fn state_selects(backend: DbBackend) -> Vec<String> {
    [
        ("file", "file_status"),
        ("reco_job", "recojob_status"),
        ("merge_job", "mergejob_status"),
        ("group", "merge_group"),
    ]
    .iter()
    .map(|(entity, table)| {
        let (bytes, tmb) = if *entity == "file" {
            (
                as_i64(backend, "SUM(t.size)"),
                as_i64(backend, "COALESCE(SUM(t.tmb_size), 0)"),
            )
        } else {
            (as_i64(backend, "0"), as_i64(backend, "0"))
        };
        format!(
            "SELECT t.dataset_id AS dataset_id, '{entity}' AS entity, t.state AS state, \
             COUNT(*) AS n, d.sample AS sample, {bytes} AS bytes, {tmb} AS tmb_bytes \
             FROM {table} t JOIN dataset_status d ON d.id = t.dataset_id \
             GROUP BY t.dataset_id, t.state, d.sample"
        )
    })
    .collect()
}

/// Statements that fill `state_count` (empty before) from the rows.
pub(crate) fn fill(backend: DbBackend) -> Vec<String> {
    state_selects(backend)
        .into_iter()
        .map(|s| {
            format!(
                "INSERT INTO state_count (dataset_id, entity, state, n, sample, bytes, tmb_bytes) {s}"
            )
        })
        .collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for col in [StateCount::Bytes, StateCount::TmbBytes] {
            manager
                .alter_table(
                    Table::alter()
                        .table(StateCount::Table)
                        .add_column(big_integer(col).default(0))
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        db.execute_unprepared("DELETE FROM state_count").await?;
        for sql in fill(manager.get_database_backend()) {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [StateCount::Bytes, StateCount::TmbBytes] {
            manager
                .alter_table(
                    Table::alter()
                        .table(StateCount::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
