//! `dataset_status.sample` and `dataset_status.priority`: datasets grouped into samples (what
//! operators think in), and the order in which they get work when budget is short (highest
//! priority first, then the oldest).

use sea_orm_migration::{prelude::*, schema::*};

use crate::DatasetStatus as D;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum New {
    Sample,
    Priority,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(string_len_null(New::Sample, 100))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(integer(New::Priority).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dataset_status_sample")
                    .table(D::Table)
                    .col(New::Sample)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_dataset_status_sample")
                    .table(D::Table)
                    .to_owned(),
            )
            .await?;
        for col in [New::Sample, New::Priority] {
            manager
                .alter_table(Table::alter().table(D::Table).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}
