//! `transitions`: the append-only history of every state change (who, when, from, to, why).

use sea_orm_migration::{prelude::*, schema::*};

use crate::DatasetStatus as D;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Transitions {
    Table,
    Id,
    DatasetId,
    Entity,
    EntityId,
    FromState,
    ToState,
    Via,
    Actor,
    Reason,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Transitions::Table)
                    .col(big_pk_auto(Transitions::Id))
                    .col(big_integer(Transitions::DatasetId))
                    .col(string_len(Transitions::Entity, 16))
                    .col(big_integer(Transitions::EntityId))
                    .col(string_len(Transitions::FromState, 200))
                    .col(string_len(Transitions::ToState, 200))
                    .col(string_len(Transitions::Via, 32))
                    .col(string_len(Transitions::Actor, 200))
                    .col(text_null(Transitions::Reason))
                    .col(date_time(Transitions::At))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transitions_dataset")
                            .from(Transitions::Table, Transitions::DatasetId)
                            .to(D::Table, D::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_transitions_dataset_entity")
                    .table(Transitions::Table)
                    .col(Transitions::DatasetId)
                    .col(Transitions::Entity)
                    .col(Transitions::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Transitions::Table).to_owned())
            .await
    }
}
