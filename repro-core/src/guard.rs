//! What a dataset transition requires of the dataset's files and merge groups.
//!
//! The lifecycle table says which transitions leave which stage; this module says when
//! the transitions that *close* a phase are founded: `finish_prestage` only when no raw file
//! is still being staged and at least one was, `clean` only when no intermediate file is
//! left, and so on. The planner closes a phase only when these hold (the property tests
//! check it on every step), [`crate::DatasetView::apply`] refuses a move that breaks them, and
//! `repro-db` checks them against the stored rows, inside the writing transaction, before
//! it moves a dataset. Counts are all they need, so a store can answer them with one
//! `GROUP BY`.

use std::collections::BTreeMap;

use crate::file::FileState;
use crate::group::GroupState;
use crate::state::StageKind;
use crate::transition::Transition;

/// How many files and groups of a dataset are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Raw files per state.
    pub files: BTreeMap<FileState, u64>,
    /// Merge groups per state.
    pub groups: BTreeMap<GroupState, u64>,
    /// Reconstructed raw files not yet in a merge group.
    pub ungrouped: u64,
}

impl Tally {
    fn files_in(&self, states: &[FileState]) -> u64 {
        states
            .iter()
            .map(|s| self.files.get(s).copied().unwrap_or(0))
            .sum()
    }

    fn files_where(&self, pred: impl Fn(FileState) -> bool) -> u64 {
        self.files
            .iter()
            .filter(|(s, _)| pred(**s))
            .map(|(_, n)| n)
            .sum()
    }

    fn groups_in(&self, states: &[GroupState]) -> u64 {
        states
            .iter()
            .map(|s| self.groups.get(s).copied().unwrap_or(0))
            .sum()
    }

    fn groups_total(&self) -> u64 {
        self.groups.values().sum()
    }
}

/// A closing transition whose requirement the files and groups do not meet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{via} requires {requirement}")]
pub struct Unmet {
    /// The transition tried.
    pub via: Transition,
    /// What it requires, in words.
    pub requirement: &'static str,
}

/// Files whose staging is not settled: not yet asked for, under way, or to be retried.
const STAGE_OPEN: &[FileState] = &[
    FileState::Registered,
    FileState::Staging,
    FileState::StageFailed,
];
/// Files whose reco is not settled.
const RECO_OPEN: &[FileState] = &[
    FileState::Registered,
    FileState::Staging,
    FileState::StageFailed,
    FileState::Staged,
    FileState::RecoSubmitted,
    FileState::RecoFailed,
];

/// Whether `via`, taken from `from`, is founded on `tally`.
pub fn admits(from: StageKind, via: Transition, tally: &Tally) -> Result<(), Unmet> {
    match requirement(from, via, tally) {
        Some(requirement) => Err(Unmet { via, requirement }),
        None => Ok(()),
    }
}

