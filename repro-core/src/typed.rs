//! The lifecycle as typestate: code that knows a dataset's state at compile time.
//!
//! `Dataset<S, L>` is a dataset at stage `S` under lock mode `L`. Each stage is a struct
//! named for where the dataset is and holding only the data valid there (the reco outcome,
//! once reco has ended). Transitions are methods that exist only on the stages where they
//! are legal and consume `self`; automatic ones exist only on [`Unlocked`] datasets. Every
//! method checks its move against the one table, [`crate::TRANSITIONS`], in debug builds.
//!
//! Code that loads a state at run time goes through [`AnyDataset`] and matches to get the
//! typed value back.
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
use crate::transition::{Edge, TRANSITIONS, Transition};
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

    /// Leaves compile-time knowledge behind.
    pub fn into_any(self) -> AnyDataset {
        let status = self.status();
        AnyDataset::recover(self.name, status)
    }

    // The one place a typed move happens; checked against the table in debug builds.
    fn go<T: Stage, M: LockMode>(self, via: Transition, to: T) -> Dataset<T, M> {
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
        Dataset {
            name: self.name,
            stage: to,
            lock: PhantomData,
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
        macro_rules! each {
            ($k:expr) => {
                match $k {
                    Known::PrestagePending(d) => d.status(),
                    Known::Prestaging(d) => d.status(),
                    Known::PrestageFailed(d) => d.status(),
                    Known::RecoPending(d) => d.status(),
                    Known::Reconstructing(d) => d.status(),
                    Known::RecoFailed(d) => d.status(),
                    Known::MergePending(d) => d.status(),
                    Known::Merging(d) => d.status(),
                    Known::Merged(d) => d.status(),
                    Known::MergeFailed(d) => d.status(),
                    Known::Declared(d) => d.status(),
                    Known::CleanupFailed(d) => d.status(),
                    Known::Cleaned(d) => d.status(),
                }
            };
        }
        match self {
            AnyDataset::Locked(k) => each!(k),
            AnyDataset::Unlocked(k) => each!(k),
        }
    }
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
        take!(declared, Clean, clean);
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
