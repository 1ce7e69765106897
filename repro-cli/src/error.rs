//! The binary's error: the library's typed error, or a problem with the command line
//! itself, with the exit code derived from it.

use std::process::ExitCode;

use repro_run::ErrorKind;

/// What went wrong. The exit code follows from the source: 2 for bad input, 3 for a
/// refusal of the lifecycle, 4 for a lost race, 1 for anything else.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the drivers, the store or the core.
    #[error(transparent)]
    Run(#[from] repro_run::Error),
    /// Arguments that parse but do not make sense (an unknown history entity, a bad word).
    #[error("{0}")]
    Usage(String),
    /// A file, the terminal or the network, outside the library.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Run(e) => code(e.kind()),
            CliError::Usage(_) => 2,
            CliError::Io { .. } => 1,
        })
    }
}

/// The exit code of a kind of failure.
pub fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Other => 1,
        ErrorKind::Input => 2,
        ErrorKind::Refused => 3,
        ErrorKind::Conflict => 4,
    }
}

macro_rules! via_run {
    ($($t:ty),+) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::Run(e.into())
            }
        }
    )+};
}
via_run!(
    repro_db::DbError,
    repro_run::ConfigError,
    repro_run::filelist::FileListError,
    repro_core::NameError,
    repro_core::OperatorError
);
