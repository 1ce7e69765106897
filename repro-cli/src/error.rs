//! The binary's error: a message with its exit code.

use std::process::ExitCode;

use repro_db::DbError;

/// What went wrong, sorted by the exit code it gets.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: a name, a file list, the config, a URL. Exit 2.
    #[error("{0}")]
    Input(String),
    /// The lifecycle refuses the transition. Exit 3.
    #[error("{0}")]
    Refused(String),
    /// Another process got there first or holds the lease. Exit 4.
    #[error("{0}")]
    Conflict(String),
    /// Anything else. Exit 1.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Other(_) => 1,
            CliError::Input(_) => 2,
            CliError::Refused(_) => 3,
            CliError::Conflict(_) => 4,
        })
    }

    /// The worse of two errors, for commands over many datasets.
    pub fn rank(&self) -> u8 {
        match self {
            CliError::Other(_) => 4,
            CliError::Input(_) => 3,
            CliError::Refused(_) => 2,
            CliError::Conflict(_) => 1,
        }
    }
}

impl From<DbError> for CliError {
    fn from(e: DbError) -> Self {
        let msg = e.to_string();
        match e {
            DbError::BadUrl { .. }
            | DbError::NotFound(_)
            | DbError::Exists(_)
            | DbError::DuplicateFile { .. }
            | DbError::OutOfRange { .. } => CliError::Input(msg),
            DbError::Conflict(_) | DbError::LeaseHeld { .. } => CliError::Conflict(msg),
            DbError::Refused(_) => CliError::Refused(msg),
            DbError::SchemaOutdated { .. } | DbError::CorruptRow { .. } | DbError::Db(_) => {
                CliError::Other(msg)
            }
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::Input(e.to_string())
    }
}

impl From<repro_core::NameError> for CliError {
    fn from(e: repro_core::NameError) -> Self {
        CliError::Input(e.to_string())
    }
}

impl From<repro_core::OperatorError> for CliError {
    fn from(e: repro_core::OperatorError) -> Self {
        CliError::Refused(e.to_string())
    }
}

impl From<crate::backend::BackendError> for CliError {
    fn from(e: crate::backend::BackendError) -> Self {
        CliError::Other(e.to_string())
    }
}
