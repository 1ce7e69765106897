//! # repro-core
//!
//! The reprocessing lifecycle of a physics dataset (prestage, reconstruction, merge, catalog
//! update, cleanup) as a typed finite-state machine, and the pure decisions that drive it.
//!
//! This crate does no I/O: no files, no database, no clock, no async. Time, when needed,
//! comes in as a value. Storage (`repro-db`) and drivers (`repro-cli`) load state, ask this
//! crate what is due, write the [`Change`]s it returns and perform the [`Action`]s.
//!
//! - [`words`]: the seed's status words, the only thing stored per phase column.
//! - [`state`]: the runtime view of a dataset's state, rebuilt from stored columns.
//! - [`transition`]: the one table of legal transitions and the runtime step.
//! - [`typed`]: the same lifecycle as typestate, where illegal moves do not compile.
//! - [`mod@file`], [`mod@job`]: the raw-file and batch-job lifecycles.
//! - [`view`]: a dataset with its files, jobs and merge groups, and [`Change`]s to it.
//! - [`mod@plan`]: what is due, as data; [`outcome`]: what the outside world reported;
//!   [`operator`]: lock, unlock, retry and reset.

pub mod file;
pub mod group;
pub mod guard;
pub mod job;
pub mod name;
pub mod operator;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod rules;
pub mod state;
pub mod transition;
pub mod typed;
pub mod view;
pub mod words;

pub use file::{FileEvent, FileId, FileState, TmbFile};
pub use job::{JobEvent, JobKey, JobState, JobSubject};
pub use name::{DatasetName, NameError};
pub use operator::OperatorError;
pub use outcome::{Outcome, StaleOutcome};
pub use plan::{Action, Plan, Poll, plan, plan_for, polls};
pub use policy::{Policy, PolicyError};
pub use rules::{IllegalMove, Rule};
pub use state::{Columns, Contradiction, DatasetState, Phase, RecoOutcome, StageKind, Status};
pub use transition::{Edge, Refused, TRANSITIONS, Transition, step};
pub use typed::{AnyDataset, DatasetMove};
pub use view::{
    ApplyError, BrokenRule, Change, Conflict, DatasetView, GroupNo, GroupState, IllegalChange, Job,
    MergeGroup, MergedFile, RawFile,
};
pub use words::{CleanupWord, LockWord, MergeWord, ParseWordError, PrestageWord, RecoWord};
