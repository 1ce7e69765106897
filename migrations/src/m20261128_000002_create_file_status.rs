//! `file_status`: one row per raw file, with its TMB file once reconstructed and its merge
//! group once grouped.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{DatasetStatus as D, FileStatus as F};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(F::Table)
                    .col(big_pk_auto(F::Id))
                    .col(big_integer(F::DatasetId))
                    .col(string_len(F::Lfn, 512))
                    .col(big_integer(F::Size))
                    .col(string_len(F::State, 32))
                    .col(integer(F::Attempts))
                    .col(integer(F::AttemptBase))
                    .col(text_null(F::LastError))
                    .col(string_len_null(F::TmbPath, 1024))
                    .col(big_integer_null(F::TmbSize))
                    .col(integer_null(F::MergeGroup))
                    .col(date_time(F::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_file_status_dataset")
                            .from(F::Table, F::DatasetId)
                            .to(D::Table, D::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_file_status_dataset_lfn")
                    .table(F::Table)
                    .col(F::DatasetId)
                    .col(F::Lfn)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Counting files per state per dataset, and bulk moves by state.
        manager
            .create_index(
                Index::create()
                    .name("idx_file_status_dataset_state")
                    .table(F::Table)
                    .col(F::DatasetId)
                    .col(F::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(F::Table).to_owned())
            .await
    }
}
