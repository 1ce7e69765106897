//! The lifecycle as typestate: code that knows a dataset's state at compile time.
//!
//! `Dataset<S, L>` is a dataset at stage `S` under lock mode `L`. Each stage is a struct
//! named for where the dataset is and holding only the data valid there (the reco outcome,
//! once reco has ended). Transitions are methods that exist only on the stages where they
//! are legal and consume `self`; automatic ones exist only on [`Unlocked`] datasets. Every
//! method checks its move against the one table, [`crate::TRANSITIONS`], in debug builds.
//!
//! Code that loads a state at run time goes through [`AnyDataset`] and matches to get the
//! typed value back, or hands it a [`Transition`] ([`AnyDataset::take`]), which calls the
//! typed method that transition names.
//!
//! A typed value remembers the moves made on it since it was registered or recovered:
//! [`Dataset::into_changes`] turns them into the [`Change`]s a store writes, each guarded by
//! the state before it. This is the only way to obtain a dataset [`Change`], so every
//! dataset move that reaches storage was made by a typed method.
//!
//! ```
//! use repro_core::typed::{AnyDataset, Dataset};
//! use repro_core::{Change, DatasetName, Transition};
//!
//! let d = Dataset::register(DatasetName::new("p17.wz").unwrap()).unlock();
//! let changes = d.start_prestage().into_changes();
//! assert_eq!(changes.len(), 2); // unlock, then start_prestage
//! let Change::Dataset(m) = &changes[1] else { unreachable!() };
//! assert_eq!(m.via(), Transition::StartPrestage);
//!
//! // The same move, at run time:
//! let loaded = AnyDataset::recover(DatasetName::new("p17.wz").unwrap(), m.from());
//! let moved = loaded.take(Transition::StartPrestage).unwrap();
//! assert_eq!(moved.into_changes()[0], changes[1]);
//! ```
//!
//! ```
//! use repro_core::typed::Dataset;
//! use repro_core::{DatasetName, RecoOutcome};
//!
//! let d = Dataset::register(DatasetName::new("p17.wz").unwrap()).unlock();
//! let d = d.start_prestage().finish_prestage().start_reco().partial_reco();
//! assert_eq!(d.stage().reco, RecoOutcome::Partial);
//! let d = d.start_merge().finish_merge().declare_merged().clean();
//! assert_eq!(d.status().columns().merge.to_string(), "MERGED_DBUP");
//! ```
//!
//! Cleanup before the merged files are declared does not compile:
//! ```compile_fail,E0599
//! # use repro_core::typed::Dataset;
//! # use repro_core::DatasetName;
//! let d = Dataset::register(DatasetName::new("x").unwrap()).unlock();
//! let merged = d.start_prestage().finish_prestage().start_reco().complete_reco()
//!     .start_merge().finish_merge();
//! merged.clean(); // `clean` exists only on `Dataset<Declared>` (MERGED_DBUP)
//! ```
//!
//! Merging before reco has ended does not compile:
//! ```compile_fail,E0599
//! # use repro_core::typed::Dataset;
//! # use repro_core::DatasetName;
//! let d = Dataset::register(DatasetName::new("x").unwrap()).unlock();
//! d.start_prestage().finish_prestage().start_reco().start_merge();
//! ```
//!
//! Prestaging twice does not compile:
//! ```compile_fail,E0599
//! # use repro_core::typed::Dataset;
//! # use repro_core::DatasetName;
//! let d = Dataset::register(DatasetName::new("x").unwrap()).unlock();
//! d.start_prestage().start_prestage();
//! ```
//!
//! Automation cannot touch a locked dataset (a new one is locked):
//! ```compile_fail,E0599
//! # use repro_core::typed::Dataset;
//! # use repro_core::DatasetName;
//! Dataset::register(DatasetName::new("x").unwrap()).start_prestage();
//! ```
//!
//! Recovering failed files while reco still runs does not compile (recovery starts over
//! from prestage, so it waits until the merged files are declared):
//! ```compile_fail,E0599
//! # use repro_core::typed::Dataset;
//! # use repro_core::DatasetName;
//! let d = Dataset::register(DatasetName::new("x").unwrap()).unlock();
//! d.start_prestage().finish_prestage().start_reco().recover();
//! ```
//!
//! Retrying a phase that has not failed does not compile:
//! ```compile_fail,E0599
//! # use repro_core::typed::Dataset;
//! # use repro_core::DatasetName;
//! let d = Dataset::register(DatasetName::new("x").unwrap()).unlock();
//! d.start_prestage().retry();
//! ```

use std::marker::PhantomData;

