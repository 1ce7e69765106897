//! The raw-file lifecycle.
//!
//! ```text
//! registered -> staging -> staged -> reco_submitted -> reconstructed -> merged -> deleting -> cleaned
//!                  |  ^                   |    ^
//!                  v  |                   v    |
//!             stage_failed           reco_failed        (retried while attempts < cap)
//!                  |                      |
//!                  v                      v
//!       stage_failed_for_good   reco_failed_for_good    (an operator re-arms them)
//! ```
//! A file's `attempts` counts the attempts of the step it is in (staging, reco, deleting);
//! reaching the next step starts the count again. An operator's re-arm gives fresh attempts
//! without renumbering: attempts before it stop counting against the cap.

use std::fmt;

use crate::rules::{IllegalMove, Rule, lookup, snake_words};
use crate::state::Phase;

/// A raw file's id within the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct FileId(pub u64);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "f{}", self.0)
    }
}

/// The reconstruction output of one raw file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TmbFile {
    /// Where the reco job wrote it.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

impl TmbFile {
    /// A TMB file at `path` of `size` bytes.
    pub fn new(path: impl Into<String>, size: u64) -> Self {
        TmbFile {
            path: path.into(),
            size,
        }
    }
}

snake_words! {
    /// Where a raw file is in its lifecycle.
    FileState, "file", [
        /// Known, not yet asked for.
        Registered = "registered",
        /// A stage request is out.
        Staging = "staging",
        /// On disk, waiting for reco.
        Staged = "staged",
        /// A reco job is reserved or out.
        RecoSubmitted = "reco_submitted",
        /// Has its TMB file.
        Reconstructed = "reconstructed",
        /// Covered by a merged file.
        Merged = "merged",
        /// A deletion of its intermediate copies is reserved or under way.
        Deleting = "deleting",
        /// Intermediate copies deleted.
        Cleaned = "cleaned",
        /// The last staging attempt failed; will be retried.
        StageFailed = "stage_failed",
        /// The last reco attempt failed; will be retried.
        RecoFailed = "reco_failed",
        /// Staging attempts used up.
        StageFailedForGood = "stage_failed_for_good",
        /// Reco attempts used up.
        RecoFailedForGood = "reco_failed_for_good",
    ]
}

impl FileState {
    /// Whether the file has (or had, before cleanup) a TMB file.
    pub const fn has_tmb(self) -> bool {
        matches!(
            self,
            FileState::Reconstructed | FileState::Merged | FileState::Deleting | FileState::Cleaned
        )
    }

    /// The phase whose work the file is at (or failed in, or finished last).
    pub const fn phase(self) -> Phase {
        match self {
            FileState::Registered
            | FileState::Staging
            | FileState::StageFailed
            | FileState::StageFailedForGood => Phase::Prestage,
            FileState::Staged
            | FileState::RecoSubmitted
            | FileState::RecoFailed
            | FileState::RecoFailedForGood
            | FileState::Reconstructed => Phase::Reco,
            FileState::Merged => Phase::Merge,
            FileState::Deleting | FileState::Cleaned => Phase::Cleanup,
        }
    }

    /// Whether the file has failed for good and waits for an operator.
    pub const fn failed_for_good(self) -> bool {
        matches!(
            self,
            FileState::StageFailedForGood | FileState::RecoFailedForGood
        )
    }
}

snake_words! {
    /// Something that moves a raw file.
    FileEvent, "file event", [
        /// Ask the storage system to stage it (an attempt).
        RequestStage = "request_stage",
        /// Staging succeeded.
        StageDone = "stage_done",
        /// Staging failed.
        StageFail = "stage_fail",
        /// Reserve a reco job for it (an attempt).
        SubmitReco = "submit_reco",
        /// Its reco job produced the TMB file.
        RecoDone = "reco_done",
        /// Its reco job failed or was lost.
        RecoFail = "reco_fail",
        /// Attempts used up: failed for good.
        GiveUp = "give_up",
        /// Its merge group's merged file exists.
        Merge = "merge",
        /// Reserve a deletion of its intermediate copies (an attempt).
        ReserveDelete = "reserve_delete",
        /// The deletion failed.
        DeleteFail = "delete_fail",
        /// Its intermediate copies are deleted.
        Clean = "clean",
        /// Operator: failed work gets fresh attempts.
        Rearm = "rearm",
        /// Its step's service was out when it failed: the attempt is given back.
        Excuse = "excuse",
    ]
}

impl FileEvent {
    /// Whether the file's step succeeded, was re-armed or given up: nothing waits to be
    /// retried.
    pub const fn clears_retry(self) -> bool {
        matches!(
            self,
            FileEvent::StageDone
                | FileEvent::RecoDone
                | FileEvent::Merge
                | FileEvent::Clean
                | FileEvent::Rearm
                | FileEvent::GiveUp
        )
    }

