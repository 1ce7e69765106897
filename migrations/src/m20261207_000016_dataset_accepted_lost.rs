//! `dataset_status.accepted_lost`: how many raw files failed for good an operator accepted
//! losing (`repro accept`). A dataset with more files failed for good than that needs a
//! person, whatever its phase, even after `CLEANED`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::DatasetStatus as D;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum New {
    AcceptedLost,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(big_integer(New::AcceptedLost).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .drop_column(New::AcceptedLost)
                    .to_owned(),
            )
            .await
    }
}
