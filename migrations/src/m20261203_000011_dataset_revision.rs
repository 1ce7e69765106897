//! `dataset_status.revision` and `dataset_status.settled`: what lets a tick leave a dataset
//! alone, without loading its files, while nothing about it has changed.
//!
//! `revision` counts the write transactions that changed the dataset (each bumps it, on the
//! dataset's row, which they lock first anyway). `settled` is written by a tick that found
//! nothing to record and nothing to do: the revision it read, the policy it planned under
//! and the backend's cursor before it polled. While all three are the same, a tick would
//! find the same nothing again.

use sea_orm_migration::{prelude::*, schema::*};

use crate::DatasetStatus as D;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum New {
    Revision,
    Settled,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(big_integer(New::Revision).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(D::Table)
                    .add_column(string_len_null(New::Settled, 255))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [New::Revision, New::Settled] {
            manager
                .alter_table(Table::alter().table(D::Table).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}