    /// The attempt base after this event: attempts made before the operator's last re-arm,
    /// which do not count against the cap. Attempt numbers themselves never go back, so a
    /// re-armed step never repeats an attempt number.
    pub const fn base_after(self, attempts_before: u32, base_before: u32) -> u32 {
        match self.new_base(attempts_before) {
            Some(b) => b,
            None if self.gives_back() && base_before < attempts_before => base_before + 1,
            None => base_before,
        }
    }

    /// Whether the event gives the last attempt back (the base grows by one).
    pub const fn gives_back(self) -> bool {
        matches!(self, FileEvent::Excuse)
    }

    /// The attempt base this event writes, if it writes one.
    pub const fn new_base(self, attempts_before: u32) -> Option<u32> {
        match self {
            FileEvent::Rearm => Some(attempts_before),
            FileEvent::StageDone | FileEvent::RecoDone | FileEvent::Merge => Some(0),
            _ => None,
        }
    }

    /// The attempt count after this event, given the count before.
    pub const fn attempts_after(self, before: u32) -> u32 {
        match self {
            FileEvent::RequestStage | FileEvent::SubmitReco | FileEvent::ReserveDelete => {
                before + 1
            }
            FileEvent::StageDone | FileEvent::RecoDone | FileEvent::Merge => 0,
            FileEvent::Rearm
            | FileEvent::Excuse
            | FileEvent::StageFail
            | FileEvent::RecoFail
            | FileEvent::GiveUp
            | FileEvent::DeleteFail
            | FileEvent::Clean => before,
        }
    }
}

const fn r(from: FileState, event: FileEvent, to: FileState) -> Rule<FileState, FileEvent> {
    Rule { from, event, to }
}

/// Every legal move of a raw file.
pub const FILE_RULES: &[Rule<FileState, FileEvent>] = {
    use FileEvent as E;
    use FileState as S;
    &[
        r(S::Registered, E::RequestStage, S::Staging),
        r(S::StageFailed, E::RequestStage, S::Staging),
        r(S::Staging, E::StageDone, S::Staged),
        r(S::Staging, E::StageFail, S::StageFailed),
        r(S::StageFailed, E::GiveUp, S::StageFailedForGood),
        r(S::Staged, E::SubmitReco, S::RecoSubmitted),
        r(S::RecoFailed, E::SubmitReco, S::RecoSubmitted),
        r(S::RecoSubmitted, E::RecoDone, S::Reconstructed),
        r(S::RecoSubmitted, E::RecoFail, S::RecoFailed),
        r(S::RecoFailed, E::GiveUp, S::RecoFailedForGood),
        r(S::Reconstructed, E::Merge, S::Merged),
        r(S::Merged, E::ReserveDelete, S::Deleting),
        r(S::Deleting, E::DeleteFail, S::Merged),
        r(S::Deleting, E::Clean, S::Cleaned),
        r(S::StageFailedForGood, E::Rearm, S::Registered),
        r(S::RecoFailedForGood, E::Rearm, S::Staged),
        r(S::StageFailed, E::Rearm, S::StageFailed),
        r(S::RecoFailed, E::Rearm, S::RecoFailed),
        r(S::Merged, E::Rearm, S::Merged),
        r(S::StageFailed, E::Excuse, S::StageFailed),
        r(S::RecoFailed, E::Excuse, S::RecoFailed),
        r(S::Merged, E::Excuse, S::Merged),
    ]
};

/// The state a raw file reaches from `from` by `event`, or why it cannot.
pub fn file_step(id: FileId, from: FileState, event: FileEvent) -> Result<FileState, IllegalMove> {
    lookup(FILE_RULES, from, event).ok_or_else(|| IllegalMove {
        entity: "raw file",
        id: id.to_string(),
        found: from.to_string(),
        event: event.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_in_the_table() {
        use FileEvent as E;
        let mut s = FileState::Registered;
        for e in [
            E::RequestStage,
            E::StageDone,
            E::SubmitReco,
            E::RecoDone,
            E::Merge,
            E::ReserveDelete,
            E::Clean,
        ] {
            s = file_step(FileId(1), s, e).unwrap();
        }
        assert_eq!(s, FileState::Cleaned);
    }

    #[test]
    fn cleaned_and_failed_for_good_files_only_move_by_operator() {
        for &e in FileEvent::ALL {
            assert!(file_step(FileId(1), FileState::Cleaned, e).is_err());
            if e != FileEvent::Rearm {
                assert!(file_step(FileId(1), FileState::RecoFailedForGood, e).is_err());
            }
        }
        let err = file_step(FileId(7), FileState::Cleaned, FileEvent::SubmitReco).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot submit_reco raw file f7: it is cleaned"
        );
    }

    #[test]
    fn states_round_trip_through_their_words() {
        for s in FileState::ALL {
            assert_eq!(s.to_string().parse::<FileState>().unwrap(), *s);
        }
        assert!("Staged".parse::<FileState>().is_err());
    }
}
