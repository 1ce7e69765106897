//! What the outside world reported, turned into changes.
//!
//! [`record`] is pure: it checks an [`Outcome`] against the snapshot and returns the
//! changes that record it. An outcome about something that has already moved on (a
//! second poller got there first, a late report about a job already declared lost) is a
//! [`StaleOutcome`], which drivers log and skip.

use crate::file::{FileEvent, FileId, FileState, TmbFile};
use crate::job::{JobEvent, JobKey, JobState, JobSubject};
use crate::view::{Change, DatasetView, GroupEvent, GroupNo, GroupState, MergedFile};

/// A report from a backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A raw file is on disk.
    Staged {
        /// The file.
        file: FileId,
    },
    /// Staging a raw file failed.
    StageFailed {
        /// The file.
        file: FileId,
        /// Why.
        reason: String,
        /// Whether trying again can help.
        class: ErrorClass,
    },
    /// The batch system accepted a job.
    Submitted {
        /// The job.
        job: JobKey,
        /// The batch system's id.
        batch_id: String,
    },
    /// A job started running.
    Started {
        /// The job.
        job: JobKey,
    },
    /// A reco job finished and its TMB file exists.
    RecoDone {
        /// The job.
        job: JobKey,
        /// Its output.
        tmb: TmbFile,
    },
    /// A merge job finished and its merged file exists.
    MergeDone {
        /// The job.
        job: JobKey,
        /// Its output.
        output: MergedFile,
    },
    /// A job failed, or its submission was refused.
    JobFailed {
        /// The job.
        job: JobKey,
        /// Its exit code, if it ran.
        exit_code: Option<i32>,
        /// Why, in the batch system's or tool's words.
        reason: String,
        /// Whether trying again can help.
        class: ErrorClass,
    },
    /// The batch system no longer knows a job.
    JobLost {
        /// The job.
        job: JobKey,
    },
    /// The catalog has a merged file.
    Declared {
        /// The group.
        group: GroupNo,
    },
    /// Declaring a merged file failed.
    DeclareFailed {
        /// The group.
        group: GroupNo,
        /// Why.
        reason: String,
        /// Whether trying again can help.
        class: ErrorClass,
    },
    /// A raw file's intermediate copies are gone.
    Deleted {
        /// The file.
        file: FileId,
    },
    /// Deleting a raw file's intermediate copies failed.
    DeleteFailed {
        /// The file.
        file: FileId,
        /// Why.
        reason: String,
        /// Whether trying again can help.
        class: ErrorClass,
    },
}

/// Whether trying a failed step again can help: what a backend says of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// Try again later (a busy tape drive, a catalog's 503, a node that died, a job the
    /// batch system lost): retried under the policy.
    Transient,
    /// It will never work (a missing input, a configured "never" exit code): a raw file
    /// or merge job fails for good at once.
    Permanent,
    /// Nobody said: retried under the policy, as a transient one.
    #[default]
    Unknown,
}

impl ErrorClass {
    /// The word, as stored in front of an error (`transient: ...`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Unknown => "unknown",
        }
    }

    /// `reason` as it is stored and shown: with the class in front, unless unknown.
    pub fn tag(self, reason: &str) -> String {
        match self {
            ErrorClass::Unknown => reason.to_owned(),
            c => format!("{}: {reason}", c.as_str()),
        }
    }

    /// The class of an error as [`ErrorClass::tag`] stored it (after a job's `attempt N: `).
    pub fn of_stored(error: &str) -> ErrorClass {
        let error = match error.split_once(": ") {
            Some((attempt, rest)) if attempt.starts_with("attempt ") => rest,
            _ => error,
        };
        [ErrorClass::Transient, ErrorClass::Permanent]
            .into_iter()
            .find(|c| error.starts_with(&format!("{}: ", c.as_str())))
            .unwrap_or_default()
    }
}

/// An outcome about something that is not where the outcome says it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stale outcome for {subject}: it is {found}")]
pub struct StaleOutcome {
    /// What the outcome was about.
    pub subject: String,
    /// What was found instead.
    pub found: String,
}

fn stale(subject: impl ToString, found: impl ToString) -> StaleOutcome {
    StaleOutcome {
        subject: subject.to_string(),
        found: found.to_string(),
    }
}