/// The first of `checks` (whether it is unmet, what it requires) that is unmet.
fn first(checks: &[(bool, &'static str)]) -> Option<&'static str> {
    checks.iter().find(|(unmet, _)| *unmet).map(|(_, r)| *r)
}

/// What `via`, taken from `from`, requires of `t` and does not find; `None` when it is
/// founded.
fn requirement(from: StageKind, via: Transition, t: &Tally) -> Option<&'static str> {
    use Transition as T;
    let none_staged = t.files_where(|s| !s.failed_for_good()) == 0;
    let reco_open = t.files_in(RECO_OPEN) > 0;
    match via {
        T::FinishPrestage => first(&[
            (
                t.files_in(STAGE_OPEN) > 0,
                "every raw file staged or failed for good",
            ),
            (none_staged, "at least one raw file staged"),
        ]),
        T::FailPrestage => first(&[(!none_staged, "every raw file failed for good")]),
        T::CompleteReco => first(&[(
            t.files_where(|s| !s.has_tmb()) > 0,
            "a TMB file for every raw file",
        )]),
        T::PartialReco => first(&[
            (reco_open, "every raw file reconstructed or failed for good"),
            (
                t.files_where(FileState::has_tmb) == 0,
                "at least one TMB file",
            ),
            (
                t.files_where(FileState::failed_for_good) == 0,
                "at least one raw file failed for good (else it is complete)",
            ),
        ]),
        T::FailReco => first(&[(
            reco_open || t.files_where(FileState::has_tmb) > 0,
            "every raw file failed for good",
        )]),
        T::FinishMerge | T::FailMerge | T::DeclareMerged => merge_requirement(from, via, t),
        T::Clean => first(&[(
            t.files_in(&[
                FileState::Reconstructed,
                FileState::Merged,
                FileState::Deleting,
            ]) > 0,
            "every intermediate file deleted",
        )]),
        T::FailCleanup => first(&[
            (
                t.files_in(&[FileState::Deleting]) > 0,
                "no deletion under way",
            ),
            (
                t.files_in(&[FileState::Merged]) == 0,
                "an intermediate file left undeleted",
            ),
        ]),
        T::Recover => first(&[(
            t.files_where(FileState::failed_for_good) == 0,
            "at least one raw file failed for good",
        )]),
        // Starting a phase, and every other operator action, asks nothing of the files:
        // the stage it leaves from is requirement enough.
        T::Lock
        | T::Unlock
        | T::StartPrestage
        | T::StartReco
        | T::StartMerge
        | T::Retry
        | T::ResetToPrestage
        | T::ResetToReco => None,
    }
}

/// [`requirement`] for the transitions that end the merge phase.
fn merge_requirement(from: StageKind, via: Transition, t: &Tally) -> Option<&'static str> {
    use GroupState as G;
    use Transition as T;
    match via {
        T::FinishMerge => first(&[
            (
                t.files_in(RECO_OPEN) > 0,
                "no raw file still to stage or reconstruct",
            ),
            (t.ungrouped > 0, "every TMB file in a merge group"),
            (
                t.groups_in(&[G::Merging, G::FailedForGood]) > 0,
                "every merge group merged",
            ),
            (t.groups_total() == 0, "at least one merge group"),
        ]),
        T::FailMerge if from == StageKind::MergeRunning => first(&[
            (
                t.groups_in(&[G::Merging]) > 0,
                "no merge group still merging",
            ),
            (
                t.groups_in(&[G::FailedForGood]) == 0,
                "a merge group failed for good",
            ),
        ]),
        T::FailMerge => first(&[
            (t.groups_in(&[G::Declaring]) > 0, "no declaration under way"),
            (
                t.groups_in(&[G::Merged]) == 0,
                "a merged file left undeclared",
            ),
        ]),
        T::DeclareMerged => first(&[
            (
                t.ungrouped > 0 || t.groups_in(&[G::Declared]) != t.groups_total(),
                "every merged file declared",
            ),
            (t.groups_total() == 0, "at least one merged file"),
        ]),
        _ => None,
    }
}

/// Whether [`admits`] looks at the files and groups at all for `via`; a store can skip
/// counting for the others.
pub const fn needs_tally(via: Transition) -> bool {
    use Transition as T;
    !matches!(
        via,
        T::Lock
            | T::Unlock
            | T::StartPrestage
            | T::StartReco
            | T::StartMerge
            | T::Retry
            | T::ResetToPrestage
            | T::ResetToReco
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(states: &[(FileState, u64)]) -> Tally {
        Tally {
            files: states.iter().copied().collect(),
            ..Tally::default()
        }
    }

    #[test]
    fn prestage_finishes_only_when_nothing_is_left_to_stage() {
        use FileState as F;
        let k = StageKind::PrestageRunning;
        let t = Transition::FinishPrestage;
        assert!(admits(k, t, &files(&[(F::Staged, 3), (F::StageFailedForGood, 1)])).is_ok());
        let err = admits(k, t, &files(&[(F::Staged, 3), (F::Staging, 1)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "finish_prestage requires every raw file staged or failed for good"
        );
        assert!(admits(k, t, &files(&[(F::StageFailedForGood, 2)])).is_err());
        assert!(
            admits(
                k,
                Transition::FailPrestage,
                &files(&[(F::StageFailedForGood, 2)])
            )
            .is_ok()
        );
        assert!(admits(k, Transition::FailPrestage, &files(&[(F::Staged, 1)])).is_err());
    }

    #[test]
    fn reco_ends_complete_partial_or_failed_by_what_the_files_say() {
        use FileState as F;
        let k = StageKind::RecoRunning;
        let all = files(&[(F::Reconstructed, 4)]);
        let some = files(&[(F::Reconstructed, 3), (F::RecoFailedForGood, 1)]);
        let none = files(&[(F::RecoFailedForGood, 4)]);
        let open = files(&[(F::Reconstructed, 3), (F::RecoSubmitted, 1)]);
        assert!(admits(k, Transition::CompleteReco, &all).is_ok());
        assert!(admits(k, Transition::CompleteReco, &some).is_err());
        assert!(admits(k, Transition::PartialReco, &some).is_ok());
        assert!(admits(k, Transition::PartialReco, &all).is_err());
        assert!(admits(k, Transition::PartialReco, &open).is_err());
        assert!(admits(k, Transition::FailReco, &none).is_ok());
        assert!(admits(k, Transition::FailReco, &some).is_err());
    }

    #[test]
    fn merge_finishes_when_every_group_is_merged_and_declares_when_every_one_is_declared() {
        let groups = |g: &[(GroupState, u64)], ungrouped| Tally {
            groups: g.iter().copied().collect(),
            ungrouped,
            ..Tally::default()
        };
        let (run, done) = (StageKind::MergeRunning, StageKind::MergeDone);
        let merged = groups(&[(GroupState::Merged, 2)], 0);
        assert!(admits(run, Transition::FinishMerge, &merged).is_ok());
        assert!(
            admits(
                run,
                Transition::FinishMerge,
                &groups(&[(GroupState::Merged, 2)], 1)
            )
            .is_err()
        );
        assert!(admits(run, Transition::FinishMerge, &Tally::default()).is_err());
        let failed = groups(
            &[(GroupState::Merged, 1), (GroupState::FailedForGood, 1)],
            0,
        );
        assert!(admits(run, Transition::FinishMerge, &failed).is_err());
        assert!(admits(run, Transition::FailMerge, &failed).is_ok());
        assert!(admits(run, Transition::FailMerge, &merged).is_err());
        assert!(admits(done, Transition::DeclareMerged, &merged).is_err());
        let declared = groups(&[(GroupState::Declared, 2)], 0);
        assert!(admits(done, Transition::DeclareMerged, &declared).is_ok());
        assert!(admits(done, Transition::FailMerge, &merged).is_ok());
        assert!(admits(done, Transition::FailMerge, &declared).is_err());
    }

    #[test]
    fn cleanup_ends_only_when_no_intermediate_file_is_left() {
        use FileState as F;
        let k = StageKind::CleanupNotDone;
        let done = files(&[(F::Cleaned, 3), (F::RecoFailedForGood, 1)]);
        assert!(admits(k, Transition::Clean, &done).is_ok());
        assert!(
            admits(
                k,
                Transition::Clean,
                &files(&[(F::Cleaned, 3), (F::Merged, 1)])
            )
            .is_err()
        );
        assert!(admits(k, Transition::FailCleanup, &files(&[(F::Merged, 1)])).is_ok());
        assert!(admits(k, Transition::FailCleanup, &done).is_err());
    }

    #[test]
    fn starting_a_phase_and_operator_actions_need_no_count() {
        for &t in Transition::ALL {
            if !needs_tally(t) {
                assert!(admits(StageKind::PrestageNotDone, t, &Tally::default()).is_ok());
            }
        }
    }
}
