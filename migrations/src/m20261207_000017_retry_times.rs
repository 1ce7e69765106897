//! `retry_at` and `failing_since` on `file_status` and `merge_group`: when a failed step
//! may be tried again, and since when it has been failing (the start of its retry
//! window), in seconds since the epoch. Both are NULL unless the step is failing. Stored
//! with the row, so that racing hosts and restarts agree on when the next attempt is due.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{FileStatus as F, MergeGroup as G};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum New {
    RetryAt,
    FailingSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for table in [F::Table.into_iden(), G::Table.into_iden()] {
            for col in [New::RetryAt, New::FailingSince] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .add_column(big_integer_null(col))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [F::Table.into_iden(), G::Table.into_iden()] {
            for col in [New::RetryAt, New::FailingSince] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(table.clone())
                            .drop_column(col)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
