//! `merge_group`: a group of TMB files of one dataset, its merged file and whether that is
//! declared to the catalog.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{DatasetStatus as D, MergeGroup as G};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(G::Table)
                    .col(big_pk_auto(G::Id))
                    .col(big_integer(G::DatasetId))
                    .col(integer(G::GroupNo))
                    .col(string_len(G::State, 32))
                    .col(integer(G::Attempts))
                    .col(integer(G::AttemptBase))
                    .col(integer(G::NFiles))
                    .col(big_integer(G::Bytes))
                    .col(string_len_null(G::MergedFile, 512))
                    .col(big_integer_null(G::MergedSize))
                    .col(text_null(G::LastError))
                    .col(date_time(G::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_merge_group_dataset")
                            .from(G::Table, G::DatasetId)
                            .to(D::Table, D::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_merge_group_dataset_no")
                    .table(G::Table)
                    .col(G::DatasetId)
                    .col(G::GroupNo)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(G::Table).to_owned())
            .await
    }
}
