//! Indexes for the status page: files per state over the whole campaign, and files finished
//! per hour from the history, both without reading every row.

use sea_orm_migration::prelude::*;

use crate::FileStatus as F;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Transitions {
    Table,
    Via,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_file_status_state")
                    .table(F::Table)
                    .col(F::State)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transitions_via_at")
                    .table(Transitions::Table)
                    .col(Transitions::Via)
                    .col(Transitions::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_transitions_via_at")
                    .table(Transitions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_file_status_state")
                    .table(F::Table)
                    .to_owned(),
            )
            .await
    }
}
