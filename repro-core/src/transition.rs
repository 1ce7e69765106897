//! The single table of legal dataset transitions, and the runtime step that obeys it.
//!
//! [`TRANSITIONS`] is the lifecycle graph. The typed API in [`crate::typed`] checks every
//! move it makes against this table, the runtime [`step`] looks moves up in it, and
//! `docs/lifecycle.md` holds the diagram [`mermaid`] draws from it; tests hold all three to
//! the same graph.

use std::fmt;

use crate::state::{DatasetState, Phase, RecoOutcome, StageKind, Status};
use crate::words::LockWord;

/// Declares [`Transition`] once: each with its stored name and who takes it; `ALL`,
/// `as_str` and `actor` are derived.
macro_rules! transitions {
    ($( $(#[$m:meta])* $t:ident = $word:literal, $actor:ident; )+) => {
        /// Something that moves a dataset: an automatic step or an operator action.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Transition {
            $( $(#[$m])* $t, )+
        }

        impl Transition {
            /// Every transition.
            pub const ALL: &'static [Transition] = &[$(Transition::$t),+];

            /// Who may take this transition.
            pub const fn actor(self) -> Actor {
                match self {
                    $(Transition::$t => Actor::$actor,)+
                }
            }

            /// The snake_case name used in history rows and logs.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Transition::$t => $word,)+
                }
            }
        }
    };
}

transitions! {
    /// Operator: hold the dataset where it is.
    Lock = "lock", Operator;
    /// Operator: release the dataset to automation.
    Unlock = "unlock", Operator;
    /// Stage requests go out.
    StartPrestage = "start_prestage", Automation;
    /// Every raw file is staged or failed for good, at least one staged.
    FinishPrestage = "finish_prestage", Automation;
    /// No raw file could be staged.
    FailPrestage = "fail_prestage", Automation;
    /// Reco jobs go out.
    StartReco = "start_reco", Automation;
    /// Every raw file has its TMB file.
    CompleteReco = "complete_reco", Automation;
    /// Every raw file is finished, some failed for good.
    PartialReco = "partial_reco", Automation;
    /// No raw file could be reconstructed.
    FailReco = "fail_reco", Automation;
    /// Merge jobs go out.
    StartMerge = "start_merge", Automation;
    /// Every TMB file is covered by a merged file.
    FinishMerge = "finish_merge", Automation;
    /// A merge group or a declaration used up its attempts.
    FailMerge = "fail_merge", Automation;
    /// Every merged file is declared to the catalog (`MERGED_DBUP`).
    DeclareMerged = "declare_merged", Automation;
    /// Every intermediate file is deleted.
    Clean = "clean", Automation;
    /// A deletion used up its attempts.
    FailCleanup = "fail_cleanup", Automation;
    /// Operator: put a `FAILED` phase back to `NOT DONE`, re-arming what failed for good.
    Retry = "retry", Operator;
    /// Operator: go back to the prestage phase, keeping finished work.
    ResetToPrestage = "reset_to_prestage", Operator;
    /// Operator: go back to the reco phase, keeping finished work.
    ResetToReco = "reset_to_reco", Operator;
    /// Operator: bring back raw files that failed for good, after merging (even after
    /// `CLEANED`): they go through every phase again in groups of their own, while what was
    /// merged, declared and cleaned stays as it is.
    Recover = "recover", Operator;
}

impl Transition {
    /// The transition in words, for messages: `reset to reco`, `finish prestage`.
    pub fn words(self) -> String {
        self.as_str().replace('_', " ")
    }

    /// The reset transition that goes back to `phase`, if there is one.
    pub const fn reset_to(phase: Phase) -> Option<Transition> {
        match phase {
            Phase::Prestage => Some(Transition::ResetToPrestage),
            Phase::Reco => Some(Transition::ResetToReco),
            Phase::Merge | Phase::Cleanup => None,
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who takes a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The tool itself, on an unlocked dataset only.
    Automation,
    /// A person; allowed whatever the lock says, and always logged with a reason.
    Operator,
}

/// One edge of the lifecycle graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// Where the edge starts.
    pub from: StageKind,
    /// What moves along it.
    pub via: Transition,
    /// Where it ends.
    pub to: StageKind,
}

const fn e(from: StageKind, via: Transition, to: StageKind) -> Edge {
    Edge { from, via, to }
}

/// Every legal move between lifecycle stages. Lock and unlock are not here: they change the
/// lock column only and are legal at every stage (see [`step`]).
pub const TRANSITIONS: &[Edge] = {
    use StageKind::*;
    use Transition::*;
    &[
        e(PrestageNotDone, StartPrestage, PrestageRunning),
        e(PrestageRunning, FinishPrestage, RecoNotDone),
        e(PrestageRunning, FailPrestage, PrestageFailed),
        e(RecoNotDone, StartReco, RecoRunning),
        e(RecoRunning, CompleteReco, MergeNotDone),
        e(RecoRunning, PartialReco, MergeNotDone),
        e(RecoRunning, FailReco, RecoFailed),
        e(MergeNotDone, StartMerge, MergeRunning),
        e(MergeRunning, FinishMerge, MergeDone),
        e(MergeRunning, FailMerge, MergeFailed),
        e(MergeDone, FailMerge, MergeFailed),
        e(MergeDone, DeclareMerged, CleanupNotDone),
        e(CleanupNotDone, Clean, Cleaned),
        e(CleanupNotDone, FailCleanup, CleanupFailed),
        e(PrestageFailed, Retry, PrestageNotDone),
        e(RecoFailed, Retry, RecoNotDone),
        e(MergeFailed, Retry, MergeNotDone),
        e(CleanupFailed, Retry, CleanupNotDone),
        // Resets go back over phases that are at rest (nothing RUNNING) and stop before
        // cleanup, which may already have deleted the inputs a redo would need.
        e(RecoNotDone, ResetToPrestage, PrestageNotDone),
        e(RecoFailed, ResetToPrestage, PrestageNotDone),
        e(MergeNotDone, ResetToPrestage, PrestageNotDone),
        e(MergeFailed, ResetToPrestage, PrestageNotDone),
        e(MergeDone, ResetToPrestage, PrestageNotDone),
        e(MergeNotDone, ResetToReco, RecoNotDone),
        e(MergeFailed, ResetToReco, RecoNotDone),
        e(MergeDone, ResetToReco, RecoNotDone),
        // Recovery starts over from prestage for the files that failed for good only, so
        // it may follow cleanup: nothing it redoes needs what cleanup deleted.
        e(CleanupNotDone, Recover, PrestageNotDone),
        e(CleanupFailed, Recover, PrestageNotDone),
        e(Cleaned, Recover, PrestageNotDone),
    ]
};

/// Looks up the edge leaving `from` along `via`.
pub fn edge(from: StageKind, via: Transition) -> Option<Edge> {
    TRANSITIONS
        .iter()
        .copied()
        .find(|e| e.from == from && e.via == via)
}

/// A transition refused at run time: the state found and the transition tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No edge of the lifecycle leaves this state along this transition.
    #[error(
        "cannot {} a dataset at {found}: that is done only at {}",
        tried.words(),
        sources(*tried)
    )]
    NoSuchTransition {
        /// The state found.
        found: DatasetState,
        /// Its graph node.
        kind: StageKind,
        /// The transition tried.
        tried: Transition,
    },
    /// Automation tried to move a locked dataset.
    #[error("cannot {} a dataset at {found}: it is LOCKed by an operator", tried.words())]
    Locked {
        /// The state found.
        found: DatasetState,
        /// The transition tried.
        tried: Transition,
    },
    /// Lock on a locked dataset, unlock on an unlocked one.
    #[error("cannot {} a dataset that is already {lock}", tried.words())]
    AlreadyThere {
        /// The lock column found.
        lock: LockWord,
        /// The transition tried.
        tried: Transition,
    },
    /// Reco can only be declared completed or partial with the matching outcome in hand.
    #[error("cannot {} a dataset at {found}: {why}", tried.words())]
    Unfounded {
        /// The state found.
        found: DatasetState,
        /// The transition tried.
        tried: Transition,
        /// What is missing.
        why: &'static str,
    },
}

