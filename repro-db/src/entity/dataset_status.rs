//! `dataset_status`: one row per dataset.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dataset_status")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub lock_state: String,
    pub prestage_state: String,
    pub reco_state: String,
    pub merge_state: String,
    pub cleanup_state: String,
    pub site: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub sample: Option<String>,
    pub priority: i32,
    pub waiting: Option<String>,
    pub revision: i64,
    pub settled: Option<String>,
    pub accepted_lost: i64,
    pub outages: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Column {
    /// The column holding `phase`'s word.
    pub const fn of(phase: repro_core::Phase) -> Column {
        use repro_core::Phase;
        match phase {
            Phase::Prestage => Column::PrestageState,
            Phase::Reco => Column::RecoState,
            Phase::Merge => Column::MergeState,
            Phase::Cleanup => Column::CleanupState,
        }
    }

    /// The state columns in the table's order: the lock, then every phase's.
    pub fn states() -> impl Iterator<Item = Column> {
        std::iter::once(Column::LockState)
            .chain(repro_core::Phase::ALL.iter().map(|p| Column::of(*p)))
    }
}

/// The stored words of `c`, one per column of [`Column::states`].
pub fn state_words(c: repro_core::Columns) -> impl Iterator<Item = (Column, &'static str)> {
    Column::states().zip(c.words())
}
