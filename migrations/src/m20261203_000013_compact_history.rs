//! A history row may stand for a bulk move: `transitions.n` is how many rows of its entity
//! it is about (1 for the rows written before) and `transitions.ids`, when `n > 1`, their
//! ids as a compact set (`repro_db::idset`: `"101-50100,50102"`; `entity_id` is then the
//! first of them). When their reasons differ (each job's name when reserved, its batch id
//! when submitted), `transitions.reasons` lists them, a JSON array in the order of the
//! ids, and `reason` is null. A move of 50,000 files is one row instead of 50,000, and
//! still says which files moved, when, from what, to what, by what event, by whom and why.
//!
//! Also drops the `(via, at)` index of migration 6. It served the page's chart of files
//! finished per hour; since migration 12 the chart reads `hourly_count`, and nothing reads
//! the history by event and time any more. It cost every history row a second random
//! insert: a third of the history's bytes on disk (107 MiB of 329 MiB after a 200,000-file
//! demo).
//!
//! `down` refuses while a row stands for more than one id: an older `repro` would read it
//! as a move of its first id only, and the history would be wrong without a word.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Transitions {
    Table,
    Via,
    At,
    N,
    Ids,
    Reasons,
}

const VIA_AT: &str = "idx_transitions_via_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(VIA_AT)
                    .table(Transitions::Table)
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Transitions::Table)
                    .add_column(big_integer(Transitions::N).default(1))
                    .to_owned(),
            )
            .await?;
        // A row names up to 10,000 ids and reasons: hundreds of kilobytes, past MariaDB's
        // TEXT (64 KiB); SQLite's and PostgreSQL's TEXT have no such limit.
        let long = manager.get_database_backend() == DbBackend::MySql;
        for col in [Transitions::Ids, Transitions::Reasons] {
            let mut def = ColumnDef::new(col);
            if long {
                def.custom(Alias::new("LONGTEXT"));
            } else {
                def.text();
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(Transitions::Table)
                        .add_column(def.null().to_owned())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let bulk = db
            .query_one_raw(Statement::from_string(
                manager.get_database_backend(),
                "SELECT COUNT(*) AS c FROM transitions WHERE n <> 1",
            ))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        if bulk > 0 {
            return Err(DbErr::Migration(format!(
                "cannot go below migration 13: {bulk} history rows each stand for several \
                 files or jobs, which the older schema cannot say"
            )));
        }
        for col in [Transitions::N, Transitions::Ids, Transitions::Reasons] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Transitions::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(VIA_AT)
                    .table(Transitions::Table)
                    .col(Transitions::Via)
                    .col(Transitions::At)
                    .to_owned(),
            )
            .await
    }
}
