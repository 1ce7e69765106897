//! An index for the status page: files finished per hour from the history without reading
//! every history row. (Files per state over the campaign use the (dataset, state) index; a
//! second index on the state alone slowed every bulk move more than it sped the page.)

use sea_orm_migration::prelude::*;

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
            .await
    }
}
