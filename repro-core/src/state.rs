//! The runtime view of a dataset's state: what code holds after loading a row.
//!
//! [`DatasetState`] has one variant per phase and, inside it, only the values that phase can
//! take, so a contradictory row (reco `RUNNING` while prestage is still `NOT DONE`) cannot be
//! represented. [`Columns`] is the stored form; [`DatasetState::from_columns`] is the one way
//! back, and it refuses rows that do not fit the chain.

use std::fmt;

use crate::words::{CleanupWord, LockWord, MergeWord, PrestageWord, RecoWord};

/// How the reco phase ended; carried through every later phase because it decides whether
/// merging is `MERGED` or `PARTIAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum RecoOutcome {
    /// Every raw file has its TMB file.
    Completed,
    /// Every raw file is finished but some failed for good.
    Partial,
}

/// Progress of the prestage or reco phase (the phases whose end is another phase's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Progress {
    /// `NOT DONE`.
    NotDone,
    /// `RUNNING`.
    Running,
    /// `FAILED`: nothing can progress without an operator.
    Failed,
}

/// Progress of the merge phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MergeProgress {
    /// `NOT DONE`.
    NotDone,
    /// `RUNNING`: merge jobs are out.
    Running,
    /// `MERGED` or `PARTIAL` (which one follows from the reco outcome): merged files exist,
    /// and they are being declared.
    Merged,
    /// `FAILED`.
    Failed,
}

/// Progress of the cleanup phase; merge is `MERGED_DBUP` throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CleanupProgress {
    /// `NOT DONE`: deletions are due or under way.
    NotDone,
    /// `CLEANED`: the end of the lifecycle.
    Cleaned,
    /// `FAILED`.
    Failed,
}

/// A dataset's position in the lifecycle (the lock column aside), nested by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetState {
    /// In the prestage phase; every later column is `NOT DONE`.
    Prestage(Progress),
    /// Prestage is `PRESTAGE`; in the reco phase.
    Reco(Progress),
    /// Reco ended with the given outcome; in the merge phase.
    Merge(RecoOutcome, MergeProgress),
    /// Merge is `MERGED_DBUP`; in the cleanup phase.
    Cleanup(RecoOutcome, CleanupProgress),
}

/// Declares [`StageKind`] once: each stage with its phase, its words for messages and
/// whether it is a `FAILED` one. `ALL`, `phase`, `ident`, `words`, `is_failed` are derived
/// from this list, so a new stage is one line here (and the compiler then asks for it in
/// every `match` over stages: the typed layer, `DatasetState`, the planner).
macro_rules! stage_kinds {
    ($( $kind:ident: $phase:ident, $words:literal, failed: $failed:literal; )+) => {
        /// The flat kind of a [`DatasetState`]: the nodes of the lifecycle graph.
        ///
        /// The reco outcome is data carried along, not a node of its own, so the graph stays
        /// small.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)] // each variant is named for its column value
        pub enum StageKind {
            $($kind,)+
        }

        impl StageKind {
            /// Every kind, in lifecycle order.
            pub const ALL: &'static [StageKind] = &[$(StageKind::$kind),+];

            /// The phase this kind belongs to.
            pub const fn phase(self) -> Phase {
                match self {
                    $(StageKind::$kind => Phase::$phase,)+
                }
            }

            /// An identifier usable as a node name in diagrams.
            pub const fn ident(self) -> &'static str {
                match self {
                    $(StageKind::$kind => stringify!($kind),)+
                }
            }

            /// The stage in the predecessor scripts' words, for messages: `reco RUNNING`, `merge MERGED or
            /// PARTIAL`.
            pub const fn words(self) -> &'static str {
                match self {
                    $(StageKind::$kind => $words,)+
                }
            }

            /// Whether this is a phase's `FAILED` stage, where only an operator moves it on.
            pub const fn is_failed(self) -> bool {
                match self {
                    $(StageKind::$kind => $failed,)+
                }
            }
        }
    };
}