/// The stages `via` leaves from, in the predecessor scripts' words (`merge MERGED or PARTIAL, merge FAILED`).
fn sources(via: Transition) -> String {
    let mut stages: Vec<StageKind> = TRANSITIONS
        .iter()
        .filter(|e| e.via == via)
        .map(|e| e.from)
        .collect();
    stages.sort();
    let from: Vec<&str> = stages.into_iter().map(StageKind::words).collect();
    match from.len() {
        0 => "no stage".into(),
        _ => from.join(", "),
    }
}

/// The runtime step: applies `via` to `status` or says why not.
///
/// Agrees with [`TRANSITIONS`] edge for edge (a test checks every state against every
/// transition); the typed API is the compile-time view of the same graph.
pub fn step(status: Status, via: Transition) -> Result<Status, Refused> {
    let found = status.state;
    match via {
        Transition::Lock | Transition::Unlock => {
            let to = if via == Transition::Lock {
                LockWord::Lock
            } else {
                LockWord::Unlock
            };
            if status.lock == to {
                return Err(Refused::AlreadyThere {
                    lock: to,
                    tried: via,
                });
            }
            return Ok(Status { lock: to, ..status });
        }
        _ => {}
    }
    if via.actor() == Actor::Automation && status.lock == LockWord::Lock {
        return Err(Refused::Locked { found, tried: via });
    }
    let kind = found.kind();
    let Some(edge) = edge(kind, via) else {
        return Err(Refused::NoSuchTransition {
            found,
            kind,
            tried: via,
        });
    };
    let outcome = match via {
        Transition::CompleteReco => Some(RecoOutcome::Completed),
        Transition::PartialReco => Some(RecoOutcome::Partial),
        _ => found.reco_outcome(),
    };
    let state = DatasetState::at(edge.to, outcome).ok_or(Refused::Unfounded {
        found,
        tried: via,
        why: "no reco outcome to carry",
    })?;
    Ok(Status { state, ..status })
}

