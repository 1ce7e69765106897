//! `hourly_count`: how many history rows of an entity, moved by one event, a dataset has in
//! each hour (`YYYY-MM-DD HH:00`, UTC), kept by the writes that add them.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "hourly_count")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dataset_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub via: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: String,
    pub n: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
