//! `file_status`: one row per raw file.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "file_status")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub dataset_id: i64,
    pub lfn: String,
    pub size: i64,
    pub state: String,
    pub attempts: i32,
    pub attempt_base: i32,
    pub last_error: Option<String>,
    pub tmb_path: Option<String>,
    pub tmb_size: Option<i64>,
    pub merge_group: Option<i32>,
    pub updated_at: DateTime,
    pub retry_at: Option<i64>,
    pub failing_since: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
