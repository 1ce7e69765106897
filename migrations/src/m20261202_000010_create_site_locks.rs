//! `site_lock`: one row per site, locked (`SELECT ... FOR UPDATE`) by a transaction that
//! spends the site's budget, so two processes cannot both take its last slot (SQLite needs
//! none: its writers take turns); and `dataset_status.waiting`: what of a dataset waited
//! for budget in its last run, for `dataset show` and the page.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SiteLock {
    Table,
    Site,
}

#[derive(DeriveIden)]
enum New {
    Waiting,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SiteLock::Table)
                    // `""` for datasets registered without a site.
                    .col(string_len(SiteLock::Site, 200).primary_key())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(crate::DatasetStatus::Table)
                    .add_column(text_null(New::Waiting))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(crate::DatasetStatus::Table)
                    .drop_column(New::Waiting)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(SiteLock::Table).to_owned())
            .await
    }
}
