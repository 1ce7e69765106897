//! The database itself refuses a state word outside the lifecycle's, so a tool that writes
//! SQL directly cannot store one either. MariaDB/MySQL and PostgreSQL get `CHECK`
//! constraints; SQLite, which cannot add a constraint to an existing table, gets a trigger
//! per column and statement kind that aborts the statement.
//!
//! The words are written out here, not read from `repro-core`: a released migration never
//! changes. `repro-db`'s tests hold these lists equal to the core's, so a new state word
//! fails a test until a new migration admits it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One checked column: its table, its name and the words it may hold.
pub struct Checked {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
    /// Every word it may hold.
    pub words: &'static [&'static str],
}

const NOT_DONE: &str = "NOT DONE";

/// Every column this migration checks, with its words.
pub const CHECKED: &[Checked] = &[
    Checked {
        table: "dataset_status",
        column: "lock_state",
        words: &["LOCK", "UNLOCK"],
    },
    Checked {
        table: "dataset_status",
        column: "prestage_state",
        words: &[NOT_DONE, "RUNNING", "PRESTAGE", "FAILED"],
    },
    Checked {
        table: "dataset_status",
        column: "reco_state",
        words: &[NOT_DONE, "RUNNING", "PARTIAL", "COMPLETED", "FAILED"],
    },
    Checked {
        table: "dataset_status",
        column: "merge_state",
        words: &[
            NOT_DONE,
            "RUNNING",
            "PARTIAL",
            "MERGED",
            "MERGED_DBUP",
            "FAILED",
        ],
    },
    Checked {
        table: "dataset_status",
        column: "cleanup_state",
        words: &[NOT_DONE, "CLEANED", "FAILED"],
    },
    Checked {
        table: "file_status",
        column: "state",
        words: &[
            "registered",
            "staging",
            "staged",
            "reco_submitted",
            "reconstructed",
            "merged",
            "deleting",
            "cleaned",
            "stage_failed",
            "reco_failed",
            "stage_failed_for_good",
            "reco_failed_for_good",
        ],
    },
    Checked {
        table: "merge_group",
        column: "state",
        words: &[
            "merging",
            "merged",
            "declaring",
            "declared",
            "failed_for_good",
        ],
    },
    Checked {
        table: "recojob_status",
        column: "state",
        words: JOB_WORDS,
    },
    Checked {
        table: "mergejob_status",
        column: "state",
        words: JOB_WORDS,
    },
];

const JOB_WORDS: &[&str] = &["reserved", "submitted", "running", "done", "failed", "lost"];

/// Attempt counters that may never be negative.
const COUNTERS: &[(&str, &str)] = &[
    ("file_status", "attempts"),
    ("file_status", "attempt_base"),
    ("merge_group", "attempts"),
    ("merge_group", "attempt_base"),
    ("recojob_status", "attempt"),
    ("mergejob_status", "attempt"),
];

/// One check: its name, table, column, the predicate on the column, and the message.
pub(crate) struct Check {
    /// Whether the column holds words (compared byte for byte) or a number.
    pub(crate) words: bool,
    pub(crate) name: String,
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
    pub(crate) predicate: String,
    pub(crate) why: String,
}

/// Every check, in a fixed order (also migration 14's, which moves SQLite's into the tables).
pub(crate) fn checks() -> Vec<Check> {
    let mut out: Vec<Check> = CHECKED
        .iter()
        .map(|c| {
            let words: Vec<String> = c.words.iter().map(|w| format!("'{w}'")).collect();
            Check {
                words: true,
                name: format!("ck_{}_{}", c.table, c.column),
                table: c.table,
                column: c.column,
                predicate: format!("IN ({})", words.join(", ")),
                why: format!(
                    "{}.{} must be one of: {}",
                    c.table,
                    c.column,
                    c.words.join(", ")
                ),
            }
        })
        .collect();
    for (table, column) in COUNTERS {
        out.push(Check {
            words: false,
            name: format!("ck_{table}_{column}"),
            table,
            column,
            predicate: ">= 0".into(),
            why: format!("{table}.{column} must not be negative"),
        });
    }
    out
}

/// The statements that add (`up`) or remove the checks on `backend`: what this
/// migration runs. Public for tests that need a database without its checks (rows from
/// before them) while keeping every later migration.
pub fn statements(backend: DbBackend, up: bool) -> Vec<String> {
    let mut out = Vec::new();
    for Check {
        words,
        name,
        table,
        column,
        predicate,
        why,
    } in checks()
    {
        match (backend, up) {
            (DbBackend::Sqlite, true) => {
                // A trigger reads the row being written as NEW.
                for (kind, event) in [("ins", "INSERT"), ("upd", "UPDATE")] {
                    out.push(format!(
                        "CREATE TRIGGER {name}_{kind} BEFORE {event} ON {table} \
                         WHEN NOT (NEW.{column} {predicate}) \
                         BEGIN SELECT RAISE(ABORT, '{why}'); END"
                    ));
                }
            }
            (DbBackend::Sqlite, false) => {
                for kind in ["ins", "upd"] {
                    out.push(format!("DROP TRIGGER IF EXISTS {name}_{kind}"));
                }
            }
            (DbBackend::MySql, true) => {
                // MariaDB/MySQL compare strings without case by default; `LOCK` is not `lock`.
                let operand = if words {
                    format!("BINARY {column}")
                } else {
                    column.to_owned()
                };
                out.push(format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({operand} {predicate})"
                ));
            }
            (_, true) => out.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({column} {predicate})"
            )),
            (_, false) => out.push(format!("ALTER TABLE {table} DROP CONSTRAINT {name}")),
        }
    }
    out
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in statements(manager.get_database_backend(), true) {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in statements(manager.get_database_backend(), false) {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
