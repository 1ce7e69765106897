//! `merge_group`: a group of TMB files, its merged file, declared or not.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "merge_group")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub dataset_id: i64,
    pub group_no: i32,
    pub state: String,
    pub attempts: i32,
    pub attempt_base: i32,
    pub n_files: i32,
    pub bytes: i64,
    pub merged_file: Option<String>,
    pub merged_size: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: DateTime,
    pub retry_at: Option<i64>,
    pub failing_since: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