/// The changes that record `outcome` in `view`.
pub fn record(view: &DatasetView, outcome: &Outcome) -> Result<Vec<Change>, StaleOutcome> {
    match outcome {
        Outcome::Staged { file } => {
            file_change(view, *file, FileState::Staging, FileEvent::StageDone, None)
        }
        Outcome::StageFailed {
            file,
            reason,
            class,
        } => {
            let mut out = file_change(
                view,
                *file,
                FileState::Staging,
                FileEvent::StageFail,
                Some(class.tag(reason)),
            )?;
            give_up_if_permanent(&mut out, *class);
            Ok(out)
        }
        Outcome::Submitted { job, batch_id } => submitted(view, *job, batch_id),
        Outcome::Started { job } => started(view, *job),
        Outcome::RecoDone { job, tmb } => reco_done(view, *job, tmb),
        Outcome::MergeDone { job, output } => merge_done(view, *job, output),
        Outcome::JobFailed {
            job,
            exit_code,
            reason,
            class,
        } => {
            let mut out = job_failure(view, *job, JobEvent::Fail, &class.tag(reason), *exit_code)?;
            give_up_if_permanent(&mut out, *class);
            Ok(out)
        }
        Outcome::JobLost { job } => {
            let why = ErrorClass::Transient.tag("lost by the batch system");
            job_failure(view, *job, JobEvent::Lose, &why, None)
        }
        Outcome::Declared { group } => {
            let grp = group_in(view, *group, GroupState::Declaring)?;
            Ok(vec![
                Change::group(grp, GroupEvent::Declare).ok_or_else(|| stale(group, grp.state))?,
            ])
        }
        Outcome::DeclareFailed {
            group,
            reason,
            class,
        } => {
            let grp = group_in(view, *group, GroupState::Declaring)?;
            let c = Change::group(grp, GroupEvent::DeclareFail)
                .ok_or_else(|| stale(group, grp.state))?;
            Ok(vec![c.with_error(class.tag(reason))])
        }
        Outcome::Deleted { file } => {
            file_change(view, *file, FileState::Deleting, FileEvent::Clean, None)
        }
        Outcome::DeleteFailed {
            file,
            reason,
            class,
        } => file_change(
            view,
            *file,
            FileState::Deleting,
            FileEvent::DeleteFail,
            Some(class.tag(reason)),
        ),
    }
}

/// The batch system took a reserved job and gave it `batch_id`.
fn submitted(view: &DatasetView, job: JobKey, batch_id: &str) -> Result<Vec<Change>, StaleOutcome> {
    let j = live(view, job)?;
    if j.state != JobState::Reserved {
        return Err(stale(format!("job {job}"), j.state));
    }
    let c = Change::job(j, JobEvent::Submit).ok_or_else(|| stale(job, j.state))?;
    Ok(vec![c.with_batch_id(batch_id)])
}

/// A job runs: news only if it was not running already (a backend reports what it sees;
/// whether that is news is the core's to say).
fn started(view: &DatasetView, job: JobKey) -> Result<Vec<Change>, StaleOutcome> {
    let j = live(view, job)?;
    if j.state == JobState::Running {
        return Ok(Vec::new());
    }
    let c = Change::job(j, JobEvent::Start).ok_or_else(|| stale(format!("job {job}"), j.state))?;
    Ok(vec![c])
}

/// A reco job's end with its TMB file: the job finishes, its file is reconstructed.
fn reco_done(view: &DatasetView, job: JobKey, tmb: &TmbFile) -> Result<Vec<Change>, StaleOutcome> {
    let JobSubject::Reco(file) = job.subject else {
        return Err(stale(format!("job {job}"), "a merge job, not a reco job"));
    };
    let j = live(view, job)?;
    let mut out =
        vec![Change::job(j, JobEvent::Finish).ok_or_else(|| stale(format!("job {job}"), j.state))?];
    let fc = file_change(
        view,
        file,
        FileState::RecoSubmitted,
        FileEvent::RecoDone,
        None,
    )?;
    out.extend(fc.into_iter().map(|c| c.with_tmb(tmb.clone())));
    Ok(out)
}

