//! `site_tick`: when `repro tick` last ran for each site, so that something can alert when
//! cron stops (the status page's `/metrics` exports it).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SiteTick {
    Table,
    Site,
    LastTickAt,
    LastOwner,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SiteTick::Table)
                    // `""` for datasets registered without a site.
                    .col(string_len(SiteTick::Site, 200).primary_key())
                    .col(date_time(SiteTick::LastTickAt))
                    .col(string_len(SiteTick::LastOwner, 255))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SiteTick::Table).to_owned())
            .await
    }
}