use crate::name::DatasetName;
use crate::state::{
    CleanupProgress, DatasetState, MergeProgress, Progress, RecoOutcome, StageKind, Status,
};
use crate::transition::{Edge, Refused, TRANSITIONS, Transition, step};
use crate::view::{Change, DatasetMove};
use crate::words::LockWord;

mod sealed {
    pub trait Sealed {}
}

/// A lifecycle stage usable as the `S` of [`Dataset<S, L>`]. Sealed: the stages are exactly
/// the nodes of the lifecycle graph.
pub trait Stage: sealed::Sealed + Copy {
    /// The graph node.
    const KIND: StageKind;
    /// The runtime state this stage stands for.
    fn state(self) -> DatasetState;
}

/// A lock mode usable as the `L` of [`Dataset<S, L>`]. Sealed.
pub trait LockMode: sealed::Sealed {
    /// The `lock` column's word.
    const WORD: LockWord;
}

/// `LOCK`: held by an operator; only operator transitions exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked;
/// `UNLOCK`: automation may move the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlocked;
impl sealed::Sealed for Locked {}
impl sealed::Sealed for Unlocked {}
impl LockMode for Locked {
    const WORD: LockWord = LockWord::Lock;
}
impl LockMode for Unlocked {
    const WORD: LockWord = LockWord::Unlock;
}

