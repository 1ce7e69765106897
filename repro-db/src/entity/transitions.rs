//! `transitions`: the append-only history. A row is one move of one file, job, group or
//! dataset, or (`n > 1`) the same move of `n` of them at once, named by `ids`.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transitions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub dataset_id: i64,
    pub entity: String,
    pub entity_id: i64,
    pub from_state: String,
    pub to_state: String,
    pub via: String,
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime,
    /// How many rows of `entity` this row stands for (a bulk move: migration 13).
    pub n: i64,
    /// When `n > 1`, their ids as a compact set ([`crate::idset`]); `entity_id` is the
    /// first.
    pub ids: Option<String>,
    /// When `n > 1` and their reasons differ, each one's reason (JSON array of strings or
    /// nulls, in the order of `ids`); `reason` is then null.
    pub reasons: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
