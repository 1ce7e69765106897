//! `dataset_status.outages`: the steps of a dataset whose service was found out (the
//! catalog down, the tape system refusing every request), one a line: `step since until
//! trips error`. Nothing of such a step is tried before its next try.

use sea_orm_migration::{prelude::*, schema::*};

use crate::DatasetStatus as D;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum New {
    Outages,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(text_null(New::Outages))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .drop_column(New::Outages)
                    .to_owned(),
            )
            .await
    }
}
