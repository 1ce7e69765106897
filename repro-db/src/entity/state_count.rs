//! `state_count`: how many rows of an entity a dataset has in each state, kept by the
//! writes that move them.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "state_count")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dataset_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub state: String,
    pub n: i64,
    /// The raw files' sizes (files only; migration 15).
    pub bytes: i64,
    /// Their TMB files' sizes (files only; migration 15).
    pub tmb_bytes: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
