//! The drivers' error: every source kept typed, sorted by what the caller should do.

use repro_core::view::ApplyError;
use repro_core::{NameError, OperatorError};
use repro_db::DbError;

use crate::backend::BackendError;
use crate::config::ConfigError;
use crate::filelist::FileListError;

/// Why a driver, a backend or the configuration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused, lost a race or could not be reached.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The outside world could not be reached or read.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The configuration file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file list is malformed.
    #[error(transparent)]
    FileList(#[from] FileListError),
    /// A dataset name breaks the naming rule.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An operator action the lifecycle refuses.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// The store wrote changes that the in-memory view then refused: a bug, never expected.
    #[error("{dataset}: the database took changes the lifecycle refuses in memory: {source}")]
    Diverged {
        /// The dataset.
        dataset: String,
        /// What the view said.
        source: Box<ApplyError>,
    },
    /// A file or directory the driver needs.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A named dataset that the operation does not apply to at its stage.
    #[error("not now: it is at {found}; {op} runs {when}")]
    NotNow {
        /// The operation, as typed (`cleanup`, `merge --partial`).
        op: &'static str,
        /// The dataset.
        dataset: String,
        /// Its state columns, in the predecessor scripts' words.
        found: String,
        /// When the operation applies, in the predecessor scripts' words.
        when: &'static str,
    },
    /// A named dataset that an operator holds.
    #[error("LOCKed{by}: automation leaves it where it is until `repro unlock {dataset}`")]
    Locked {
        /// The dataset.
        dataset: String,
        /// ` by alice at 2026-12-01 10:00:00 UTC (tape drive down)`, from the history.
        by: String,
    },
    /// A campaign description that cannot be used.
    #[error("campaign {path}: {message}")]
    Campaign {
        /// The file.
        path: String,
        /// What is wrong, naming the key or dataset.
        message: String,
    },
    /// A simulated campaign that did not come to rest.
    #[error("{0}")]
    Stalled(String),
}

/// What an error asks of whoever called: the four kinds the command line maps to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is wrong (a name, a file list, the configuration, a URL): fix it and retry.
    Input,
    /// The lifecycle refuses the move: a person must decide.
    Refused,
    /// Another process got there first or holds the dataset: try again later.
    Conflict,
    /// Anything else: the database, the outside world, a bug.
    Other,
}

impl Error {
    /// Whether this error ends a run over many datasets at once, because every other
    /// dataset would meet it too: the database's disk is full or its server is gone.
    pub fn stops_the_run(&self) -> bool {
        matches!(
            self,
            Error::Db(
                DbError::DiskFull(_) | DbError::Unreachable { .. } | DbError::ConnectionLost(_)
            )
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Db(e) => match e {
                DbError::BadUrl { .. }
                | DbError::NotFound(_)
                | DbError::Exists(_)
                | DbError::DuplicateFile { .. }
                | DbError::OutOfRange { .. } => ErrorKind::Input,
                DbError::Conflict(_) | DbError::LeaseHeld { .. } | DbError::OverBudget { .. } => {
                    ErrorKind::Conflict
                }
                DbError::Illegal(_) => ErrorKind::Refused,
                DbError::Unreachable { .. }
                | DbError::DiskFull(_)
                | DbError::ConnectionLost(_)
                | DbError::SchemaOutdated { .. }
                | DbError::CorruptRow { .. }
                | DbError::Db(_) => ErrorKind::Other,
                // A kind of storage failure added later: not the user's input until said so.
                _ => ErrorKind::Other,
            },
            Error::Config(_) | Error::FileList(_) | Error::Name(_) | Error::Campaign { .. } => {
                ErrorKind::Input
            }
            Error::Operator(_) | Error::NotNow { .. } | Error::Locked { .. } => ErrorKind::Refused,
            Error::Backend(_) | Error::Diverged { .. } | Error::Io { .. } | Error::Stalled(_) => {
                ErrorKind::Other
            }
        }
    }
}

/// Result of a driver operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
