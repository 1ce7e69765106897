//! How `repro` reaches the outside world: the [`Backend`] trait the drivers call with the
//! core's decided actions, and its implementations.

pub mod command;
pub mod process;
pub mod sim;
pub mod slurm;
pub(crate) mod template;

use repro_core::{Action, DatasetName, Outcome, Poll};

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
/// A backend is two calls, made by the [`Driver`](crate::Driver) with what the core
/// decided, for one dataset a call. The driver works on several datasets at once, so the
/// calls for different datasets may overlap: a backend is `Sync` and takes `&self` (keep
/// per-dataset state in the world it talks to, or behind a lock). Everything a backend needs to know is in the actions
/// and polls (file names, job names, batch ids, inputs, outputs): it gets the dataset's
/// name and nothing of its state, so lifecycle questions stay in the core.
///
/// # The contract
///
/// - **`perform` is called only after the actions are reserved.** Every action comes from
///   a plan whose changes (file `staging`, a job row `reserved` under its deterministic
///   name, group `declaring`, file `deleting`) were committed first. A backend may block
///   for as long as its tools take (the driver runs it on a blocking thread); it should
///   bound that with timeouts of its own (the command backend's `timeout_s`).
/// - **It reports what the world said at once**: a batch id for a submission
///   ([`Outcome::Submitted`]), an immediate refusal ([`Outcome::JobFailed`]), a
///   declaration or deletion done. What it cannot know yet it leaves to `poll`.
/// - **An attempt that fails is an `Outcome`, never an `Err`**: a crashed job, a refused
///   submission, a tool that prints garbage. The core counts the attempt and retries it
///   on the next run, or gives up when the policy says so.
/// - **`Err` means the world cannot be reached or read** (the batch system is down, a tool
///   is missing). The driver stops working on that dataset for this run; what was reserved
///   stays reserved, and the next run's polls find out what became of it.
/// - **After a crash, look up by name.** A process can die between committing a
///   reservation and performing it, or between performing it and recording the outcome.
///   `poll` then sees a [`Poll::Job`] without a batch id: the backend looks the job up by
///   its name (`squeue --name`, `condor_q -constraint`) and reports it as submitted (with
///   its id), finished, or lost if the batch system never heard of it. The same holds for
///   [`Poll::Declaration`] and [`Poll::Deletion`]: say whether it happened.
/// - **Report what you see, not what you think is news.** A job the batch system runs is
///   [`Outcome::Started`] on every poll; the core records the first and ignores the rest.
///   No backend reads `view.jobs` to decide what to say.
/// - **Answering nothing is fine.** A poll with no news gets no outcome; an outcome about
///   something that already moved on is skipped by the driver as stale.
///
/// # An example
///
/// A backend where everything succeeds at once and jobs finish by the next poll (the whole
/// program is `examples/own_backend.rs`):
///
/// ```
/// use repro_core::job::JobSubject;
/// use repro_core::{Action, DatasetName, MergedFile, Outcome, Poll, TmbFile};
/// use repro_run::{Backend, BackendError};
///
/// struct AtOnce;
///
/// impl Backend for AtOnce {
///     fn perform(&self, _: &DatasetName, actions: &[Action]) -> Result<Vec<Outcome>, BackendError> {
///         Ok(actions
///             .iter()
///             .map(|a| match a {
///                 Action::Stage { file, .. } => Outcome::Staged { file: *file },
///                 Action::SubmitReco { job, .. } | Action::SubmitMerge { job, .. } => {
///                     Outcome::Submitted { job: *job, batch_id: format!("local.{job}") }
///                 }
///                 Action::Declare { group, .. } => Outcome::Declared { group: *group },
///                 Action::Delete { file, .. } => Outcome::Deleted { file: *file },
///             })
///             .collect())
///     }
///
///     fn poll(&self, dataset: &DatasetName, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
///         Ok(polls
///             .iter()
///             .filter_map(|p| match p {
///                 Poll::Job { job, .. } => Some(match job.subject {
///                     JobSubject::Reco(f) => {
///                         Outcome::RecoDone { job: *job, tmb: TmbFile::new(format!("/tmb/{f}"), 1) }
///                     }
///                     JobSubject::Merge(g) => {
///                         Outcome::MergeDone { job: *job, output: MergedFile::of(dataset, g, 1) }
///                     }
///                 }),
///                 _ => None,
///             })
///             .collect())
///     }
/// }
/// ```
pub trait Backend: Send + Sync {
    /// Performs `actions` for `dataset`, returning what the world said at once (a batch id,
    /// an immediate refusal, a declaration done).
    fn perform(
        &self,
        dataset: &DatasetName,
        actions: &[Action],
    ) -> Result<Vec<Outcome>, BackendError>;

    /// Answers `polls` for `dataset`; a poll with nothing new answers nothing.
    fn poll(&self, dataset: &DatasetName, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError>;

    /// A cursor over what this backend holds for `dataset`: a token that is the same
    /// between two calls only if no answer to any poll of `dataset` can have changed in
    /// between (no work done for it, no request answered, no job started, finished or
    /// lost). `None`, the default, says the backend cannot tell.
    ///
    /// A tick reads the cursor before it polls. When the poll brings nothing new and
    /// there is nothing to do, it keeps the cursor with the dataset; later ticks that read the same
    /// cursor, with nothing written to the dataset since, leave it alone without loading
    /// its files or polling them: one call here per dataset is all a quiet tick costs.
    /// A cursor that stays the same when an answer did change would leave that dataset
    /// alone for good, so when in doubt, answer `None` or a new token.
    fn cursor(&self, dataset: &DatasetName) -> Result<Option<String>, BackendError> {
        let _ = dataset;
        Ok(None)
    }

    /// Kills `jobs` of `dataset` (each a [`Poll::Job`]: its name and, once submitted, its
    /// batch id), for `repro cancel`. A job that has ended already is no error: the
    /// driver asks where each job is afterwards and keeps the output of those that
    /// finished. An error says nothing was killed for sure, and the cancel records
    /// nothing. The default: this backend cannot cancel.
    fn cancel(&self, dataset: &DatasetName, jobs: &[Poll]) -> Result<(), BackendError> {
        let _ = jobs;
        Err(BackendError {
            backend: "backend",
            message: format!("{dataset}: this backend cannot cancel jobs"),
        })
    }

    /// The time the outside world is at, in seconds since the epoch: what failed
    /// attempts wait for before they are tried again. The wall clock, unless the backend
    /// keeps time of its own (the sim's, in a simulation).
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}