stage_kinds! {
    PrestageNotDone: Prestage, "prestage NOT DONE", failed: false;
    PrestageRunning: Prestage, "prestage RUNNING", failed: false;
    PrestageFailed: Prestage, "prestage FAILED", failed: true;
    RecoNotDone: Reco, "prestage PRESTAGE (reco NOT DONE)", failed: false;
    RecoRunning: Reco, "reco RUNNING", failed: false;
    RecoFailed: Reco, "reco FAILED", failed: true;
    MergeNotDone: Merge, "reco COMPLETED or PARTIAL (merge NOT DONE)", failed: false;
    MergeRunning: Merge, "merge RUNNING", failed: false;
    MergeDone: Merge, "merge MERGED or PARTIAL", failed: false;
    MergeFailed: Merge, "merge FAILED", failed: true;
    CleanupNotDone: Cleanup, "merge MERGED_DBUP (cleanup NOT DONE)", failed: false;
    CleanupFailed: Cleanup, "cleanup FAILED", failed: true;
    Cleaned: Cleanup, "cleanup CLEANED", failed: false;
}

impl StageKind {
    /// Whether automation has nothing more to do here: `CLEANED`, or `FAILED` somewhere.
    pub const fn at_rest(self) -> bool {
        self.is_failed() || matches!(self, StageKind::Cleaned)
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ident())
    }
}

/// The four phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Staging raw files from tape to disk.
    Prestage,
    /// One reco job per staged raw file.
    Reco,
    /// Merge jobs over groups of TMB files, then declaring the merged files.
    Merge,
    /// Deleting intermediate files.
    Cleanup,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: &'static [Phase] = &[Phase::Prestage, Phase::Reco, Phase::Merge, Phase::Cleanup];

    /// The lower-case name used on the command line (`--phase reco`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Prestage => "prestage",
            Phase::Reco => "reco",
            Phase::Merge => "merge",
            Phase::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = crate::words::ParseWordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::words::ParseWordError {
                column: "phase",
                found: s.to_owned(),
                expected: "`prestage` `reco` `merge` `cleanup`",
            })
    }
}

/// The stored form of a dataset's state: one status word per column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Columns {
    /// `LOCK` or `UNLOCK`.
    pub lock: LockWord,
    /// The prestage column.
    pub prestage: PrestageWord,
    /// The reco column.
    pub reco: RecoWord,
    /// The merge column.
    pub merge: MergeWord,
    /// The cleanup column.
    pub cleanup: CleanupWord,
}

impl Columns {
    /// The stored word of `phase`'s column.
    pub const fn word(&self, phase: Phase) -> &'static str {
        match phase {
            Phase::Prestage => self.prestage.as_str(),
            Phase::Reco => self.reco.as_str(),
            Phase::Merge => self.merge.as_str(),
            Phase::Cleanup => self.cleanup.as_str(),
        }
    }

    /// The columns' names in the table's order: `lock`, then every phase. Outputs and
    /// storage that list the columns take them from here.
    pub fn names() -> impl Iterator<Item = &'static str> {
        std::iter::once(LockWord::COLUMN).chain(Phase::ALL.iter().map(|p| p.as_str()))
    }

    /// The stored words, in the order of [`Columns::names`].
    pub fn words(self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.lock.as_str()).chain(Phase::ALL.iter().map(move |p| self.word(*p)))
    }

    /// Each column's name and stored word, in the order of [`Columns::names`].
    pub fn named(self) -> impl Iterator<Item = (&'static str, &'static str)> {
        Self::names().zip(self.words())
    }
}

impl fmt::Display for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, word)) in self.named().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={word}")?;
        }
        Ok(())
    }
}

/// Stored columns that contradict the lifecycle chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state columns contradict the lifecycle chain ({columns}): {why}")]
pub struct Contradiction {
    /// The columns as found.
    pub columns: Columns,
    /// Which rule they break.
    pub why: &'static str,
}

/// A dataset's whole status: the lock column and its place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// Whether automation may touch the dataset.
    pub lock: LockWord,
    /// Where it is in the lifecycle.
    pub state: DatasetState,
}

impl Status {
    /// A newly registered dataset: `LOCK`, every phase `NOT DONE`.
    pub const NEW: Status = Status {
        lock: LockWord::Lock,
        state: DatasetState::START,
    };

