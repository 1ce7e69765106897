//! `recojob_status` and `mergejob_status`: one row per attempt, reserved under a
//! deterministic unique name before it is submitted, with the batch id, outcome, and the
//! paths of its job script and log (the predecessor scripts' links to xml_db).

use sea_orm_migration::{prelude::*, schema::*};

use crate::{DatasetStatus as D, FileStatus as F, MergeGroup as G};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum RecojobStatus {
    Table,
    FileId,
}

#[derive(DeriveIden, Clone, Copy)]
enum MergejobStatus {
    Table,
    GroupId,
}

#[derive(DeriveIden)]
enum Job {
    Id,
    DatasetId,
    Attempt,
    Name,
    BatchId,
    State,
    ExitCode,
    Error,
    ScriptPath,
    LogPath,
    CreatedAt,
    SubmittedAt,
    FinishedAt,
    UpdatedAt,
}

fn job_table(
    table: impl IntoIden + Copy + 'static,
    subject: impl IntoIden + Copy + 'static,
) -> TableCreateStatement {
    Table::create()
        .table(table)
        .col(big_pk_auto(Job::Id))
        .col(big_integer(Job::DatasetId))
        .col(big_integer(subject))
        .col(integer(Job::Attempt))
        .col(string_len_uniq(Job::Name, 300))
        .col(string_len_null(Job::BatchId, 100))
        .col(string_len(Job::State, 16))
        .col(integer_null(Job::ExitCode))
        .col(text_null(Job::Error))
        .col(text_null(Job::ScriptPath))
        .col(text_null(Job::LogPath))
        .col(date_time(Job::CreatedAt))
        .col(date_time_null(Job::SubmittedAt))
        .col(date_time_null(Job::FinishedAt))
        .col(date_time(Job::UpdatedAt))
        .foreign_key(
            ForeignKey::create()
                .from(table, Job::DatasetId)
                .to(D::Table, D::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut reco = job_table(RecojobStatus::Table, RecojobStatus::FileId);
        reco.foreign_key(
            ForeignKey::create()
                .name("fk_recojob_status_file")
                .from(RecojobStatus::Table, RecojobStatus::FileId)
                .to(F::Table, F::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );
        manager.create_table(reco).await?;
        let mut merge = job_table(MergejobStatus::Table, MergejobStatus::GroupId);
        merge.foreign_key(
            ForeignKey::create()
                .name("fk_mergejob_status_group")
                .from(MergejobStatus::Table, MergejobStatus::GroupId)
                .to(G::Table, G::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );
        manager.create_table(merge).await?;
        for (name, table, subject) in [
            (
                "uq_recojob_status_file_attempt",
                RecojobStatus::Table.into_iden(),
                RecojobStatus::FileId.into_iden(),
            ),
            (
                "uq_mergejob_status_group_attempt",
                MergejobStatus::Table.into_iden(),
                MergejobStatus::GroupId.into_iden(),
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(subject)
                        .col(Job::Attempt)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        // Polling live jobs of a dataset.
        for (name, table) in [
            (
                "idx_recojob_status_dataset_state",
                RecojobStatus::Table.into_iden(),
            ),
            (
                "idx_mergejob_status_dataset_state",
                MergejobStatus::Table.into_iden(),
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(Job::DatasetId)
                        .col(Job::State)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MergejobStatus::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RecojobStatus::Table).to_owned())
            .await
    }
}
