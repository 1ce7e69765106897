//! Operator actions: lock, unlock, retry and reset, as changes.
//!
//! Each one is a distinct transition with its reason in the history. `retry` and `reset`
//! keep all finished work and give what failed for good fresh attempts ("re-arm"); nothing
//! is deleted and nothing finished is redone.

use crate::file::{FileEvent, FileState};
use crate::state::{Phase, StageKind};
use crate::transition::{Refused, Transition};
use crate::typed::AnyDataset;
use crate::view::{Change, DatasetView, GroupEvent, GroupState};
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
    /// A reset needs a reason, for the history.
    #[error("a reset needs a reason (for the history)")]
    NoReason,
    /// There is no reset back to this phase.
    #[error("there is no reset to {0}: a reset goes back to prestage or reco")]
    NoResetTo(Phase),
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

/// Puts a `FAILED` phase back to `NOT DONE` and re-arms what failed in it. On a phase that
/// is still running, re-arms what failed for good so far without moving the dataset.
///
/// `phase`, when given, must be the dataset's current phase.
pub fn retry(
    view: &DatasetView,
    phase: Option<Phase>,
    reason: Option<&str>,
) -> Result<Vec<Change>, OperatorError> {
    let current = view.status.state.phase();
    let phase = phase.unwrap_or(current);
    let failed = matches!(
        view.status.state.kind(),
        StageKind::PrestageFailed
            | StageKind::RecoFailed
            | StageKind::MergeFailed
            | StageKind::CleanupFailed
    );
    let mut out = Vec::new();
    if phase == current && failed {
        out.push(dataset_change(view, Transition::Retry, reason)?);
    } else if phase != current {
        // A finished or future phase: only a reset goes back.
        return Err(Refused::NoSuchTransition {
            found: view.status.state,
            kind: view.status.state.kind(),
            tried: Transition::Retry,
        }
        .into());
    }
    out.extend(rearm(view, phase));
    if out.is_empty() {
        return Err(OperatorError::NothingToRetry {
            name: view.name.to_string(),
            found: view.status.state,
            phase,
        });
    }
    Ok(out)
}

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

/// Whether automation may act on the dataset at all.
pub fn is_unlocked(view: &DatasetView) -> bool {
    view.status.lock == LockWord::Unlock
}
