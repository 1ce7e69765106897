//! Operator actions: lock, unlock, retry and reset, as changes.
//!
//! Each one is a distinct transition with its reason in the history. `retry` and `reset`
//! keep all finished work and give what failed for good fresh attempts ("re-arm"); nothing
//! is deleted and nothing finished is redone.

use crate::file::{FileEvent, FileId, FileState};
use crate::job::JobSubject;
use crate::outcome::{ErrorClass, Outcome, StaleOutcome};
use crate::state::{Phase, StageKind};
use crate::transition::{Refused, Transition};
use crate::typed::AnyDataset;
use crate::view::{Change, DatasetView, GroupEvent, GroupState, Job};
use crate::words::LockWord;

/// Why an operator action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The lifecycle does not allow it from here.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// `retry` on a dataset with nothing failed in the phase asked for.
    #[error("nothing to retry in {name}: it is at {found} and nothing in {phase} failed for good")]
    NothingToRetry {
        /// The dataset.
        name: String,
        /// Its state.
        found: crate::state::DatasetState,
        /// The phase asked for (or its current one).
        phase: Phase,
    },
    /// `accept` on a dataset with no loss it has not accepted already.
    #[error(
        "nothing to accept in {name}: {} failed for good, {accepted} accepted already",
        crate::words::count(*lost, "raw file")
    )]
    NothingToAccept {
        /// The dataset.
        name: String,
        /// Its raw files that failed for good.
        lost: u64,
        /// How many of them were accepted.
        accepted: u64,
    },
    /// `recover` on a dataset with no raw file failed for good.
    #[error("nothing to recover in {0}: no raw file of it failed for good")]
    NothingToRecover(String),
    /// A reset, a recovery or an acceptance needs a reason, for the history.
    #[error("this needs a reason (for the history)")]
    NoReason,
    /// There is no reset back to this phase.
    #[error("there is no reset to {0}: a reset goes back to prestage or reco")]
    NoResetTo(Phase),
    /// `cancel` of a phase that has no jobs.
    #[error("{0} has no jobs to cancel: jobs run in reco and merge")]
    NoJobsIn(Phase),
    /// A job cancelled is not where the view has it: a bug, never expected.
    #[error(transparent)]
    Stale(#[from] StaleOutcome),
}

/// The operator's move `via`, made by the typed method it names on the recovered dataset.
fn dataset_change(
    view: &DatasetView,
    via: Transition,
    reason: Option<&str>,
) -> Result<Change, Refused> {
    let mut any = AnyDataset::recover(view.name.clone(), view.status);
    if let Some(r) = reason {
        any = any.because(r);
    }
    let moved = any.take(via)?;
    Ok(moved
        .into_changes()
        .pop()
        .expect("a typed move records exactly one change"))
}

/// Hold the dataset where it is.
pub fn lock(view: &DatasetView, reason: Option<&str>) -> Result<Vec<Change>, OperatorError> {
    Ok(vec![dataset_change(view, Transition::Lock, reason)?])
}

/// Release the dataset to automation.
pub fn unlock(view: &DatasetView, reason: Option<&str>) -> Result<Vec<Change>, OperatorError> {
    Ok(vec![dataset_change(view, Transition::Unlock, reason)?])
}

/// Re-arms what failed in `phase`: files and groups failed for good get fresh attempts,
/// files and groups between attempts start counting again.
fn rearm(view: &DatasetView, phase: Phase) -> Vec<Change> {
    let mut out = Vec::new();
    match phase {
        Phase::Prestage | Phase::Reco => {
            let states: &[FileState] = if phase == Phase::Prestage {
                &[FileState::StageFailedForGood, FileState::StageFailed]
            } else {
                &[FileState::RecoFailedForGood, FileState::RecoFailed]
            };
            for f in view.files.values() {
                if states.contains(&f.state)
                    && (f.state.failed_for_good() || f.attempts > f.attempt_base)
                {
                    out.extend(Change::file(f, FileEvent::Rearm));
                }
            }
        }
        Phase::Merge => {
            for g in view.groups.values() {
                let due = g.state == GroupState::FailedForGood
                    || (g.state == GroupState::Merged && g.attempts > g.attempt_base);
                if due {
                    out.extend(Change::group(g, GroupEvent::Rearm));
                }
            }
        }
        Phase::Cleanup => {
            for f in view.files.values() {
                if f.state == FileState::Merged && f.attempts > f.attempt_base {
                    out.extend(Change::file(f, FileEvent::Rearm));
                }
            }
        }
    }
    out
}

