//! `state_count` and `hourly_count`: the campaign's totals kept current by the writes that
//! change them, so the status page and `/metrics` read a few thousand small rows instead of
//! counting every file and every history row.
//!
//! - `state_count (dataset_id, entity, state, n)`: how many rows of `entity` (`file`,
//!   `reco_job`, `merge_job`, `group`) of a dataset are in `state`.
//! - `hourly_count (dataset_id, entity, via, hour, n)`: how many history rows of `entity`
//!   moved by `via` a dataset has in `hour` (`YYYY-MM-DD HH:00`, UTC).
//!
//! Each write transaction that moves rows adds its moves to both, in the same transaction,
//! one row per dataset so that writers of different datasets never wait on each other.
//! `up` fills both from what the database holds.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::DatasetStatus as D;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StateCount {
    Table,
    DatasetId,
    Entity,
    State,
    N,
    Sample,
}

#[derive(DeriveIden)]
enum HourlyCount {
    Table,
    DatasetId,
    Entity,
    Via,
    Hour,
    N,
}

/// The hour of `col` as the counts store it, in each backend's dialect.
fn hour_of(backend: DbBackend, col: &str) -> String {
    match backend {
        DbBackend::Sqlite => format!("strftime('%Y-%m-%d %H:00', {col})"),
        DbBackend::MySql => format!("DATE_FORMAT({col}, '%Y-%m-%d %H:00')"),
        _ => format!("to_char(date_trunc('hour', {col}), 'YYYY-MM-DD HH24:00')"),
    }
}

/// `SELECT dataset_id, entity, state, n, sample`: what `state_count` held when it was
/// right on the schema this migration made (before migration 15 kept bytes too), one
/// statement per counted table.
fn state_selects_counting() -> Vec<String> {
    [
        ("file", "file_status"),
        ("reco_job", "recojob_status"),
        ("merge_job", "mergejob_status"),
        ("group", "merge_group"),
    ]
    .iter()
    .map(|(entity, table)| {
        format!(
            "SELECT t.dataset_id AS dataset_id, '{entity}' AS entity, t.state AS state, \
             COUNT(*) AS n, d.sample AS sample FROM {table} t \
             JOIN dataset_status d ON d.id = t.dataset_id \
             GROUP BY t.dataset_id, t.state, d.sample"
        )
    })
    .collect()
}

/// `SELECT dataset_id, entity, via, hour, n`: what `hourly_count` holds when it is right,
/// on the schema of today (since migration 13 a history row counts `n` moves).
pub fn hourly_select(backend: DbBackend) -> String {
    // A sum is a decimal on MariaDB and PostgreSQL: read back as a 64-bit integer.
    let sum = match backend {
        DbBackend::Postgres => "CAST(SUM(n) AS BIGINT)",
        DbBackend::MySql => "CAST(SUM(n) AS SIGNED)",
        _ => "SUM(n)",
    };
    hourly_select_counting(backend, sum)
}

/// [`hourly_select`] with `count` as the moves of a group of history rows: `COUNT(*)` on
/// the schema this migration ran on, before a row could stand for several moves.
fn hourly_select_counting(backend: DbBackend, count: &str) -> String {
    let hour = hour_of(backend, "at");
    format!(
        "SELECT dataset_id, entity, via, {hour} AS hour, {count} AS n FROM transitions \
         GROUP BY dataset_id, entity, via, {hour}"
    )
}

/// Statements that fill both tables from the rows and the history (both empty before), on
/// the schema of today.
pub fn backfill(backend: DbBackend) -> Vec<String> {
    let mut out = crate::m20261204_000015_state_count_bytes::fill(backend);
    out.push(format!(
        "INSERT INTO hourly_count (dataset_id, entity, via, hour, n) {}",
        hourly_select(backend)
    ));
    out
}

/// The same on the schema this migration made.
fn backfill_counting(hourly: String) -> Vec<String> {
    let mut out: Vec<String> = state_selects_counting()
        .into_iter()
        .map(|s| format!("INSERT INTO state_count (dataset_id, entity, state, n, sample) {s}"))
        .collect();
    out.push(format!(
        "INSERT INTO hourly_count (dataset_id, entity, via, hour, n) {hourly}"
    ));
    out
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StateCount::Table)
                    .col(big_integer(StateCount::DatasetId))
                    .col(string_len(StateCount::Entity, 16))
                    .col(string_len(StateCount::State, 32))
                    .col(big_integer(StateCount::N))
                    // The dataset's sample, kept with its counts so that the page sums them
                    // per sample from one index, without a join.
                    .col(string_len_null(StateCount::Sample, 100))
                    .primary_key(
                        Index::create()
                            .col(StateCount::DatasetId)
                            .col(StateCount::Entity)
                            .col(StateCount::State),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_state_count_dataset")
                            .from(StateCount::Table, StateCount::DatasetId)
                            .to(D::Table, D::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(HourlyCount::Table)
                    .col(big_integer(HourlyCount::DatasetId))
                    .col(string_len(HourlyCount::Entity, 16))
                    .col(string_len(HourlyCount::Via, 32))
                    .col(string_len(HourlyCount::Hour, 16))
                    .col(big_integer(HourlyCount::N))
                    .primary_key(
                        Index::create()
                            .col(HourlyCount::DatasetId)
                            .col(HourlyCount::Entity)
                            .col(HourlyCount::Via)
                            .col(HourlyCount::Hour),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_hourly_count_dataset")
                            .from(HourlyCount::Table, HourlyCount::DatasetId)
                            .to(D::Table, D::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The page's chart over every dataset: the last 48 hours of one kind of move.
        manager
            .create_index(
                Index::create()
                    .name("idx_hourly_count_via_hour")
                    .table(HourlyCount::Table)
                    .col(HourlyCount::Entity)
                    .col(HourlyCount::Via)
                    .col(HourlyCount::Hour)
                    .col(HourlyCount::N)
                    .to_owned(),
            )
            .await?;
        // The totals: a scan of this index in its order, no sort.
        manager
            .create_index(
                Index::create()
                    .name("idx_state_count_totals")
                    .table(StateCount::Table)
                    .col(StateCount::Entity)
                    .col(StateCount::State)
                    .col(StateCount::N)
                    .to_owned(),
            )
            .await?;
        // Per sample, likewise.
        manager
            .create_index(
                Index::create()
                    .name("idx_state_count_samples")
                    .table(StateCount::Table)
                    .col(StateCount::Entity)
                    .col(StateCount::Sample)
                    .col(StateCount::State)
                    .col(StateCount::N)
                    .to_owned(),
            )
            .await?;
        // Datasets per phase word, likewise.
        manager
            .create_index(
                Index::create()
                    .name("idx_dataset_status_words")
                    .table(D::Table)
                    .col(D::LockState)
                    .col(D::PrestageState)
                    .col(D::RecoState)
                    .col(D::MergeState)
                    .col(D::CleanupState)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        for sql in backfill_counting(hourly_select_counting(backend, "COUNT(*)")) {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_dataset_status_words")
                    .table(D::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(HourlyCount::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StateCount::Table).to_owned())
            .await
    }
}