/// A merge job's end with its merged file: the job finishes, its group is merged, and
/// so is each of its files.
fn merge_done(
    view: &DatasetView,
    job: JobKey,
    output: &MergedFile,
) -> Result<Vec<Change>, StaleOutcome> {
    let JobSubject::Merge(no) = job.subject else {
        return Err(stale(format!("job {job}"), "a reco job, not a merge job"));
    };
    let j = live(view, job)?;
    let grp = group_in(view, no, GroupState::Merging)?;
    let mut out =
        vec![Change::job(j, JobEvent::Finish).ok_or_else(|| stale(format!("job {job}"), j.state))?];
    let gc = Change::group(grp, GroupEvent::Finish).ok_or_else(|| stale(no, grp.state))?;
    out.push(gc.with_output(output.clone()));
    for id in &grp.files {
        out.extend(file_change(
            view,
            *id,
            FileState::Reconstructed,
            FileEvent::Merge,
            None,
        )?);
    }
    Ok(out)
}

/// After a permanent failure of a raw file's staging or reco, or of a merge job, the file
/// or group fails for good at once: the failure's change is followed by the give-up it
/// makes possible. (A declaration or a deletion is retried whatever it says: the catalog
/// and the storage system are shared services, not this dataset's inputs.)
fn give_up_if_permanent(out: &mut Vec<Change>, class: ErrorClass) {
    if class != ErrorClass::Permanent {
        return;
    }
    let give_up = out.iter().rev().find_map(|c| match *c {
        Change::File {
            id,
            to,
            attempts,
            event,
            ..
        } => Some(Change::File {
            id,
            from: to,
            attempts: event.attempts_after(attempts),
            event: FileEvent::GiveUp,
            to: crate::file::file_step(id, to, FileEvent::GiveUp).ok()?,
            error: None,
            tmb: None,
            retry: None,
        }),
        Change::Group {
            no,
            to,
            attempts,
            event,
            ..
        } => Some(Change::Group {
            no,
            from: to,
            attempts: event.attempts_after(attempts),
            event: GroupEvent::GiveUp,
            to: crate::group::group_step(no, to, GroupEvent::GiveUp).ok()?,
            error: None,
            output: None,
            retry: None,
        }),
        _ => None,
    });
    out.extend(give_up);
}

fn live(view: &DatasetView, key: JobKey) -> Result<&crate::view::Job, StaleOutcome> {
    let j = view
        .jobs
        .get(&key)
        .ok_or_else(|| stale(format!("job {key}"), "unknown"))?;
    if !j.state.is_live() {
        return Err(stale(format!("job {key}"), j.state));
    }
    Ok(j)
}

fn group_in(
    view: &DatasetView,
    no: GroupNo,
    want: GroupState,
) -> Result<&crate::view::MergeGroup, StaleOutcome> {
    let grp = view
        .groups
        .get(&no)
        .ok_or_else(|| stale(format!("merge group {no}"), "unknown"))?;
    if grp.state != want {
        return Err(stale(format!("merge group {no}"), grp.state));
    }
    Ok(grp)
}

fn file_change(
    view: &DatasetView,
    id: FileId,
    want: FileState,
    event: FileEvent,
    error: Option<String>,
) -> Result<Vec<Change>, StaleOutcome> {
    let f = view
        .files
        .get(&id)
        .ok_or_else(|| stale(format!("raw file {id}"), "unknown"))?;
    if f.state != want {
        return Err(stale(format!("raw file {id}"), f.state));
    }
    let c = Change::file(f, event).ok_or_else(|| stale(format!("raw file {id}"), f.state))?;
    Ok(vec![match error {
        Some(e) => c.with_error(e),
        None => c,
    }])
}

