//! Merge groups: TMB files of one dataset joined by one merge job into one merged file,
//! then declared to the catalog. Their lifecycle table, like the file and job tables.

use std::fmt;

use crate::file::FileId;
use crate::name::DatasetName;
use crate::rules::{IllegalMove, Rule, lookup, snake_words};

/// A merge group's number within its dataset, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct GroupNo(pub u32);

impl fmt::Display for GroupNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// A merge job's output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct MergedFile {
    /// Its name (also how the catalog knows it).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

impl MergedFile {
    /// The merged file of `group` of `dataset`, under its deterministic name.
    pub fn of(dataset: &DatasetName, group: GroupNo, size: u64) -> Self {
        MergedFile {
            name: Self::name_for(dataset, group),
            size,
        }
    }

    /// The deterministic name of a group's merged file: `DATASET.merged.0003`.
    pub fn name_for(dataset: &DatasetName, group: GroupNo) -> String {
        format!("{dataset}.merged.{:04}", group.0)
    }
}

snake_words! {
    /// Where a merge group is.
    GroupState, "merge group", [
        /// Merge jobs are being run for it.
        Merging = "merging",
        /// Its merged file exists, not yet declared.
        Merged = "merged",
        /// A declaration of its merged file is reserved or under way.
        Declaring = "declaring",
        /// Its merged file is declared to the catalog.
        Declared = "declared",
        /// Merge attempts used up.
        FailedForGood = "failed_for_good",
    ]
}

snake_words! {
    /// Something that moves a merge group.
    GroupEvent, "merge group event", [
        /// Reserve a merge job for it (an attempt).
        SubmitMerge = "submit_merge",
        /// Its merge job failed or was lost.
        JobFail = "job_fail",
        /// Its merge job produced the merged file.
        Finish = "finish",
        /// Attempts used up.
        GiveUp = "give_up",
        /// Reserve a declaration (an attempt).
        ReserveDeclare = "reserve_declare",
        /// The declaration failed.
        DeclareFail = "declare_fail",
        /// The catalog has it.
        Declare = "declare",
        /// Operator: fresh attempts.
        Rearm = "rearm",
        /// Its step's service was out when it failed: the attempt is given back.
        Excuse = "excuse",
    ]
}

impl GroupEvent {
    /// Whether the group's step succeeded, was re-armed or given up: nothing waits to be
    /// retried.
    pub const fn clears_retry(self) -> bool {
        matches!(
            self,
            GroupEvent::Finish | GroupEvent::Declare | GroupEvent::Rearm | GroupEvent::GiveUp
        )
    }

    /// The attempt base after this event (see [`crate::file::FileEvent::base_after`]).
    pub const fn base_after(self, attempts_before: u32, base_before: u32) -> u32 {
        match self.new_base(attempts_before) {
            Some(b) => b,
            None if self.gives_back() && base_before < attempts_before => base_before + 1,
            None => base_before,
        }
    }

    /// Whether the event gives the last attempt back (the base grows by one).
    pub const fn gives_back(self) -> bool {
        matches!(self, GroupEvent::Excuse)
    }

    /// The attempt base this event writes, if it writes one.
    pub const fn new_base(self, attempts_before: u32) -> Option<u32> {
        match self {
            GroupEvent::Rearm => Some(attempts_before),
            GroupEvent::Finish => Some(0),
            _ => None,
        }
    }

    /// The attempt count after this event, given the count before.
    pub const fn attempts_after(self, before: u32) -> u32 {
        match self {
            GroupEvent::SubmitMerge | GroupEvent::ReserveDeclare => before + 1,
            GroupEvent::Finish => 0,
            GroupEvent::Rearm
            | GroupEvent::Excuse
            | GroupEvent::JobFail
            | GroupEvent::GiveUp
            | GroupEvent::DeclareFail
            | GroupEvent::Declare => before,
        }
    }
}

const fn g(from: GroupState, event: GroupEvent, to: GroupState) -> Rule<GroupState, GroupEvent> {
    Rule { from, event, to }
}

/// Every legal move of a merge group.
pub const GROUP_RULES: &[Rule<GroupState, GroupEvent>] = {
    use GroupEvent as E;
    use GroupState as S;
    &[
        g(S::Merging, E::SubmitMerge, S::Merging),
        g(S::Merging, E::JobFail, S::Merging),
        g(S::Merging, E::Finish, S::Merged),
        g(S::Merging, E::GiveUp, S::FailedForGood),
        g(S::Merged, E::ReserveDeclare, S::Declaring),
        g(S::Declaring, E::DeclareFail, S::Merged),
        g(S::Declaring, E::Declare, S::Declared),
        g(S::FailedForGood, E::Rearm, S::Merging),
        g(S::Merged, E::Rearm, S::Merged),
        g(S::Merging, E::Excuse, S::Merging),
        g(S::Merged, E::Excuse, S::Merged),
    ]
};

/// A group of TMB files of one dataset, merged by one job into one merged file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MergeGroup {
    /// Number within the dataset.
    pub no: GroupNo,
    /// The raw files whose TMB files it merges.
    pub files: Vec<FileId>,
    /// Total size of those TMB files.
    pub bytes: u64,
    /// Where it is.
    pub state: GroupState,
    /// Attempts of its current step (merging, then declaring).
    pub attempts: u32,
    /// Attempts of its current step made before an operator's last re-arm.
    pub attempt_base: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The merged file, once it exists.
    pub output: Option<MergedFile>,
    /// When its failing step may be tried again, while it is failing.
    pub retry: Option<crate::retry::Retry>,
}

impl MergeGroup {
    /// A group just formed from `files`: merging, no attempt made yet.
    pub fn new(no: GroupNo, files: Vec<FileId>, bytes: u64) -> Self {
        MergeGroup {
            no,
            files,
            bytes,
            state: GroupState::Merging,
            attempts: 0,
            attempt_base: 0,
            last_error: None,
            output: None,
            retry: None,
        }
    }

    /// Attempts of its current step since the operator's last re-arm.
    pub fn tried(&self) -> u32 {
        self.attempts.saturating_sub(self.attempt_base)
    }
}

/// The group lifecycle's step: where `event` takes a group at `from`, or why not.
pub fn group_step(
    no: GroupNo,
    from: GroupState,
    event: GroupEvent,
) -> Result<GroupState, IllegalMove> {
    lookup(GROUP_RULES, from, event).ok_or_else(|| IllegalMove {
        entity: "merge group",
        id: no.to_string(),
        found: from.to_string(),
        event: event.to_string(),
    })
}
