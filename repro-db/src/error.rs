//! The errors of the storage layer.

use repro_core::view::{ApplyError, Conflict, IllegalChange};

/// Why a storage operation failed. Nothing was written unless it says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database URL is not one this tool can use.
    #[error("bad database URL {url:?}: {why}")]
    BadUrl {
        /// The URL as given (without its password).
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The database server could not be reached (or did not answer in time).
    #[error("cannot reach the database at {url}: {why}")]
    Unreachable {
        /// The URL as given (without its password).
        url: String,
        /// What the driver said.
        why: String,
    },
    /// The schema is missing or older than this version of the tool.
    #[error("the database schema is {what}; run `repro init` to create or upgrade it")]
    SchemaOutdated {
        /// `missing` or `N migration(s) behind`.
        what: String,
    },
    /// No dataset of that name.
    #[error("no dataset named {0:?}")]
    NotFound(String),
    /// A dataset of that name exists already.
    #[error("a dataset named {0:?} already exists")]
    Exists(String),
    /// Two raw files of one dataset with the same logical name.
    #[error("dataset {dataset:?} lists file {lfn:?} twice")]
    DuplicateFile {
        /// The dataset.
        dataset: String,
        /// The repeated logical file name.
        lfn: String,
    },
    /// A value too large to store.
    #[error("{what} is out of range: {value}")]
    OutOfRange {
        /// What was being stored.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// A row that does not fit the lifecycle: an unknown word, columns that contradict the
    /// chain, a reference to nothing. Never repaired silently.
    #[error("corrupt row in {table} (id {id}): {why}")]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: i64,
        /// What does not fit.
        why: String,
    },
    /// Another process changed the row first; re-read and decide again.
    #[error("conflict: {0}")]
    Conflict(#[from] Conflict),
    /// A change breaks a lifecycle rule: its table has no such move, or the stored files
    /// and groups do not found it. Checked before anything of the batch is written; nothing
    /// was.
    #[error("refused before writing: {0}")]
    Illegal(#[from] IllegalChange),
    /// The change would take a site past one of its limits (another process took the
    /// budget first). Nothing was written; the work waits for the next run.
    #[error(
        "over budget at {site}: {limit} would be {used}, the limit is {max}; nothing was written"
    )]
    OverBudget {
        /// The site (`-` for datasets at none).
        site: String,
        /// The limit.
        limit: repro_core::Limit,
        /// What would be in flight.
        used: u64,
        /// The limit's value.
        max: u64,
    },
    /// Another process holds the dataset's lease.
    #[error("dataset {dataset:?} is being worked on by {owner} (lease until {until} UTC)")]
    LeaseHeld {
        /// The dataset.
        dataset: String,
        /// Who holds it.
        owner: String,
        /// Until when.
        until: chrono::NaiveDateTime,
    },
    /// The disk under the database is full (SQLite's `SQLITE_FULL`, MariaDB's "table is
    /// full", PostgreSQL's `disk_full`). The transaction was rolled back: nothing of it was
    /// written.
    #[error("the disk holding the database is full; nothing of this change was written ({0})")]
    DiskFull(String),
    /// The connection to the server broke while working (the server shut down or
    /// restarted, the network went away). Every change is one guarded transaction, so one
    /// under way was written whole or not at all; the next run re-reads what is stored.
    #[error(
        "lost the connection to the database ({0}); a change under way was written whole or not at all, and the next run carries on from what is stored"
    )]
    ConnectionLost(String),
    /// The database said no.
    #[error("database error: {0}")]
    Db(sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for DbError {
    fn from(e: sea_orm::DbErr) -> Self {
        if is_disk_full(&e) {
            DbError::DiskFull(e.to_string())
        } else if is_connection_lost(&e) {
            DbError::ConnectionLost(e.to_string())
        } else {
            DbError::Db(e)
        }
    }
}

fn sqlx_error(e: &sea_orm::DbErr) -> Option<&sea_orm::sqlx::Error> {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::Query(RuntimeErr::SqlxError(s))
        | DbErr::Exec(RuntimeErr::SqlxError(s))
        | DbErr::Conn(RuntimeErr::SqlxError(s)) => Some(s),
        _ => None,
    }
}

/// Whether the connection broke under the statement: an I/O error, a closed pool, or the
/// server saying it is going away (PostgreSQL's class 57P and 08, MariaDB's 08S01).
fn is_connection_lost(e: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as E;
    match sqlx_error(e) {
        Some(E::Io(_) | E::PoolClosed | E::PoolTimedOut | E::WorkerCrashed | E::Protocol(_)) => {
            return true;
        }
        Some(E::Database(d)) => {
            if let Some(code) = d.code()
                && (code.starts_with("57P") || code.starts_with("08"))
            {
                return true;
            }
        }
        _ => {}
    }
    let text = e.to_string();
    [
        "error communicating with database",
        "terminating connection",
        "server has gone away",
        "Lost connection",
        "connection closed",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// Whether the database refused for want of disk space: by the error code where the driver
/// gives one, else by the words each server uses.
fn is_disk_full(e: &sea_orm::DbErr) -> bool {
    if let Some(code) = sqlx_error(e)
        .and_then(|s| s.as_database_error())
        .and_then(|d| d.code())
    {
        // SQLite: SQLITE_FULL (13); PostgreSQL: disk_full (53100); MariaDB reports
        // ER_RECORD_FILE_FULL (1114) and ER_DISK_FULL (1021) with SQLSTATE HY000.
        if matches!(&*code, "13" | "53100") {
            return true;
        }
    }
    let text = e.to_string();
    [
        "database or disk is full",
        "No space left on device",
        "is full",
        "disk full",
    ]
    .iter()
    .any(|w| text.contains(w))
}

impl From<ApplyError> for DbError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Conflict(c) => DbError::Conflict(c),
            ApplyError::Illegal(i) => DbError::Illegal(i),
        }
    }
}

impl DbError {
    /// Whether this is a lost race that the caller should answer by re-reading.
    pub fn is_conflict(&self) -> bool {
        matches!(self, DbError::Conflict(_) | DbError::LeaseHeld { .. })
    }
}

/// Result of a storage operation.
pub type Result<T, E = DbError> = std::result::Result<T, E>;
