//! How `repro` reaches the outside world: the [`Backend`] trait the drivers call with the
//! core's decided actions, and its implementations.

pub mod command;
pub mod process;
pub mod sim;
pub mod slurm;

use repro_core::{Action, DatasetView, Outcome, Poll};

/// The outside world failed in a way that is not one attempt's failure: its state cannot be
/// read, a tool is missing. The operation stops for this dataset; what was reserved is
/// resolved by the next check.
#[derive(Debug, thiserror::Error)]
#[error("backend {backend}: {message}")]
pub struct BackendError {
    /// Which backend.
    pub backend: &'static str,
    /// What went wrong.
    pub message: String,
}

/// The storage system, batch system and catalog, as the drivers see them.
///
/// An attempt that fails (a job that crashes, a refused submission, a tool that prints
/// garbage) is an [`Outcome`] of that attempt, never an `Err`; `Err` is for the world
/// itself being unreachable.
pub trait Backend {
    /// Performs `actions` for `view`'s dataset, returning what the world said at once (a
    /// batch id, an immediate refusal, a declaration done).
    fn perform(
        &mut self,
        view: &DatasetView,
        actions: &[Action],
    ) -> Result<Vec<Outcome>, BackendError>;

    /// Answers `polls` for `view`'s dataset; a poll with nothing new answers nothing.
    fn poll(&mut self, view: &DatasetView, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError>;
}
