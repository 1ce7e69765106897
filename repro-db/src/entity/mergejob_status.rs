//! `mergejob_status`: one row per job attempt.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mergejob_status")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub dataset_id: i64,
    pub group_id: i64,
    pub attempt: i32,
    #[sea_orm(unique)]
    pub name: String,
    pub batch_id: Option<String>,
    pub state: String,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub script_path: Option<String>,
    pub log_path: Option<String>,
    pub created_at: DateTime,
    pub submitted_at: Option<DateTime>,
    pub finished_at: Option<DateTime>,
    pub updated_at: DateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