    /// The stored columns.
    pub fn columns(self) -> Columns {
        self.state.columns(self.lock)
    }

    /// Rebuilds a status from stored columns, refusing contradictions.
    pub fn from_columns(c: Columns) -> Result<Status, Contradiction> {
        Ok(Status {
            lock: c.lock,
            state: DatasetState::from_columns(c)?,
        })
    }
}

impl DatasetState {
    /// Where every dataset starts: every phase `NOT DONE`.
    pub const START: DatasetState = DatasetState::Prestage(Progress::NotDone);

    /// Every state, in lifecycle order (each stage, with each reco outcome it can carry).
    pub fn every() -> Vec<DatasetState> {
        let mut v = Vec::new();
        for k in StageKind::ALL {
            for o in [
                None,
                Some(RecoOutcome::Completed),
                Some(RecoOutcome::Partial),
            ] {
                if let Some(s) = DatasetState::at(*k, o)
                    && !v.contains(&s)
                {
                    v.push(s);
                }
            }
        }
        v
    }

    /// The node of the lifecycle graph this state is at.
    pub const fn kind(self) -> StageKind {
        use DatasetState as D;
        use StageKind as K;
        match self {
            D::Prestage(Progress::NotDone) => K::PrestageNotDone,
            D::Prestage(Progress::Running) => K::PrestageRunning,
            D::Prestage(Progress::Failed) => K::PrestageFailed,
            D::Reco(Progress::NotDone) => K::RecoNotDone,
            D::Reco(Progress::Running) => K::RecoRunning,
            D::Reco(Progress::Failed) => K::RecoFailed,
            D::Merge(_, MergeProgress::NotDone) => K::MergeNotDone,
            D::Merge(_, MergeProgress::Running) => K::MergeRunning,
            D::Merge(_, MergeProgress::Merged) => K::MergeDone,
            D::Merge(_, MergeProgress::Failed) => K::MergeFailed,
            D::Cleanup(_, CleanupProgress::NotDone) => K::CleanupNotDone,
            D::Cleanup(_, CleanupProgress::Failed) => K::CleanupFailed,
            D::Cleanup(_, CleanupProgress::Cleaned) => K::Cleaned,
        }
    }

    /// The phase the dataset is in.
    pub const fn phase(self) -> Phase {
        self.kind().phase()
    }

    /// Whether the dataset is CLEANED: its lifecycle is over.
    pub const fn is_cleaned(self) -> bool {
        matches!(self.kind(), StageKind::Cleaned)
    }

    /// How reco ended, once it has.
    pub const fn reco_outcome(self) -> Option<RecoOutcome> {
        match self {
            DatasetState::Merge(o, _) | DatasetState::Cleanup(o, _) => Some(o),
            _ => None,
        }
    }

    /// Builds the state at `kind`, carrying `outcome` where the kind needs one.
    ///
    /// Returns `None` when a post-reco kind is asked for without an outcome.
    pub const fn at(kind: StageKind, outcome: Option<RecoOutcome>) -> Option<DatasetState> {
        use DatasetState as D;
        use StageKind as K;
        Some(match (kind, outcome) {
            (K::PrestageNotDone, _) => D::Prestage(Progress::NotDone),
            (K::PrestageRunning, _) => D::Prestage(Progress::Running),
            (K::PrestageFailed, _) => D::Prestage(Progress::Failed),
            (K::RecoNotDone, _) => D::Reco(Progress::NotDone),
            (K::RecoRunning, _) => D::Reco(Progress::Running),
            (K::RecoFailed, _) => D::Reco(Progress::Failed),
            (_, None) => return None,
            (K::MergeNotDone, Some(o)) => D::Merge(o, MergeProgress::NotDone),
            (K::MergeRunning, Some(o)) => D::Merge(o, MergeProgress::Running),
            (K::MergeDone, Some(o)) => D::Merge(o, MergeProgress::Merged),
            (K::MergeFailed, Some(o)) => D::Merge(o, MergeProgress::Failed),
            (K::CleanupNotDone, Some(o)) => D::Cleanup(o, CleanupProgress::NotDone),
            (K::CleanupFailed, Some(o)) => D::Cleanup(o, CleanupProgress::Failed),
            (K::Cleaned, Some(o)) => D::Cleanup(o, CleanupProgress::Cleaned),
        })
    }

