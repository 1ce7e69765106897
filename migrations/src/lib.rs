//! SeaORM migrations for the `repro` schema.
//!
//! Append-only: a released migration is never edited; a change to the schema is a new
//! module here, with an `up` and a `down`. The schema keeps the predecessor scripts' four tables
//! (`dataset_status`, `file_status`, `recojob_status`, `mergejob_status`), adds
//! `merge_group` (a group of TMB files and its merged file, declared or not) and the
//! append-only `transitions` history.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_dataset_status;
mod m20261128_000002_create_file_status;
mod m20261128_000003_create_merge_group;
mod m20261128_000004_create_job_tables;
mod m20261128_000005_create_transitions;
mod m20261128_000006_index_for_status_page;
mod m20261201_000007_check_state_words;
mod m20261201_000008_create_site_ticks;
mod m20261202_000009_dataset_sample_priority;
mod m20261202_000010_create_site_locks;
mod m20261203_000011_dataset_revision;
mod m20261203_000012_create_counts;
mod m20261203_000013_compact_history;
mod m20261203_000014_sqlite_checks_in_tables;
mod m20261204_000015_state_count_bytes;
mod m20261207_000016_dataset_accepted_lost;
mod m20261207_000017_retry_times;
mod m20261207_000018_dataset_outages;

pub use m20261201_000007_check_state_words::{CHECKED, Checked, statements as check_statements};
pub use m20261203_000012_create_counts::{backfill as counts_backfill, hourly_select};
pub use m20261204_000015_state_count_bytes::state_selects;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_dataset_status::Migration),
            Box::new(m20261128_000002_create_file_status::Migration),
            Box::new(m20261128_000003_create_merge_group::Migration),
            Box::new(m20261128_000004_create_job_tables::Migration),
            Box::new(m20261128_000005_create_transitions::Migration),
            Box::new(m20261128_000006_index_for_status_page::Migration),
            Box::new(m20261201_000007_check_state_words::Migration),
            Box::new(m20261201_000008_create_site_ticks::Migration),
            Box::new(m20261202_000009_dataset_sample_priority::Migration),
            Box::new(m20261202_000010_create_site_locks::Migration),
            Box::new(m20261203_000011_dataset_revision::Migration),
            Box::new(m20261203_000012_create_counts::Migration),
            Box::new(m20261203_000013_compact_history::Migration),
            Box::new(m20261203_000014_sqlite_checks_in_tables::Migration),
            Box::new(m20261204_000015_state_count_bytes::Migration),
            Box::new(m20261207_000016_dataset_accepted_lost::Migration),
            Box::new(m20261207_000017_retry_times::Migration),
            Box::new(m20261207_000018_dataset_outages::Migration),
        ]
    }
}

/// Identifiers shared by the migrations.
#[derive(DeriveIden)]
pub(crate) enum DatasetStatus {
    Table,
    Id,
    Name,
    LockState,
    PrestageState,
    RecoState,
    MergeState,
    CleanupState,
    Site,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum FileStatus {
    Table,
    Id,
    DatasetId,
    Lfn,
    Size,
    State,
    Attempts,
    AttemptBase,
    LastError,
    TmbPath,
    TmbSize,
    MergeGroup,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum MergeGroup {
    Table,
    Id,
    DatasetId,
    GroupNo,
    State,
    Attempts,
    AttemptBase,
    NFiles,
    Bytes,
    MergedFile,
    MergedSize,
    LastError,
    UpdatedAt,
}
