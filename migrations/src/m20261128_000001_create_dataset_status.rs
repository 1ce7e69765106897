//! `dataset_status`: one row per dataset, one column per phase in the predecessor scripts' words.

use sea_orm_migration::{prelude::*, schema::*};

use crate::DatasetStatus as D;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(big_pk_auto(D::Id))
                    .col(string_len_uniq(D::Name, 200))
                    .col(string_len(D::LockState, 16))
                    .col(string_len(D::PrestageState, 16))
                    .col(string_len(D::RecoState, 16))
                    .col(string_len(D::MergeState, 16))
                    .col(string_len(D::CleanupState, 16))
                    .col(string_len_null(D::Site, 100))
                    .col(string_len_null(D::LeaseOwner, 200))
                    .col(date_time_null(D::LeaseUntil))
                    .col(date_time(D::CreatedAt))
                    .col(date_time(D::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // `repro tick --all` selects unlocked datasets that are not at rest, by site.
        manager
            .create_index(
                Index::create()
                    .name("idx_dataset_status_lock_cleanup")
                    .table(D::Table)
                    .col(D::LockState)
                    .col(D::CleanupState)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dataset_status_site")
                    .table(D::Table)
                    .col(D::Site)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(D::Table).to_owned())
            .await
    }
}