fn job_failure(
    view: &DatasetView,
    key: JobKey,
    event: JobEvent,
    reason: &str,
    exit_code: Option<i32>,
) -> Result<Vec<Change>, StaleOutcome> {
    let j = live(view, key)?;
    let mut out = vec![
        Change::job(j, event)
            .ok_or_else(|| stale(format!("job {key}"), j.state))?
            .with_error(reason)
            .with_exit_code(exit_code),
    ];
    let why = format!("attempt {}: {reason}", key.attempt);
    match key.subject {
        JobSubject::Reco(file) => {
            out.extend(file_change(
                view,
                file,
                FileState::RecoSubmitted,
                FileEvent::RecoFail,
                Some(why),
            )?);
        }
        JobSubject::Merge(no) => {
            let grp = group_in(view, no, GroupState::Merging)?;
            let c = Change::group(grp, GroupEvent::JobFail).ok_or_else(|| stale(no, grp.state))?;
            out.push(c.with_error(why));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::DatasetName;
    use crate::view::{Job, RawFile};

    fn submitted() -> (DatasetView, JobKey) {
        let mut f = RawFile::new(FileId(1), "raw", 10);
        f.state = FileState::RecoSubmitted;
        f.attempts = 1;
        let mut v = DatasetView::new(DatasetName::new("rec").unwrap(), [f]);
        let key = JobKey {
            subject: JobSubject::Reco(FileId(1)),
            attempt: 1,
        };
        v.jobs.insert(
            key,
            Job {
                key,
                state: JobState::Submitted,
                batch_id: Some("42".into()),
                exit_code: None,
                error: None,
            },
        );
        (v, key)
    }

    #[test]
    fn a_permanent_failure_fails_the_file_for_good_at_once_and_the_class_is_kept() {
        let failed = |class| Outcome::JobFailed {
            job: submitted().1,
            exit_code: Some(2),
            reason: "no such input".into(),
            class,
        };
        let (mut v, _) = submitted();
        let changes = record(&v, &failed(ErrorClass::Permanent)).unwrap();
        v.apply(&changes).unwrap();
        let f = &v.files[&FileId(1)];
        assert_eq!(
            f.state,
            FileState::RecoFailedForGood,
            "one attempt of three"
        );
        assert_eq!(
            f.last_error.as_deref(),
            Some("attempt 1: permanent: no such input")
        );
        // Transient and unknown failures wait for the policy's next attempt.
        for (class, error) in [
            (ErrorClass::Transient, "attempt 1: transient: no such input"),
            (ErrorClass::Unknown, "attempt 1: no such input"),
        ] {
            let (mut v, _) = submitted();
            v.apply(&record(&v, &failed(class)).unwrap()).unwrap();
            let f = &v.files[&FileId(1)];
            assert_eq!(
                (f.state, f.last_error.as_deref()),
                (FileState::RecoFailed, Some(error))
            );
        }
        assert_eq!(
            ErrorClass::of_stored("attempt 1: permanent: no such input"),
            ErrorClass::Permanent
        );
        assert_eq!(
            ErrorClass::of_stored("transient: 503"),
            ErrorClass::Transient
        );
        assert_eq!(
            ErrorClass::of_stored("attempt 2: exit 1"),
            ErrorClass::Unknown
        );
        // A lost job is the batch system's trouble.
        let (mut v, job) = submitted();
        v.apply(&record(&v, &Outcome::JobLost { job }).unwrap())
            .unwrap();
        assert_eq!(
            v.files[&FileId(1)].last_error.as_deref(),
            Some("attempt 1: transient: lost by the batch system")
        );
    }

    #[test]
    fn a_job_seen_running_again_is_no_news() {
        let (mut v, job) = submitted();
        let first = record(&v, &Outcome::Started { job }).unwrap();
        assert_eq!(first.len(), 1);
        v.apply(&first).unwrap();
        assert!(record(&v, &Outcome::Started { job }).unwrap().is_empty());
    }

    #[test]
    fn a_failed_job_fails_its_file_with_the_exit_code_and_reason() {
        let (mut v, job) = submitted();
        let outcome = Outcome::JobFailed {
            job,
            exit_code: Some(139),
            reason: "segfault".into(),
            class: ErrorClass::Unknown,
        };
        let changes = record(&v, &outcome).unwrap();
        v.apply(&changes).unwrap();
        let j = &v.jobs[&job];
        assert_eq!(
            (j.state, j.exit_code, j.error.as_deref()),
            (JobState::Failed, Some(139), Some("segfault"))
        );
        let f = &v.files[&FileId(1)];
        assert_eq!(f.state, FileState::RecoFailed);
        assert_eq!(f.last_error.as_deref(), Some("attempt 1: segfault"));
    }

    #[test]
    fn an_outcome_about_something_that_moved_on_is_stale() {
        let (v, job) = submitted();
        let err = record(&v, &Outcome::Staged { file: FileId(1) }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stale outcome for raw file f1: it is reco_submitted"
        );
        let other = JobKey { attempt: 2, ..job };
        assert!(record(&v, &Outcome::JobLost { job: other }).is_err());
    }
}