/// Gives fresh attempts to what failed in the phases asked for (`phase`, or every phase
/// up to the current one), at any point of the dataset's life, and moves the dataset so
/// that the re-armed work gets done:
///
/// - a `FAILED` phase goes back to `NOT DONE` (`retry`);
/// - raw files that failed for good in an earlier phase are staged and reconstructed by the
///   phase the dataset is in while it is in reco or merging; a dataset merged or waiting to
///   merge goes back to reco (`reset_to_reco`: its reco outcome is decided again), and one
///   whose merged files are declared is recovered (`recover`): the files go through every
///   phase again in merge groups of their own, while what was merged stays as it is.
///
/// `file`, when given, is the one raw file to retry.
pub fn retry(
    view: &DatasetView,
    phase: Option<Phase>,
    reason: Option<&str>,
    file: Option<FileId>,
) -> Result<Vec<Change>, OperatorError> {
    let current = view.status.state.phase();
    let kind = view.status.state.kind();
    if phase.is_some_and(|p| p > current) {
        return Err(Refused::NoSuchTransition {
            found: view.status.state,
            kind,
            tried: Transition::Retry,
        }
        .into());
    }
    let asked = |p: Phase| phase.map_or(p <= current, |q| q == p);
    let rearmed: Vec<Change> = Phase::ALL
        .iter()
        .copied()
        .filter(|p| asked(*p))
        .flat_map(|p| rearm(view, p))
        .filter(|c| file.is_none_or(|id| matches!(c, Change::File { id: f, .. } if *f == id)))
        .collect();
    let lost = view.files.values().any(|f| {
        f.state.failed_for_good() && file.is_none_or(|id| id == f.id) && asked(f.state.phase())
    });
    let via = match kind {
        _ if !lost || current <= Phase::Reco => {
            (kind.is_failed() && (asked(current) || lost)).then_some(Transition::Retry)
        }
        StageKind::MergeNotDone | StageKind::MergeFailed | StageKind::MergeDone => {
            Some(Transition::ResetToReco)
        }
        StageKind::CleanupNotDone | StageKind::CleanupFailed | StageKind::Cleaned => {
            Some(Transition::Recover)
        }
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(via) = via {
        let default = (via != Transition::Retry).then_some(RETRY_REASON);
        out.push(dataset_change(view, via, reason.or(default))?);
    }
    if rearmed.is_empty() && via != Some(Transition::Retry) {
        return Err(OperatorError::NothingToRetry {
            name: view.name.to_string(),
            found: view.status.state,
            phase: phase.unwrap_or(current),
        });
    }
    out.extend(rearmed);
    Ok(out)
}

/// The history's reason for a retry that moves the dataset back when none was given.
const RETRY_REASON: &str = "retry of the raw files that failed for good";

/// Goes back to the start of `to` (prestage or reco), keeping finished work and re-arming
/// what failed for good in that phase and every later one.
pub fn reset(view: &DatasetView, to: Phase, reason: &str) -> Result<Vec<Change>, OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    let via = Transition::reset_to(to).ok_or(OperatorError::NoResetTo(to))?;
    let mut out = vec![dataset_change(view, via, Some(reason))?];
    for p in Phase::ALL.iter().copied().filter(|p| *p >= to) {
        out.extend(rearm(view, p));
    }
    Ok(out)
}

/// Brings back the raw files that failed for good in a dataset whose merged files are
/// declared (cleanup `NOT DONE` or `FAILED`, or `CLEANED`): the dataset starts over at
/// prestage `NOT DONE`, the failed files get fresh attempts, and they alone go through
/// stage, reco, a merge group of their own, declaration and cleanup.
pub fn recover(view: &DatasetView, reason: &str) -> Result<Vec<Change>, OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    if !view.files.values().any(|f| f.state.failed_for_good()) {
        return Err(OperatorError::NothingToRecover(view.name.to_string()));
    }
    let mut out = vec![dataset_change(view, Transition::Recover, Some(reason))?];
    for p in [Phase::Prestage, Phase::Reco, Phase::Cleanup] {
        out.extend(rearm(view, p));
    }
    Ok(out)
}

