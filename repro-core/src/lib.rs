//! # repro-core
//!
//! The reprocessing lifecycle of a physics dataset (prestage, reconstruction, merge, catalog
//! update, cleanup) as a typed finite-state machine, and the pure decisions that drive it.
//!
//! This crate does no I/O: no files, no database, no clock, no async. Time, when needed,
//! comes in as a value. Storage (`repro-db`) and drivers (`repro-cli`) load state, ask this
//! crate what is due, write the [`Change`]s it returns and perform the [`Action`]s.
//!
//! ```
//! use repro_core::file::FileId;
//! use repro_core::{Action, DatasetName, DatasetView, Outcome, Policy, RawFile, plan, outcome};
//!
//! // A dataset of two raw files, released to automation by an operator.
//! let name = DatasetName::new("p17.wz").unwrap();
//! let files = [RawFile::new(FileId(1), "raw_1", 10), RawFile::new(FileId(2), "raw_2", 10)];
//! let mut view = DatasetView::new(name, files);
//! view.apply(&repro_core::operator::unlock(&view, Some("calibration is in")).unwrap()).unwrap();
//!
//! // What is due: start prestage and stage both files. A driver writes the changes, then
//! // performs the actions.
//! let due = plan(&view, &Policy::default());
//! assert!(matches!(due.actions[..], [Action::Stage { .. }, Action::Stage { .. }]));
//! view.apply(&due.changes).unwrap();
//! assert_eq!(view.status.columns().prestage.to_string(), "RUNNING");
//!
//! // The storage system says the first file is staged: that, too, is a change.
//! let staged = outcome::record(&view, &Outcome::Staged { file: FileId(1) }).unwrap();
//! view.apply(&staged).unwrap();
//! ```
//!
//! - [`words`]: the predecessor scripts' status words, the only thing stored per phase column.
//! - [`state`]: the runtime view of a dataset's state, rebuilt from stored columns.
//! - [`transition`]: the one table of legal transitions and the runtime step.
//! - [`typed`]: the same lifecycle as typestate, where illegal moves do not compile.
//! - [`mod@file`], [`mod@job`]: the raw-file and batch-job lifecycles.
//! - [`view`]: a dataset with its files, jobs and merge groups, and [`Change`]s to it.
//! - [`mod@plan`]: what is due, as data; [`outcome`]: what the outside world reported;
//!   [`operator`]: lock, unlock, retry and reset.

pub mod budget;
pub mod fair;
pub mod file;
pub mod group;
pub mod guard;
pub mod job;
pub mod name;
pub mod operator;
pub mod outage;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod retry;
pub mod rules;
pub mod state;
pub mod transition;
pub mod typed;
pub mod view;
pub mod words;

pub use budget::{Budget, Draw, Limit, Limits, SiteLimits, Usage};
pub use file::{FileEvent, FileId, FileState, TmbFile};
pub use job::{JobEvent, JobKey, JobState, JobSubject};
pub use name::{DatasetName, NameError, SampleName};
pub use operator::OperatorError;
pub use outcome::{ErrorClass, Outcome, StaleOutcome};
pub use plan::{Action, Plan, Poll, plan, plan_for, plan_within, polls};
pub use policy::{Policy, PolicyError};
pub use rules::{IllegalMove, Rule};
pub use state::{Columns, Contradiction, DatasetState, Phase, RecoOutcome, StageKind, Status};
pub use transition::{Edge, Refused, TRANSITIONS, Transition, step};
pub use typed::AnyDataset;
pub use view::{
    ApplyError, BrokenRule, Change, Conflict, DatasetMove, DatasetView, GroupNo, GroupState,
    IllegalChange, Job, MergeGroup, MergedFile, RawFile,
};
pub use words::{CleanupWord, LockWord, MergeWord, ParseWordError, PrestageWord, RecoWord};