    /// The stored columns for this state under the given lock.
    pub fn columns(self, lock: LockWord) -> Columns {
        use DatasetState as D;
        let reco_word = |o| match o {
            RecoOutcome::Completed => RecoWord::Completed,
            RecoOutcome::Partial => RecoWord::Partial,
        };
        let progress = |p| match p {
            Progress::NotDone => (PrestageWord::NotDone, RecoWord::NotDone),
            Progress::Running => (PrestageWord::Running, RecoWord::Running),
            Progress::Failed => (PrestageWord::Failed, RecoWord::Failed),
        };
        let mut c = Columns {
            lock,
            prestage: PrestageWord::NotDone,
            reco: RecoWord::NotDone,
            merge: MergeWord::NotDone,
            cleanup: CleanupWord::NotDone,
        };
        match self {
            D::Prestage(p) => c.prestage = progress(p).0,
            D::Reco(p) => {
                c.prestage = PrestageWord::Prestage;
                c.reco = progress(p).1;
            }
            D::Merge(o, m) => {
                c.prestage = PrestageWord::Prestage;
                c.reco = reco_word(o);
                c.merge = match (m, o) {
                    (MergeProgress::NotDone, _) => MergeWord::NotDone,
                    (MergeProgress::Running, _) => MergeWord::Running,
                    (MergeProgress::Failed, _) => MergeWord::Failed,
                    (MergeProgress::Merged, RecoOutcome::Completed) => MergeWord::Merged,
                    (MergeProgress::Merged, RecoOutcome::Partial) => MergeWord::Partial,
                };
            }
            D::Cleanup(o, p) => {
                c.prestage = PrestageWord::Prestage;
                c.reco = reco_word(o);
                c.merge = MergeWord::MergedDbup;
                c.cleanup = match p {
                    CleanupProgress::NotDone => CleanupWord::NotDone,
                    CleanupProgress::Cleaned => CleanupWord::Cleaned,
                    CleanupProgress::Failed => CleanupWord::Failed,
                };
            }
        }
        c
    }

    /// Rebuilds the state from stored columns; the lock column is not looked at.
    ///
    /// Every combination that [`DatasetState::columns`] produces is accepted and nothing else:
    /// a phase that left `NOT DONE` before its predecessor was done, a `MERGED` after a
    /// `PARTIAL` reco and the like are a [`Contradiction`].
    pub fn from_columns(c: Columns) -> Result<DatasetState, Contradiction> {
        use DatasetState as D;
        let bad = |why| Err(Contradiction { columns: c, why });
        let later_not_done = |reco: bool, merge: bool, cleanup: bool| {
            (!reco || c.reco == RecoWord::NotDone)
                && (!merge || c.merge == MergeWord::NotDone)
                && (!cleanup || c.cleanup == CleanupWord::NotDone)
        };
        let progress = match c.prestage {
            PrestageWord::NotDone => Some(Progress::NotDone),
            PrestageWord::Running => Some(Progress::Running),
            PrestageWord::Failed => Some(Progress::Failed),
            PrestageWord::Prestage => None,
        };
        if let Some(p) = progress {
            return if later_not_done(true, true, true) {
                Ok(D::Prestage(p))
            } else {
                bad("a later phase left NOT DONE before prestage reached PRESTAGE")
            };
        }
        let outcome = match c.reco {
            RecoWord::NotDone | RecoWord::Running | RecoWord::Failed => {
                let p = match c.reco {
                    RecoWord::NotDone => Progress::NotDone,
                    RecoWord::Running => Progress::Running,
                    _ => Progress::Failed,
                };
                return if later_not_done(false, true, true) {
                    Ok(D::Reco(p))
                } else {
                    bad("a later phase left NOT DONE before reco ended")
                };
            }
            RecoWord::Completed => RecoOutcome::Completed,
            RecoWord::Partial => RecoOutcome::Partial,
        };
        let merge = match c.merge {
            MergeWord::NotDone => MergeProgress::NotDone,
            MergeWord::Running => MergeProgress::Running,
            MergeWord::Failed => MergeProgress::Failed,
            MergeWord::Merged if outcome == RecoOutcome::Completed => MergeProgress::Merged,
            MergeWord::Partial if outcome == RecoOutcome::Partial => MergeProgress::Merged,
            MergeWord::Merged => return bad("merge is MERGED but reco ended PARTIAL"),
            MergeWord::Partial => return bad("merge is PARTIAL but reco ended COMPLETED"),
            MergeWord::MergedDbup => {
                return Ok(D::Cleanup(
                    outcome,
                    match c.cleanup {
                        CleanupWord::NotDone => CleanupProgress::NotDone,
                        CleanupWord::Cleaned => CleanupProgress::Cleaned,
                        CleanupWord::Failed => CleanupProgress::Failed,
                    },
                ));
            }
        };
        if later_not_done(false, false, true) {
            Ok(D::Merge(outcome, merge))
        } else {
            bad("cleanup left NOT DONE before merge reached MERGED_DBUP")
        }
    }
}