/// An operator accepts losing the `lost` raw files of `name` that failed for good, of
/// which `accepted` were accepted before: the number to keep as accepted. The dataset needs
/// a person again only when more than that fail for good.
pub fn accept(
    name: &crate::DatasetName,
    lost: u64,
    accepted: u64,
    reason: &str,
) -> Result<u64, OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    if lost <= accepted {
        return Err(OperatorError::NothingToAccept {
            name: name.to_string(),
            lost,
            accepted,
        });
    }
    Ok(lost)
}

/// The jobs `repro cancel` kills: those of `phase` (reco or merge, both when `None`) that
/// may still produce their output (reserved, submitted or running).
pub fn live_jobs(
    view: &DatasetView,
    phase: Option<Phase>,
) -> Result<impl Iterator<Item = &Job>, OperatorError> {
    has_jobs(phase)?;
    let of_phase = move |s: JobSubject| {
        let p = match s {
            JobSubject::Reco(_) => Phase::Reco,
            JobSubject::Merge(_) => Phase::Merge,
        };
        phase.is_none_or(|q| q == p)
    };
    Ok(view
        .jobs
        .values()
        .filter(move |j| j.state.is_live() && of_phase(j.key.subject)))
}

/// Refuses a cancel without a reason, or of a phase that has no jobs: before anything
/// is killed.
pub fn check_cancel(phase: Option<Phase>, reason: &str) -> Result<(), OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    has_jobs(phase)
}

/// Refuses a phase that has no jobs (reco and merge have them; `None` is both).
fn has_jobs(phase: Option<Phase>) -> Result<(), OperatorError> {
    match phase {
        Some(p) if !matches!(p, Phase::Reco | Phase::Merge) => Err(OperatorError::NoJobsIn(p)),
        _ => Ok(()),
    }
}

/// Records a cancel, once the backend was told to kill the [`live_jobs`] and what
/// finished before it could was recorded: the dataset is LOCKed with `reason` (unless it
/// is already), and each job still live fails with `cancelled: REASON`, a failed attempt
/// of its raw file or merge group. Nothing is lost and nothing is done twice: after
/// `unlock` the attempts are retried under the policy (`retry` re-arms them at once), and
/// the jobs that finished keep their output.
pub fn cancel(
    view: &DatasetView,
    phase: Option<Phase>,
    reason: &str,
) -> Result<Vec<Change>, OperatorError> {
    check_cancel(phase, reason)?;
    let mut out = Vec::new();
    if is_unlocked(view) {
        out.push(dataset_change(view, Transition::Lock, Some(reason))?);
    }
    for job in live_jobs(view, phase)? {
        let failed = Outcome::JobFailed {
            job: job.key,
            exit_code: None,
            reason: format!("cancelled: {reason}"),
            class: ErrorClass::Unknown,
        };
        out.extend(crate::outcome::record(view, &failed)?);
    }
    Ok(out)
}