/// The lifecycle graph as a Mermaid `stateDiagram-v2`, generated from [`TRANSITIONS`].
///
/// `docs/lifecycle.md` embeds exactly this text; a test keeps them equal.
pub fn mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> PrestageNotDone: register (LOCK)\n");
    for e in TRANSITIONS {
        out.push_str(&format!("    {} --> {}: {}\n", e.from, e.to, e.via));
    }
    out.push_str("    Cleaned --> [*]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn unlocked(state: DatasetState) -> Status {
        Status {
            lock: LockWord::Unlock,
            state,
        }
    }

    fn all_states() -> Vec<DatasetState> {
        DatasetState::every()
    }

    #[test]
    fn runtime_step_accepts_exactly_the_table() {
        let mut taken = BTreeSet::new();
        for s in all_states() {
            for &t in Transition::ALL {
                if matches!(t, Transition::Lock | Transition::Unlock) {
                    continue;
                }
                match step(unlocked(s), t) {
                    Ok(next) => {
                        let e = Edge {
                            from: s.kind(),
                            via: t,
                            to: next.state.kind(),
                        };
                        assert!(TRANSITIONS.contains(&e), "{e:?} is not in the table");
                        taken.insert(e);
                    }
                    Err(err) => assert!(
                        edge(s.kind(), t).is_none(),
                        "step refused a table edge: {err}"
                    ),
                }
            }
        }
        let table: BTreeSet<Edge> = TRANSITIONS.iter().copied().collect();
        assert_eq!(taken, table);
        assert_eq!(table.len(), TRANSITIONS.len(), "the table holds duplicates");
    }

    #[test]
    fn no_two_edges_leave_a_state_along_the_same_transition() {
        for a in TRANSITIONS {
            for b in TRANSITIONS {
                if a != b {
                    assert!(!(a.from == b.from && a.via == b.via), "{a:?} / {b:?}");
                }
            }
        }
    }

    #[test]
    fn automation_never_moves_backwards_and_reaches_cleaned() {
        for e in TRANSITIONS {
            if e.via.actor() == Actor::Automation {
                assert!(e.from < e.to, "{e:?} goes backwards");
            }
        }
        let mut s = Status {
            lock: LockWord::Unlock,
            state: DatasetState::START,
        };
        use Transition::*;
        for t in [
            StartPrestage,
            FinishPrestage,
            StartReco,
            CompleteReco,
            StartMerge,
            FinishMerge,
            DeclareMerged,
            Clean,
        ] {
            s = step(s, t).unwrap();
        }
        assert_eq!(
            s.columns().to_string(),
            "lock=UNLOCK prestage=PRESTAGE reco=COMPLETED merge=MERGED_DBUP cleanup=CLEANED"
        );
    }

    #[test]
    fn locked_datasets_refuse_automation_but_not_operators() {
        let locked = Status {
            lock: LockWord::Lock,
            state: DatasetState::Reco(crate::state::Progress::Failed),
        };
        let err = step(locked, Transition::StartReco).unwrap_err();
        assert!(matches!(err, Refused::Locked { .. }));
        assert_eq!(
            step(locked, Transition::Retry).unwrap().state,
            DatasetState::Reco(crate::state::Progress::NotDone)
        );
        assert_eq!(
            step(locked, Transition::Lock).unwrap_err().to_string(),
            "cannot lock a dataset that is already LOCK"
        );
    }

    #[test]
    fn a_refusal_names_the_state_found_and_the_transition_tried() {
        let err = step(unlocked(DatasetState::START), Transition::Clean).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot clean a dataset at prestage=NOT DONE reco=NOT DONE merge=NOT DONE cleanup=NOT DONE: that is done only at merge MERGED_DBUP (cleanup NOT DONE)"
        );
    }
}