impl fmt::Display for DatasetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.columns(LockWord::Unlock);
        write!(
            f,
            "prestage={} reco={} merge={} cleanup={}",
            c.prestage, c.reco, c.merge, c.cleanup
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_state() -> Vec<DatasetState> {
        DatasetState::every()
    }

    #[test]
    fn the_columns_are_listed_by_the_names_their_words_give_for_themselves() {
        use crate::words::{CleanupWord, MergeWord, PrestageWord, RecoWord};
        let stored = [
            LockWord::COLUMN,
            PrestageWord::COLUMN,
            RecoWord::COLUMN,
            MergeWord::COLUMN,
            CleanupWord::COLUMN,
        ];
        assert_eq!(Columns::names().collect::<Vec<_>>(), stored);
        for s in every_state() {
            let c = s.columns(LockWord::Unlock);
            let words: Vec<_> = c.words().collect();
            let fields = [
                c.lock.as_str(),
                c.prestage.as_str(),
                c.reco.as_str(),
                c.merge.as_str(),
                c.cleanup.as_str(),
            ];
            assert_eq!(words, fields, "{s:?}");
        }
    }

    #[test]
    fn every_state_survives_a_trip_through_its_columns() {
        let states = every_state();
        assert_eq!(states.len(), 6 + 7 * 2);
        for s in states {
            for lock in LockWord::ALL {
                let st = Status {
                    lock: *lock,
                    state: s,
                };
                assert_eq!(Status::from_columns(st.columns()), Ok(st));
            }
        }
    }

    #[test]
    fn exactly_the_chain_is_accepted_out_of_all_column_combinations() {
        let produced: Vec<Columns> = every_state()
            .into_iter()
            .map(|s| s.columns(LockWord::Unlock))
            .collect();
        let mut accepted = 0;
        for &prestage in PrestageWord::ALL {
            for &reco in RecoWord::ALL {
                for &merge in MergeWord::ALL {
                    for &cleanup in CleanupWord::ALL {
                        let c = Columns {
                            lock: LockWord::Unlock,
                            prestage,
                            reco,
                            merge,
                            cleanup,
                        };
                        let ok = DatasetState::from_columns(c).is_ok();
                        assert_eq!(ok, produced.contains(&c), "{c}");
                        accepted += usize::from(ok);
                    }
                }
            }
        }
        assert_eq!(accepted, produced.len());
    }

    #[test]
    fn a_contradiction_names_the_columns_and_the_rule() {
        let c = Columns {
            lock: LockWord::Unlock,
            prestage: PrestageWord::NotDone,
            reco: RecoWord::Running,
            merge: MergeWord::NotDone,
            cleanup: CleanupWord::NotDone,
        };
        let e = DatasetState::from_columns(c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "state columns contradict the lifecycle chain (lock=UNLOCK prestage=NOT DONE reco=RUNNING merge=NOT DONE cleanup=NOT DONE): a later phase left NOT DONE before prestage reached PRESTAGE"
        );
    }
}