/// Whether automation may act on the dataset at all.
pub fn is_unlocked(view: &DatasetView) -> bool {
    view.status.lock == LockWord::Unlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::DatasetName;
    use crate::state::{CleanupProgress, DatasetState, Progress, RecoOutcome, Status};
    use crate::view::RawFile;

    fn at(state: DatasetState, files: &[FileState]) -> DatasetView {
        let raw = files.iter().enumerate().map(|(i, s)| {
            let mut f = RawFile::new(FileId(i as u64 + 1), format!("raw{i}"), 10);
            f.state = *s;
            f
        });
        let mut v = DatasetView::new(DatasetName::new("op").unwrap(), raw);
        v.status = Status {
            lock: LockWord::Unlock,
            state,
        };
        v
    }

    fn vias(changes: &[Change]) -> Vec<Transition> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Dataset(m) => Some(m.via()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cancel_locks_and_fails_each_live_job_of_its_phase_and_retry_brings_them_back() {
        use crate::job::{JobKey, JobState};
        let s = FileState::RecoSubmitted;
        let mut v = at(
            DatasetState::Reco(Progress::Running),
            &[s, s, FileState::Reconstructed],
        );
        let key = |id| JobKey {
            subject: JobSubject::Reco(FileId(id)),
            attempt: 1,
        };
        for (id, state) in [
            (1, JobState::Running),
            (2, JobState::Submitted),
            (3, JobState::Done),
        ] {
            v.files.get_mut(&FileId(id)).unwrap().attempts = 1;
            let batch_id = Some(format!("{id}"));
            let (exit_code, error) = (None, None);
            let job = Job {
                key: key(id),
                state,
                batch_id,
                exit_code,
                error,
            };
            v.jobs.insert(key(id), job);
        }
        assert_eq!(cancel(&v, None, " "), Err(OperatorError::NoReason));
        assert_eq!(
            cancel(&v, Some(Phase::Prestage), "x"),
            Err(OperatorError::NoJobsIn(Phase::Prestage))
        );
        let merge_only = cancel(&v, Some(Phase::Merge), "x").unwrap();
        assert_eq!(merge_only.len(), 1, "no merge job is live: the lock alone");
        assert_eq!(live_jobs(&v, Some(Phase::Reco)).unwrap().count(), 2);

        let changes = cancel(&v, Some(Phase::Reco), "wrong release").unwrap();
        assert_eq!(vias(&changes), [Transition::Lock]);
        v.apply(&changes).unwrap();
        assert_eq!(v.status.lock, LockWord::Lock);
        assert_eq!(live_jobs(&v, None).unwrap().count(), 0);
        for id in [1, 2] {
            let j = &v.jobs[&key(id)];
            assert_eq!(j.state, JobState::Failed);
            assert!(
                j.error
                    .as_deref()
                    .unwrap()
                    .contains("cancelled: wrong release")
            );
            assert_eq!(v.files[&FileId(id)].state, FileState::RecoFailed);
        }
        assert_eq!(
            v.jobs[&key(3)].state,
            JobState::Done,
            "finished work is kept"
        );
        assert!(
            cancel(&v, None, "again").unwrap().is_empty(),
            "nothing twice"
        );

        v.apply(&unlock(&v, None).unwrap()).unwrap();
        let again = retry(&v, Some(Phase::Reco), None, None).unwrap();
        let rearmed = again.iter().filter(|c| matches!(c, Change::File { .. }));
        assert_eq!(
            rearmed.count(),
            2,
            "each cancelled file gets a fresh attempt"
        );
    }

    #[test]
    fn retry_puts_a_failed_phase_back_and_rearms_its_files() {
        let v = at(
            DatasetState::Prestage(Progress::Failed),
            &[FileState::StageFailedForGood],
        );
        let c = retry(&v, None, Some("robot fixed"), None).unwrap();
        assert_eq!(vias(&c), [Transition::Retry]);
        assert!(c.iter().any(|c| matches!(
            c,
            Change::File {
                event: FileEvent::Rearm,
                ..
            }
        )));
    }

    #[test]
    fn retry_with_nothing_failed_says_so() {
        let v = at(DatasetState::START, &[FileState::Registered]);
        let err = retry(&v, None, None, None).unwrap_err();
        assert!(matches!(err, OperatorError::NothingToRetry { .. }), "{err}");
    }

    #[test]
    fn a_reset_needs_a_reason_and_a_phase_it_can_go_back_to() {
        let v = at(DatasetState::Reco(Progress::NotDone), &[FileState::Staged]);
        assert_eq!(
            reset(&v, Phase::Prestage, " ").unwrap_err(),
            OperatorError::NoReason
        );
        assert_eq!(
            reset(&v, Phase::Merge, "x").unwrap_err(),
            OperatorError::NoResetTo(Phase::Merge)
        );
        assert_eq!(
            vias(&reset(&v, Phase::Prestage, "x").unwrap()),
            [Transition::ResetToPrestage]
        );
    }

    #[test]
    fn failed_files_are_recovered_after_cleaned_and_nothing_else_moves() {
        let cleaned = DatasetState::Cleanup(RecoOutcome::Partial, CleanupProgress::Cleaned);
        let v = at(cleaned, &[FileState::Cleaned, FileState::RecoFailedForGood]);
        let c = recover(&v, "tape fixed").unwrap();
        assert_eq!(vias(&c), [Transition::Recover]);
        let moved: Vec<FileId> = c
            .iter()
            .filter_map(|c| match c {
                Change::File { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(moved, [FileId(2)], "only the failed file comes back");
        // After CLEANED, a plain retry does the same.
        assert_eq!(retry(&v, None, Some("tape fixed"), None).unwrap(), c);
    }

    #[test]
    fn a_complete_dataset_has_nothing_to_recover() {
        let cleaned = DatasetState::Cleanup(RecoOutcome::Completed, CleanupProgress::Cleaned);
        let v = at(cleaned, &[FileState::Cleaned]);
        assert_eq!(
            recover(&v, "why not").unwrap_err().to_string(),
            "nothing to recover in op: no raw file of it failed for good"
        );
    }
}