macro_rules! stages {
    ($( $(#[$m:meta])* $name:ident $([$reco:ident])? => $kind:ident, |$s:ident| $state:expr; )+) => {$(
        stages!(@struct $(#[$m])* $name $([$reco])?);
        impl sealed::Sealed for $name {}
        impl Stage for $name {
            const KIND: StageKind = StageKind::$kind;
            fn state(self) -> DatasetState {
                let $s = self;
                $state
            }
        }
    )+};
    (@struct $(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name;
    };
    (@struct $(#[$m:meta])* $name:ident [reco]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            /// How reco ended.
            pub reco: RecoOutcome,
        }
    };
}

stages! {
    /// Prestage `NOT DONE`: where every dataset starts.
    PrestagePending => PrestageNotDone, |_s| DatasetState::Prestage(Progress::NotDone);
    /// Prestage `RUNNING`: stage requests are out.
    Prestaging => PrestageRunning, |_s| DatasetState::Prestage(Progress::Running);
    /// Prestage `FAILED`.
    PrestageFailed => PrestageFailed, |_s| DatasetState::Prestage(Progress::Failed);
    /// Prestage `PRESTAGE`, reco `NOT DONE`.
    RecoPending => RecoNotDone, |_s| DatasetState::Reco(Progress::NotDone);
    /// Reco `RUNNING`.
    Reconstructing => RecoRunning, |_s| DatasetState::Reco(Progress::Running);
    /// Reco `FAILED`.
    RecoFailed => RecoFailed, |_s| DatasetState::Reco(Progress::Failed);
    /// Reco `PARTIAL` or `COMPLETED`, merge `NOT DONE`.
    MergePending [reco] => MergeNotDone, |s| DatasetState::Merge(s.reco, MergeProgress::NotDone);
    /// Merge `RUNNING`.
    Merging [reco] => MergeRunning, |s| DatasetState::Merge(s.reco, MergeProgress::Running);
    /// Merge `MERGED` or `PARTIAL`: merged files exist and are being declared.
    Merged [reco] => MergeDone, |s| DatasetState::Merge(s.reco, MergeProgress::Merged);
    /// Merge `FAILED`.
    MergeFailed [reco] => MergeFailed, |s| DatasetState::Merge(s.reco, MergeProgress::Failed);
    /// Merge `MERGED_DBUP`, cleanup `NOT DONE`.
    Declared [reco] => CleanupNotDone, |s| DatasetState::Cleanup(s.reco, CleanupProgress::NotDone);
    /// Cleanup `FAILED`.
    CleanupFailed [reco] => CleanupFailed, |s| DatasetState::Cleanup(s.reco, CleanupProgress::Failed);
    /// Cleanup `CLEANED`: the end.
    Cleaned [reco] => Cleaned, |s| DatasetState::Cleanup(s.reco, CleanupProgress::Cleaned);
}

/// A dataset whose stage `S` and lock mode `L` are known at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset<S: Stage, L: LockMode = Unlocked> {
    name: DatasetName,
    stage: S,
    lock: PhantomData<L>,
    /// Moves made since registration or recovery, oldest first.
    moves: Vec<DatasetMove>,
    /// The reason the next move records.
    reason: Option<String>,
}

impl<S: Stage, L: LockMode> Dataset<S, L> {
    /// The dataset's name.
    pub fn name(&self) -> &DatasetName {
        &self.name
    }

    /// The stage's data.
    pub fn stage(&self) -> S {
        self.stage
    }

    /// The runtime status, as stored.
    pub fn status(&self) -> Status {
        Status {
            lock: L::WORD,
            state: self.stage.state(),
        }
    }

    /// Leaves compile-time knowledge behind, keeping the moves made.
    pub fn into_any(self) -> AnyDataset {
        let status = self.status();
        let (moves, reason) = (self.moves, self.reason);
        let mut any = AnyDataset::recover(self.name, status);
        any.restore(moves, reason);
        any
    }

    /// The next move records `reason` in the history (`d.because("tape fixed").retry()`).
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The moves made on this value since it was registered or recovered.
    pub fn moves(&self) -> &[DatasetMove] {
        &self.moves
    }

    /// The moves made, as changes for a store to write in one transaction.
    pub fn into_changes(self) -> Vec<Change> {
        self.moves.into_iter().map(Change::Dataset).collect()
    }

    // The one place a typed move happens; checked against the table in debug builds.
    fn go<T: Stage, M: LockMode>(mut self, via: Transition, to: T) -> Dataset<T, M> {
        debug_assert!(
            matches!(via, Transition::Lock | Transition::Unlock)
                || TRANSITIONS.contains(&Edge {
                    from: S::KIND,
                    via,
                    to: T::KIND
                }),
            "typed move {:?} --{via}--> {:?} is not in TRANSITIONS",
            S::KIND,
            T::KIND,
        );
        let from = self.status();
        let after = Status {
            lock: M::WORD,
            state: to.state(),
        };
        self.moves
            .push(DatasetMove::new(from, via, after, self.reason.take()));
        Dataset {
            name: self.name,
            stage: to,
            lock: PhantomData,
            moves: self.moves,
            reason: None,
        }
    }
}

impl Dataset<PrestagePending, Locked> {
    /// A newly registered dataset: `LOCK`, every phase `NOT DONE`.
    pub fn register(name: DatasetName) -> Self {
        Dataset {
            name,
            stage: PrestagePending,
            lock: PhantomData,
            moves: Vec::new(),
            reason: None,
        }
    }
}

impl<S: Stage> Dataset<S, Locked> {
    /// Operator: release the dataset to automation.
    pub fn unlock(self) -> Dataset<S, Unlocked> {
        let s = self.stage;
        self.go(Transition::Unlock, s)
    }
}

impl<S: Stage> Dataset<S, Unlocked> {
    /// Operator: hold the dataset where it is.
    pub fn lock(self) -> Dataset<S, Locked> {
        let s = self.stage;
        self.go(Transition::Lock, s)
    }
}

macro_rules! automatic {
    ($( $from:ident => $( $(#[$m:meta])* fn $method:ident -> $via:ident => $(|$s:ident|)? $to:ident $({ $($f:tt)* })?; )+ )+) => {$(
        impl Dataset<$from, Unlocked> {$(
            $(#[$m])*
            pub fn $method(self) -> Dataset<$to, Unlocked> {
                $( let $s = self.stage; )?
                let to = $to $({ $($f)* })?;
                self.go(Transition::$via, to)
            }
        )+}
    )+};
}

automatic! {
    PrestagePending =>
        /// Stage requests go out.
        fn start_prestage -> StartPrestage => Prestaging;
    Prestaging =>
        /// Every raw file is staged or failed for good, at least one staged.
        fn finish_prestage -> FinishPrestage => RecoPending;
        /// No raw file could be staged.
        fn fail_prestage -> FailPrestage => PrestageFailed;
    RecoPending =>
        /// Reco jobs go out.
        fn start_reco -> StartReco => Reconstructing;
    Reconstructing =>
        /// Every raw file has its TMB file: reco `COMPLETED`.
        fn complete_reco -> CompleteReco => MergePending { reco: RecoOutcome::Completed };
        /// Every raw file finished, some failed for good: reco `PARTIAL`.
        fn partial_reco -> PartialReco => MergePending { reco: RecoOutcome::Partial };
        /// No raw file could be reconstructed.
        fn fail_reco -> FailReco => RecoFailed;
    MergePending =>
        /// Merge jobs go out.
        fn start_merge -> StartMerge => |s| Merging { reco: s.reco };
    Merging =>
        /// Every TMB file is covered by a merged file: merge `MERGED` or `PARTIAL`.
        fn finish_merge -> FinishMerge => |s| Merged { reco: s.reco };
        /// A merge group used up its attempts.
        fn fail_merge -> FailMerge => |s| MergeFailed { reco: s.reco };
    Merged =>
        /// Every merged file is declared: merge `MERGED_DBUP`.
        fn declare_merged -> DeclareMerged => |s| Declared { reco: s.reco };
        /// A declaration used up its attempts.
        fn fail_merge -> FailMerge => |s| MergeFailed { reco: s.reco };
    Declared =>
        /// Every intermediate file is deleted: cleanup `CLEANED`.
        fn clean -> Clean => |s| Cleaned { reco: s.reco };
        /// A deletion used up its attempts.
        fn fail_cleanup -> FailCleanup => |s| CleanupFailed { reco: s.reco };
}

macro_rules! operator_retry {
    ($( $from:ident => $(|$s:ident|)? $to:ident $({ $($f:tt)* })?; )+) => {$(
        impl<L: LockMode> Dataset<$from, L> {
            /// Operator: put the failed phase back to `NOT DONE`.
            pub fn retry(self) -> Dataset<$to, L> {
                $( let $s = self.stage; )?
                let to = $to $({ $($f)* })?;
                self.go(Transition::Retry, to)
            }
        }
    )+};
}

operator_retry! {
    PrestageFailed => PrestagePending;
    RecoFailed => RecoPending;
    MergeFailed => |s| MergePending { reco: s.reco };
    CleanupFailed => |s| Declared { reco: s.reco };
}

/// Stages an operator may reset back to the prestage phase from: at rest, before cleanup.
pub trait ResettableToPrestage: Stage {}
/// Stages an operator may reset back to the reco phase from: at rest, after reco, before cleanup.
pub trait ResettableToReco: Stage {}
impl ResettableToPrestage for RecoPending {}
impl ResettableToPrestage for RecoFailed {}
impl ResettableToPrestage for MergePending {}
impl ResettableToPrestage for MergeFailed {}
impl ResettableToPrestage for Merged {}
impl ResettableToReco for MergePending {}
impl ResettableToReco for MergeFailed {}
impl ResettableToReco for Merged {}

/// Stages an operator may recover failed-for-good files from: after the merged files are
/// declared, up to and including `CLEANED`.
pub trait Recoverable: Stage {}
impl Recoverable for Declared {}
impl Recoverable for CleanupFailed {}
impl Recoverable for Cleaned {}

impl<S: Recoverable, L: LockMode> Dataset<S, L> {
    /// Operator: bring back the raw files that failed for good. The dataset starts over
    /// at prestage `NOT DONE` for them alone; what was merged, declared and cleaned stays.
    pub fn recover(self) -> Dataset<PrestagePending, L> {
        self.go(Transition::Recover, PrestagePending)
    }
}

impl<S: ResettableToPrestage, L: LockMode> Dataset<S, L> {
    /// Operator: go back to prestage `NOT DONE`, keeping finished work.
    pub fn reset_to_prestage(self) -> Dataset<PrestagePending, L> {
        self.go(Transition::ResetToPrestage, PrestagePending)
    }
}

impl<S: ResettableToReco, L: LockMode> Dataset<S, L> {
    /// Operator: go back to reco `NOT DONE`, keeping finished work.
    pub fn reset_to_reco(self) -> Dataset<RecoPending, L> {
        self.go(Transition::ResetToReco, RecoPending)
    }
}

/// Runs `$e` on the typed dataset inside an [`AnyDataset`] (or a reference to one),
/// whatever its stage.
macro_rules! each {
    ($any:expr, $d:ident => $e:expr) => {
        match $any {
            AnyDataset::Locked(k) => each!(@known k, $d => $e),
            AnyDataset::Unlocked(k) => each!(@known k, $d => $e),
        }
    };
    (@known $k:expr, $d:ident => $e:expr) => {
        match $k {
            Known::PrestagePending($d) => $e,
            Known::Prestaging($d) => $e,
            Known::PrestageFailed($d) => $e,
            Known::RecoPending($d) => $e,
            Known::Reconstructing($d) => $e,
            Known::RecoFailed($d) => $e,
            Known::MergePending($d) => $e,
            Known::Merging($d) => $e,
            Known::Merged($d) => $e,
            Known::MergeFailed($d) => $e,
            Known::Declared($d) => $e,
            Known::CleanupFailed($d) => $e,
            Known::Cleaned($d) => $e,
        }
    };
}

/// Maps the typed dataset inside a [`Known`] to the same stage under another lock.
macro_rules! rewrap {
    ($k:expr, $d:ident => $e:expr) => {
        match $k {
            Known::PrestagePending($d) => Known::PrestagePending($e),
            Known::Prestaging($d) => Known::Prestaging($e),
            Known::PrestageFailed($d) => Known::PrestageFailed($e),
            Known::RecoPending($d) => Known::RecoPending($e),
            Known::Reconstructing($d) => Known::Reconstructing($e),
            Known::RecoFailed($d) => Known::RecoFailed($e),
            Known::MergePending($d) => Known::MergePending($e),
            Known::Merging($d) => Known::Merging($e),
            Known::Merged($d) => Known::Merged($e),
            Known::MergeFailed($d) => Known::MergeFailed($e),
            Known::Declared($d) => Known::Declared($e),
            Known::CleanupFailed($d) => Known::CleanupFailed($e),
            Known::Cleaned($d) => Known::Cleaned($e),
        }
    };
}

/// A typed dataset whose moves a store can save: a [`Dataset`] or an [`AnyDataset`].
pub trait Typed: sealed::Sealed {
    /// The dataset's name.
    fn name(&self) -> &DatasetName;
    /// The moves made since it was registered or loaded, as changes.
    fn into_changes(self) -> Vec<Change>;
}

impl<S: Stage, L: LockMode> sealed::Sealed for Dataset<S, L> {}
impl<S: Stage, L: LockMode> Typed for Dataset<S, L> {
    fn name(&self) -> &DatasetName {
        Dataset::name(self)
    }
    fn into_changes(self) -> Vec<Change> {
        Dataset::into_changes(self)
    }
}
impl sealed::Sealed for AnyDataset {}
impl Typed for AnyDataset {
    fn name(&self) -> &DatasetName {
        AnyDataset::name(self)
    }
    fn into_changes(self) -> Vec<Change> {
        AnyDataset::into_changes(self)
    }
}

/// A dataset at one of the stages, under lock mode `L`: match to recover the typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // one variant per stage, named after it
pub enum Known<L: LockMode> {
    PrestagePending(Dataset<PrestagePending, L>),
    Prestaging(Dataset<Prestaging, L>),
    PrestageFailed(Dataset<PrestageFailed, L>),
    RecoPending(Dataset<RecoPending, L>),
    Reconstructing(Dataset<Reconstructing, L>),
    RecoFailed(Dataset<RecoFailed, L>),
    MergePending(Dataset<MergePending, L>),
    Merging(Dataset<Merging, L>),
    Merged(Dataset<Merged, L>),
    MergeFailed(Dataset<MergeFailed, L>),
    Declared(Dataset<Declared, L>),
    CleanupFailed(Dataset<CleanupFailed, L>),
    Cleaned(Dataset<Cleaned, L>),
}

/// A dataset whose state was loaded at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyDataset {
    /// `LOCK`: only operator transitions are reachable after matching.
    Locked(Known<Locked>),
    /// `UNLOCK`.
    Unlocked(Known<Unlocked>),
}

fn known<L: LockMode>(name: DatasetName, state: DatasetState) -> Known<L> {
    fn at<S: Stage, L: LockMode>(name: DatasetName, stage: S) -> Dataset<S, L> {
        Dataset {
            name,
            stage,
            lock: PhantomData,
            moves: Vec::new(),
            reason: None,
        }
    }
    use DatasetState as D;
    match state {
        D::Prestage(Progress::NotDone) => Known::PrestagePending(at(name, PrestagePending)),
        D::Prestage(Progress::Running) => Known::Prestaging(at(name, Prestaging)),
        D::Prestage(Progress::Failed) => Known::PrestageFailed(at(name, PrestageFailed)),
        D::Reco(Progress::NotDone) => Known::RecoPending(at(name, RecoPending)),
        D::Reco(Progress::Running) => Known::Reconstructing(at(name, Reconstructing)),
        D::Reco(Progress::Failed) => Known::RecoFailed(at(name, RecoFailed)),
        D::Merge(reco, MergeProgress::NotDone) => {
            Known::MergePending(at(name, MergePending { reco }))
        }
        D::Merge(reco, MergeProgress::Running) => Known::Merging(at(name, Merging { reco })),
        D::Merge(reco, MergeProgress::Merged) => Known::Merged(at(name, Merged { reco })),
        D::Merge(reco, MergeProgress::Failed) => Known::MergeFailed(at(name, MergeFailed { reco })),
        D::Cleanup(reco, CleanupProgress::NotDone) => Known::Declared(at(name, Declared { reco })),
        D::Cleanup(reco, CleanupProgress::Failed) => {
            Known::CleanupFailed(at(name, CleanupFailed { reco }))
        }
        D::Cleanup(reco, CleanupProgress::Cleaned) => Known::Cleaned(at(name, Cleaned { reco })),
    }
}

impl AnyDataset {
    /// The typed dataset for a runtime status. Every [`Status`] has exactly one; rows that
    /// do not fit the chain were already refused by [`Status::from_columns`].
    pub fn recover(name: DatasetName, status: Status) -> AnyDataset {
        match status.lock {
            LockWord::Lock => AnyDataset::Locked(known(name, status.state)),
            LockWord::Unlock => AnyDataset::Unlocked(known(name, status.state)),
        }
    }

    /// The runtime status.
    pub fn status(&self) -> Status {
        each!(self, d => d.status())
    }

    /// The dataset's name.
    pub fn name(&self) -> &DatasetName {
        each!(self, d => d.name())
    }

    /// The moves made since recovery, as changes for a store to write.
    pub fn into_changes(self) -> Vec<Change> {
        each!(self, d => d.into_changes())
    }

    /// The moves made since recovery.
    pub fn moves(&self) -> &[DatasetMove] {
        each!(self, d => d.moves())
    }

    /// The next move records `reason` in the history.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        let r = Some(reason.into());
        each!(&mut self, d => d.reason = r);
        self
    }

    fn restore(&mut self, moves: Vec<DatasetMove>, reason: Option<String>) {
        each!(self, d => {
            d.moves = moves;
            d.reason = reason;
        })
    }

    /// Takes `via` by calling the typed method it names, or says why the lifecycle refuses
    /// it (the same refusal as the runtime [`step`]; a test holds the two to one graph).
    pub fn take(self, via: Transition) -> Result<AnyDataset, Refused> {
        let status = self.status();
        let refused = || match step(status, via) {
            Err(e) => e,
            // The typed layer and the table disagree: the graph tests make this unreachable.
            Ok(_) => Refused::NoSuchTransition {
                found: status.state,
                kind: status.state.kind(),
                tried: via,
            },
        };
        match (self, via) {
            (AnyDataset::Unlocked(k), Transition::Lock) => {
                Ok(AnyDataset::Locked(rewrap!(k, d => d.lock())))
            }
            (AnyDataset::Locked(k), Transition::Unlock) => {
                Ok(AnyDataset::Unlocked(rewrap!(k, d => d.unlock())))
            }
            (AnyDataset::Unlocked(k), via)
                if via.actor() == crate::transition::Actor::Automation =>
            {
                automatic(k, via)
                    .map(AnyDataset::Unlocked)
                    .map_err(|_| refused())
            }
            (AnyDataset::Unlocked(k), via) => operator(k, via)
                .map(AnyDataset::Unlocked)
                .map_err(|_| refused()),
            (AnyDataset::Locked(k), via) => operator(k, via)
                .map(AnyDataset::Locked)
                .map_err(|_| refused()),
        }
    }
}

/// The automatic transitions, each by its typed method; `Err` gives the value back.
fn automatic(k: Known<Unlocked>, via: Transition) -> Result<Known<Unlocked>, Known<Unlocked>> {
    use Known as K;
    use Transition as T;
    Ok(match (k, via) {
        (K::PrestagePending(d), T::StartPrestage) => K::Prestaging(d.start_prestage()),
        (K::Prestaging(d), T::FinishPrestage) => K::RecoPending(d.finish_prestage()),
        (K::Prestaging(d), T::FailPrestage) => K::PrestageFailed(d.fail_prestage()),
        (K::RecoPending(d), T::StartReco) => K::Reconstructing(d.start_reco()),
        (K::Reconstructing(d), T::CompleteReco) => K::MergePending(d.complete_reco()),
        (K::Reconstructing(d), T::PartialReco) => K::MergePending(d.partial_reco()),
        (K::Reconstructing(d), T::FailReco) => K::RecoFailed(d.fail_reco()),
        (K::MergePending(d), T::StartMerge) => K::Merging(d.start_merge()),
        (K::Merging(d), T::FinishMerge) => K::Merged(d.finish_merge()),
        (K::Merging(d), T::FailMerge) => K::MergeFailed(d.fail_merge()),
        (K::Merged(d), T::DeclareMerged) => K::Declared(d.declare_merged()),
        (K::Merged(d), T::FailMerge) => K::MergeFailed(d.fail_merge()),
        (K::Declared(d), T::Clean) => K::Cleaned(d.clean()),
        (K::Declared(d), T::FailCleanup) => K::CleanupFailed(d.fail_cleanup()),
        (k, _) => return Err(k),
    })
}

/// The operator's retry and resets, each by its typed method, under either lock.
fn operator<L: LockMode>(k: Known<L>, via: Transition) -> Result<Known<L>, Known<L>> {
    use Known as K;
    use Transition as T;
    Ok(match (k, via) {
        (K::PrestageFailed(d), T::Retry) => K::PrestagePending(d.retry()),
        (K::RecoFailed(d), T::Retry) => K::RecoPending(d.retry()),
        (K::MergeFailed(d), T::Retry) => K::MergePending(d.retry()),
        (K::CleanupFailed(d), T::Retry) => K::Declared(d.retry()),
        (K::RecoPending(d), T::ResetToPrestage) => K::PrestagePending(d.reset_to_prestage()),
        (K::RecoFailed(d), T::ResetToPrestage) => K::PrestagePending(d.reset_to_prestage()),
        (K::MergePending(d), T::ResetToPrestage) => K::PrestagePending(d.reset_to_prestage()),
        (K::MergeFailed(d), T::ResetToPrestage) => K::PrestagePending(d.reset_to_prestage()),
        (K::Merged(d), T::ResetToPrestage) => K::PrestagePending(d.reset_to_prestage()),
        (K::MergePending(d), T::ResetToReco) => K::RecoPending(d.reset_to_reco()),
        (K::MergeFailed(d), T::ResetToReco) => K::RecoPending(d.reset_to_reco()),
        (K::Merged(d), T::ResetToReco) => K::RecoPending(d.reset_to_reco()),
        (K::Declared(d), T::Recover) => K::PrestagePending(d.recover()),
        (K::CleanupFailed(d), T::Recover) => K::PrestagePending(d.recover()),
        (K::Cleaned(d), T::Recover) => K::PrestagePending(d.recover()),
        (k, _) => return Err(k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn edge<S: Stage, T: Stage, L: LockMode, M: LockMode>(
        _: &Dataset<S, L>,
        via: Transition,
        _: &Dataset<T, M>,
    ) -> Edge {
        Edge {
            from: S::KIND,
            via,
            to: T::KIND,
        }
    }

    fn name() -> DatasetName {
        DatasetName::new("tour").unwrap()
    }

    /// Walks every typed method once, recording the edge each one takes.
    fn tour() -> BTreeSet<Edge> {
        use Transition::*;
        let mut seen = BTreeSet::new();
        macro_rules! take {
            ($d:expr, $via:ident, $method:ident) => {{
                let d = $d.clone();
                let next = d.clone().$method();
                seen.insert(edge(&d, $via, &next));
                next
            }};
        }
        let new = Dataset::register(name()).unlock();
        let prestaging = take!(new, StartPrestage, start_prestage);
        let pf = take!(prestaging, FailPrestage, fail_prestage);
        take!(pf, Retry, retry);
        let rp = take!(prestaging, FinishPrestage, finish_prestage);
        take!(rp, ResetToPrestage, reset_to_prestage);
        let reco = take!(rp, StartReco, start_reco);
        let rf = take!(reco, FailReco, fail_reco);
        take!(rf, Retry, retry);
        take!(rf, ResetToPrestage, reset_to_prestage);
        take!(reco, PartialReco, partial_reco);
        let mp = take!(reco, CompleteReco, complete_reco);
        take!(mp, ResetToPrestage, reset_to_prestage);
        take!(mp, ResetToReco, reset_to_reco);
        let merging = take!(mp, StartMerge, start_merge);
        let mf = take!(merging, FailMerge, fail_merge);
        take!(mf, Retry, retry);
        take!(mf, ResetToPrestage, reset_to_prestage);
        take!(mf, ResetToReco, reset_to_reco);
        let merged = take!(merging, FinishMerge, finish_merge);
        take!(merged, FailMerge, fail_merge);
        take!(merged, ResetToPrestage, reset_to_prestage);
        take!(merged, ResetToReco, reset_to_reco);
        let declared = take!(merged, DeclareMerged, declare_merged);
        let cf = take!(declared, FailCleanup, fail_cleanup);
        take!(cf, Retry, retry);
        take!(cf, Recover, recover);
        take!(declared, Recover, recover);
        let cleaned = take!(declared, Clean, clean);
        take!(cleaned, Recover, recover);
        seen
    }

    #[test]
    fn typed_methods_and_the_table_are_the_same_graph() {
        let typed = tour();
        let table: BTreeSet<Edge> = TRANSITIONS.iter().copied().collect();
        let only_typed: Vec<_> = typed.difference(&table).collect();
        let only_table: Vec<_> = table.difference(&typed).collect();
        assert!(
            only_typed.is_empty(),
            "typed moves missing from the table: {only_typed:?}"
        );
        assert!(
            only_table.is_empty(),
            "table edges with no typed method: {only_table:?}"
        );
    }

    #[test]
    fn taking_a_transition_at_run_time_is_the_runtime_step_for_every_state() {
        use crate::words::LockWord;
        let states = DatasetState::every();
        let mut taken = 0;
        for state in states {
            for lock in [LockWord::Lock, LockWord::Unlock] {
                let status = Status { lock, state };
                for &via in Transition::ALL {
                    let any = AnyDataset::recover(name(), status).because("test");
                    match (any.take(via), step(status, via)) {
                        (Ok(moved), Ok(expected)) => {
                            assert_eq!(moved.status(), expected);
                            let changes = moved.into_changes();
                            assert_eq!(changes.len(), 1);
                            let Change::Dataset(m) = &changes[0] else {
                                panic!("not a dataset change: {changes:?}")
                            };
                            assert_eq!((m.from(), m.via(), m.to()), (status, via, expected));
                            assert_eq!(m.reason(), Some("test"));
                            taken += 1;
                        }
                        (Err(got), Err(expected)) => assert_eq!(got, expected),
                        (got, expected) => {
                            panic!("{status:?} {via}: typed {got:?}, runtime {expected:?}")
                        }
                    }
                }
            }
        }
        assert!(taken > TRANSITIONS.len(), "only {taken} moves taken");
    }

    /// A new stage declared in `state.rs` but missing anywhere it must appear fails here.
    #[test]
    fn every_declared_stage_has_a_state_a_typed_value_words_and_edges() {
        use std::collections::HashSet;
        let mut idents = HashSet::new();
        let mut words = HashSet::new();
        for &kind in StageKind::ALL {
            assert!(idents.insert(kind.ident()), "{kind:?}: ident twice");
            assert!(words.insert(kind.words()), "{kind:?}: words twice");
            let state = DatasetState::at(kind, Some(RecoOutcome::Partial))
                .or_else(|| DatasetState::at(kind, None))
                .unwrap_or_else(|| panic!("{kind:?} has no runtime state"));
            assert_eq!(state.kind(), kind);
            assert_eq!(state.phase(), kind.phase());
            let status = Status {
                lock: crate::words::LockWord::Unlock,
                state,
            };
            assert_eq!(
                Status::from_columns(status.columns()),
                Ok(status),
                "{kind:?} does not survive storage"
            );
            assert_eq!(
                AnyDataset::recover(name(), status).status(),
                status,
                "{kind:?} has no typed stage"
            );
            let leaves = TRANSITIONS.iter().any(|e| e.from == kind);
            let reached = TRANSITIONS.iter().any(|e| e.to == kind);
            assert!(leaves, "nothing leaves {kind:?}");
            assert!(
                reached || kind == StageKind::PrestageNotDone,
                "nothing reaches {kind:?}"
            );
            assert_eq!(
                kind.at_rest(),
                kind.is_failed() || kind == StageKind::Cleaned
            );
        }
        assert_eq!(StageKind::ALL.len(), idents.len());
    }

    #[test]
    fn a_typed_value_remembers_its_moves_in_order_with_their_reasons() {
        let d = Dataset::register(name())
            .because("ready")
            .unlock()
            .start_prestage()
            .finish_prestage();
        let vias: Vec<Transition> = d.moves().iter().map(|m| m.via()).collect();
        assert_eq!(
            vias,
            [
                Transition::Unlock,
                Transition::StartPrestage,
                Transition::FinishPrestage
            ]
        );
        assert_eq!(d.moves()[0].reason(), Some("ready"));
        assert_eq!(d.moves()[1].reason(), None);
        // Each move starts where the one before ended.
        for w in d.moves().windows(2) {
            assert_eq!(w[0].to(), w[1].from());
        }
        let any = d.into_any();
        assert_eq!(any.moves().len(), 3);
    }

    #[test]
    fn typed_moves_agree_with_the_runtime_step() {
        let d = Dataset::register(name()).unlock().start_prestage();
        let runtime = crate::transition::step(d.status(), Transition::FinishPrestage).unwrap();
        assert_eq!(d.finish_prestage().status(), runtime);
    }

    #[test]
    fn recovering_a_loaded_state_gives_back_the_same_status() {
        let d = Dataset::register(name())
            .unlock()
            .start_prestage()
            .finish_prestage()
            .start_reco()
            .partial_reco()
            .lock();
        let status = d.status();
        let any = AnyDataset::recover(name(), status);
        assert_eq!(any.status(), status);
        match any {
            AnyDataset::Locked(Known::MergePending(d)) => {
                assert_eq!(d.stage().reco, RecoOutcome::Partial);
                // Only operator moves are reachable on a locked dataset.
                let back = d.reset_to_reco();
                assert_eq!(back.status().columns().reco.to_string(), "NOT DONE");
            }
            other => panic!("recovered the wrong stage: {other:?}"),
        }
    }
}
