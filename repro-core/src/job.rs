//! The batch-job lifecycle: one attempt of a reco or merge step.
//!
//! ```text
//! reserved -> submitted -> running -> done
//!     |           |  \        |  \
//!     v           v   \       v   `-> lost
//!   failed      failed `-> lost   failed
//! ```
//! A job is reserved in storage, under a deterministic name, before it is submitted, so
//! that after a crash the next run can look the name up instead of submitting twice.

use std::fmt;

use crate::file::FileId;
use crate::group::GroupNo;
use crate::name::DatasetName;
use crate::rules::{IllegalMove, Rule, lookup, snake_words};

/// What a job works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobSubject {
    /// Reconstructs one raw file.
    Reco(FileId),
    /// Merges one group of TMB files.
    Merge(GroupNo),
}

/// Identifies one job: its subject and attempt number (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct JobKey {
    /// What it works on.
    pub subject: JobSubject,
    /// Which attempt, counted from 1.
    pub attempt: u32,
}

impl JobKey {
    /// The deterministic batch-system job name: `DATASET.reco.f12.a2`, `DATASET.merge.g3.a1`.
    pub fn name(&self, dataset: &DatasetName) -> String {
        format!("{dataset}.{self}")
    }
}

impl fmt::Display for JobSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobSubject::Reco(file) => write!(f, "raw file {file}"),
            JobSubject::Merge(group) => write!(f, "merge group {group}"),
        }
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subject {
            JobSubject::Reco(file) => write!(f, "reco.{file}.a{}", self.attempt),
            JobSubject::Merge(group) => write!(f, "merge.{group}.a{}", self.attempt),
        }
    }
}

snake_words! {
    /// Where a job is.
    JobState, "job", [
        /// Recorded in storage; submission may or may not have happened.
        Reserved = "reserved",
        /// Accepted by the batch system, which gave it an id.
        Submitted = "submitted",
        /// Running on the batch system.
        Running = "running",
        /// Finished and produced its output.
        Done = "done",
        /// Finished without its output, or was refused at submission.
        Failed = "failed",
        /// Vanished from the batch system.
        Lost = "lost",
    ]
}

impl JobState {
    /// Reserved, submitted or running: the job may still produce its output.
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            JobState::Reserved | JobState::Submitted | JobState::Running
        )
    }
}

snake_words! {
    /// Something that moves a job.
    JobEvent, "job event", [
        /// The batch system accepted it.
        Submit = "submit",
        /// It started.
        Start = "start",
        /// It finished with its output.
        Finish = "finish",
        /// It failed (or its submission was refused).
        Fail = "fail",
        /// The batch system no longer knows it.
        Lose = "lose",
    ]
}

const fn r(from: JobState, event: JobEvent, to: JobState) -> Rule<JobState, JobEvent> {
    Rule { from, event, to }
}

/// Every legal move of a job.
pub const JOB_RULES: &[Rule<JobState, JobEvent>] = {
    use JobEvent as E;
    use JobState as S;
    &[
        r(S::Reserved, E::Submit, S::Submitted),
        r(S::Reserved, E::Fail, S::Failed),
        r(S::Submitted, E::Start, S::Running),
        r(S::Submitted, E::Finish, S::Done),
        r(S::Submitted, E::Fail, S::Failed),
        r(S::Submitted, E::Lose, S::Lost),
        r(S::Running, E::Finish, S::Done),
        r(S::Running, E::Fail, S::Failed),
        r(S::Running, E::Lose, S::Lost),
    ]
};

/// The state a job reaches from `from` by `event`, or why it cannot.
pub fn job_step(key: JobKey, from: JobState, event: JobEvent) -> Result<JobState, IllegalMove> {
    lookup(JOB_RULES, from, event).ok_or_else(|| IllegalMove {
        entity: "job",
        id: key.to_string(),
        found: from.to_string(),
        event: event.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_deterministic_per_attempt() {
        let d = DatasetName::new("p17.wz").unwrap();
        let k = JobKey {
            subject: JobSubject::Reco(FileId(12)),
            attempt: 2,
        };
        assert_eq!(k.name(&d), "p17.wz.reco.f12.a2");
        let m = JobKey {
            subject: JobSubject::Merge(GroupNo(3)),
            attempt: 1,
        };
        assert_eq!(m.name(&d), "p17.wz.merge.g3.a1");
    }

    #[test]
    fn finished_jobs_never_move_again() {
        for s in [JobState::Done, JobState::Failed, JobState::Lost] {
            assert!(!s.is_live());
            for &e in JobEvent::ALL {
                let k = JobKey {
                    subject: JobSubject::Reco(FileId(1)),
                    attempt: 1,
                };
                assert!(job_step(k, s, e).is_err(), "{s} --{e}--> accepted");
            }
        }
    }
}
