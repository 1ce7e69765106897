//! `site_tick`: when `repro tick` last ran for each site.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "site_tick")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub site: String,
    pub last_tick_at: DateTime,
    pub last_owner: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
