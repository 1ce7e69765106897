//! A dataset with everything the decisions look at, and the [`Change`]s that move it.
//!
//! A [`DatasetView`] is a snapshot: storage loads one, [`crate::plan()`],
//! [`crate::outcome::record`] and [`crate::operator`] turn it into changes, storage writes
//! them. Every change names the state it expects to find, so that a writer can guard its
//! update (`UPDATE ... WHERE state = ?`) and a change computed from a stale snapshot is a
//! [`Conflict`], not a silent overwrite. [`DatasetView::apply`] is the in-memory writer,
//! with the same all-or-nothing rule a database transaction gives.

use std::collections::BTreeMap;
use std::fmt;

use crate::file::{FileEvent, FileId, FileState, TmbFile, file_step};
use crate::group::group_step;
pub use crate::group::{GroupEvent, GroupNo, GroupState, MergeGroup, MergedFile};
use crate::guard::{Tally, Unmet, admits, needs_tally};
use crate::job::{JobEvent, JobKey, JobState, JobSubject, job_step};
use crate::name::DatasetName;
use crate::outage::{Outage, Step};
use crate::retry::Retry;
use crate::rules::IllegalMove;
use crate::state::Status;
use crate::transition::{Refused, Transition, step};

/// One dataset move made by a typed method: the status before, the transition, the status
/// after and, for operator actions, why. Only the typed layer ([`crate::typed`]) builds
/// one, so a dataset [`Change`] always stands for a move the typed lifecycle has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetMove {
    from: Status,
    via: Transition,
    to: Status,
    reason: Option<String>,
}

impl DatasetMove {
    /// The move `via` from `from` to `to`: for the typed layer alone.
    pub(crate) fn new(from: Status, via: Transition, to: Status, reason: Option<String>) -> Self {
        DatasetMove {
            from,
            via,
            to,
            reason,
        }
    }

    /// The status the move expects to find (the write's guard).
    pub fn from(&self) -> Status {
        self.from
    }

    /// The transition, for the history.
    pub fn via(&self) -> Transition {
        self.via
    }

    /// The status written.
    pub fn to(&self) -> Status {
        self.to
    }

    /// Why, for operator actions.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub(crate) fn set_reason(&mut self, reason: String) {
        self.reason = Some(reason);
    }
}

impl std::fmt::Display for DatasetMove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) -> ({})",
            self.via,
            self.from.columns(),
            self.to.columns()
        )
    }
}

/// One raw file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RawFile {
    /// Store id.
    pub id: FileId,
    /// Logical file name.
    pub lfn: String,
    /// Size in bytes, when known.
    pub size: u64,
    /// Where it is.
    pub state: FileState,
    /// Attempts of its current step.
    pub attempts: u32,
    /// Attempts of its current step made before an operator's last re-arm.
    pub attempt_base: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Its reconstruction output, once it has one.
    pub tmb: Option<TmbFile>,
    /// The merge group covering it, once grouped.
    pub group: Option<GroupNo>,
    /// When its failing step may be tried again, while it is failing.
    pub retry: Option<Retry>,
}

impl RawFile {
    /// Attempts of its current step since the operator's last re-arm.
    pub fn tried(&self) -> u32 {
        self.attempts.saturating_sub(self.attempt_base)
    }

    /// The last error, if it belongs to the file's current step: a failed staging, reco or
    /// deletion. An error from a step the file has since finished is history, not a
    /// current failure.
    pub fn current_error(&self) -> Option<&str> {
        let failing = match self.state {
            FileState::StageFailed
            | FileState::RecoFailed
            | FileState::StageFailedForGood
            | FileState::RecoFailedForGood => true,
            // Between deletion attempts.
            FileState::Merged => self.attempts > 0,
            _ => false,
        };
        self.last_error.as_deref().filter(|_| failing)
    }

    /// A newly registered file.
    pub fn new(id: FileId, lfn: impl Into<String>, size: u64) -> Self {
        RawFile {
            id,
            lfn: lfn.into(),
            size,
            state: FileState::Registered,
            attempts: 0,
            attempt_base: 0,
            last_error: None,
            tmb: None,
            group: None,
            retry: None,
        }
    }
}

/// One attempt of a reco or merge step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Job {
    /// Subject and attempt.
    pub key: JobKey,
    /// Where it is.
    pub state: JobState,
    /// The batch system's id, once submitted.
    pub batch_id: Option<String>,
    /// The exit code, once finished.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A dataset with its files, jobs and merge groups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatasetView {
    /// Its name.
    pub name: DatasetName,
    /// Lock and lifecycle state.
    #[serde(skip)]
    pub status: Status,
    /// Its raw files by id.
    pub files: BTreeMap<FileId, RawFile>,
    /// Its jobs, every attempt.
    pub jobs: BTreeMap<JobKey, Job>,
    /// Its merge groups.
    pub groups: BTreeMap<GroupNo, MergeGroup>,
    /// The steps found out, each waiting for its next try ([`crate::outage`]).
    pub outages: Vec<Outage>,
}

/// One guarded write. Each variant names what it expects to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The dataset moves along the lifecycle (or its lock column flips). Made only by the
    /// typed layer ([`crate::typed`]), so it stands for a move the lifecycle has.
    Dataset(DatasetMove),
    /// A raw file moves.
    File {
        /// Which file.
        id: FileId,
        /// State expected.
        from: FileState,
        /// Attempts expected.
        attempts: u32,
        /// What happens.
        event: FileEvent,
        /// State written; attempts written are `event.attempts_after(attempts)`.
        to: FileState,
        /// Error to record, if any.
        error: Option<String>,
        /// TMB file to record, on reco success.
        tmb: Option<TmbFile>,
        /// When a failure may be tried again ([`crate::retry::schedule`]); a success or a
        /// re-arm clears what the file had.
        retry: Option<Retry>,
    },
    /// A merge group is formed from reconstructed, ungrouped files.
    NewGroup {
        /// Its number (one more than the highest so far).
        no: GroupNo,
        /// Its files, each expected reconstructed and ungrouped.
        files: Vec<FileId>,
        /// Total TMB bytes.
        bytes: u64,
    },
    /// A merge group moves.
    Group {
        /// Which group.
        no: GroupNo,
        /// State expected.
        from: GroupState,
        /// Attempts expected.
        attempts: u32,
        /// What happens.
        event: GroupEvent,
        /// State written.
        to: GroupState,
        /// Error to record, if any.
        error: Option<String>,
        /// Merged file to record, on merge success.
        output: Option<MergedFile>,
        /// When a failure may be tried again; a success or a re-arm clears it.
        retry: Option<Retry>,
    },
    /// A job is reserved, before it is submitted.
    NewJob {
        /// Subject and attempt; expected not to exist yet.
        key: JobKey,
    },
    /// A job moves.
    Job {
        /// Which job.
        key: JobKey,
        /// State expected.
        from: JobState,
        /// What happens.
        event: JobEvent,
        /// State written.
        to: JobState,
        /// Batch id to record, on submission.
        batch_id: Option<String>,
        /// Exit code to record.
        exit_code: Option<i32>,
        /// Error to record.
        error: Option<String>,
    },
    /// The steps found out become these ([`crate::outage::trip`]): an outage opens, is
    /// tried again later, or is over.
    Outage(Vec<Outage>),
}

/// What a batch of changes overwrote in a view ([`DatasetView::apply_undoable`]).
#[derive(Debug)]
#[must_use = "an undo log does nothing unless given to DatasetView::undo"]
pub struct UndoLog(Vec<Undo>);

/// What one change overwrote, to put back if a later change of the batch fails.
#[derive(Debug)]
enum Undo {
    Status(Status),
    Outages(Vec<Outage>),
    File(FileId, Option<RawFile>),
    Group(GroupNo, Option<MergeGroup>),
    Job(JobKey, Option<Job>),
}

/// A change that found something other than what it expected: someone else moved it first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: expected {expected}, found {found}")]
pub struct Conflict {
    /// What was looked at.
    pub what: String,
    /// What the change expected.
    pub expected: String,
    /// What was there.
    pub found: String,
}

/// Why a batch of changes was not applied. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Another writer got there first; re-read and decide again.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The change itself breaks a lifecycle rule.
    #[error(transparent)]
    Illegal(#[from] IllegalChange),
}

/// A change that a lifecycle rule refuses, whatever the rows hold: a bug in whoever made it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("change #{index} ({change}) is refused: {rule}")]
pub struct IllegalChange {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// The change, in words.
    pub change: String,
    /// The rule it breaks.
    pub rule: BrokenRule,
}

/// The rule an [`IllegalChange`] breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokenRule {
    /// The dataset lifecycle has no such move.
    #[error(transparent)]
    Dataset(#[from] Refused),
    /// The file, job or merge-group table has no such move.
    #[error(transparent)]
    Entity(#[from] IllegalMove),
    /// The move's table says it ends elsewhere than the change writes.
    #[error("the table takes it to {table}, the change writes {written}")]
    WrongEnd {
        /// Where the table goes.
        table: String,
        /// What the change would write.
        written: String,
    },
    /// A closing transition the files and groups do not found.
    #[error(transparent)]
    Unmet(#[from] Unmet),
    /// A new job or group that cannot exist (attempt 0, a group of no files, a file twice).
    #[error("{0}")]
    Malformed(&'static str),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Dataset(m) => write!(f, "dataset {m}"),
            Change::File {
                id,
                from,
                event,
                to,
                ..
            } => write!(f, "raw file {id} {from} --{event}--> {to}"),
            Change::NewGroup { no, files, .. } => {
                write!(f, "new merge group {no} of {} files", files.len())
            }
            Change::Group {
                no,
                from,
                event,
                to,
                ..
            } => write!(f, "merge group {no} {from} --{event}--> {to}"),
            Change::NewJob { key } => write!(f, "new job {key}"),
            Change::Job {
                key,
                from,
                event,
                to,
                ..
            } => write!(f, "job {key} {from} --{event}--> {to}"),
            Change::Outage(o) => write!(f, "{} step(s) out", o.len()),
        }
    }
}

fn wrong_end(table: impl fmt::Display, written: impl fmt::Display) -> BrokenRule {
    BrokenRule::WrongEnd {
        table: table.to_string(),
        written: written.to_string(),
    }
}

impl Change {
    /// Checks the change against its lifecycle table alone: the move exists from the state
    /// it expects and ends where it writes. Storage runs this on every change of a batch
    /// before it writes any; what the rows hold is checked as it writes.
    pub fn check(&self) -> Result<(), BrokenRule> {
        match self {
            Change::Dataset(m) => {
                let stepped = step(m.from(), m.via())?;
                if stepped != m.to() {
                    return Err(wrong_end(stepped.columns(), m.to().columns()));
                }
            }
            Change::File {
                id,
                from,
                event,
                to,
                ..
            } => {
                let stepped = file_step(*id, *from, *event)?;
                if stepped != *to {
                    return Err(wrong_end(stepped, to));
                }
            }
            Change::NewGroup { no, files, .. } => {
                if no.0 == 0 {
                    return Err(BrokenRule::Malformed("merge groups are numbered from 1"));
                }
                if files.is_empty() {
                    return Err(BrokenRule::Malformed(
                        "a merge group needs at least one file",
                    ));
                }
                let distinct: std::collections::BTreeSet<_> = files.iter().collect();
                if distinct.len() != files.len() {
                    return Err(BrokenRule::Malformed("a merge group lists a file twice"));
                }
            }
            Change::Group {
                no,
                from,
                event,
                to,
                ..
            } => {
                let stepped = group_step(*no, *from, *event)?;
                if stepped != *to {
                    return Err(wrong_end(stepped, to));
                }
            }
            Change::NewJob { key } => {
                if key.attempt == 0 {
                    return Err(BrokenRule::Malformed("job attempts are numbered from 1"));
                }
            }
            Change::Outage(o) => {
                if o.windows(2).any(|w| w[0].step >= w[1].step) {
                    return Err(BrokenRule::Malformed(
                        "outages are one a step, in the steps' order",
                    ));
                }
            }
            Change::Job {
                key,
                from,
                event,
                to,
                ..
            } => {
                let stepped = job_step(*key, *from, *event)?;
                if stepped != *to {
                    return Err(wrong_end(stepped, to));
                }
            }
        }
        Ok(())
    }

    /// Orders a batch so that alike changes are adjacent, which a store writes as one
    /// statement per run: merge groups formed, group moves, job moves, file moves (group
    /// and file moves by `(from, attempts, event)`, which one guarded `UPDATE` shares), job reservations, and
    /// dataset moves last. The changes of one row keep their order: a row's second change
    /// sorts after every row's first. A plan's reservation comes after the file or group
    /// move it reserves; an outcome's job move before its file's move; a closing dataset
    /// move after the files it is founded on. The sort is stable, and `n log n` in the batch.
    pub fn batch_order(changes: &mut [Change]) {
        use std::collections::HashMap;
        #[derive(PartialEq, Eq, Hash)]
        enum Row {
            File(FileId),
            Group(GroupNo),
            Job(JobKey),
            Dataset,
        }
        type Key = (
            u8,
            u32,
            Option<(FileState, u32, FileEvent)>,
            Option<(bool, JobState, JobEvent)>,
            Option<(GroupState, u32, GroupEvent)>,
        );
        let mut nth: HashMap<Row, u32> = HashMap::with_capacity(changes.len());
        // The keys are sorted with each change's place, and the changes are then moved
        // into their new places where they are: a sorted copy of a batch of 150,000
        // changes was the largest thing a tick held.
        let mut order: Vec<(Key, usize)> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (rank, row) = match c {
                    Change::NewGroup { no, .. } => (0, Row::Group(*no)),
                    Change::Group { no, .. } => (1, Row::Group(*no)),
                    Change::Job { key, .. } => (2, Row::Job(*key)),
                    Change::File { id, .. } => (3, Row::File(*id)),
                    Change::NewJob { key } => (4, Row::Job(*key)),
                    Change::Dataset(_) | Change::Outage(_) => (5, Row::Dataset),
                };
                let seen = nth.entry(row).or_insert(0);
                let n = *seen;
                *seen += 1;
                let file = match c {
                    Change::File {
                        from,
                        attempts,
                        event,
                        ..
                    } => Some((*from, *attempts, *event)),
                    _ => None,
                };
                let job = match c {
                    Change::Job {
                        key, from, event, ..
                    } => Some((matches!(key.subject, JobSubject::Reco(_)), *from, *event)),
                    _ => None,
                };
                let group = match c {
                    Change::Group {
                        from,
                        attempts,
                        event,
                        ..
                    } => Some((*from, *attempts, *event)),
                    _ => None,
                };
                ((rank, n, file, job, group), i)
            })
            .collect();
        drop(nth);
        // Stable: alike keys keep their order by their places.
        order.sort_unstable();
        let mut from: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();
        permute(changes, &mut from);
    }

    /// Checks every change of a batch with [`Change::check`], naming the first that fails.
    pub fn check_all(changes: &[Change]) -> Result<(), IllegalChange> {
        for (index, c) in changes.iter().enumerate() {
            c.check().map_err(|rule| IllegalChange {
                index,
                change: c.to_string(),
                rule,
            })?;
        }
        Ok(())
    }
}

/// Puts `items[from[i]]` at `i` for every `i`, in place, following each cycle of the
/// permutation `from` once (which it leaves as the identity): linear, with no copy.
fn permute<T>(items: &mut [T], from: &mut [usize]) {
    debug_assert_eq!(items.len(), from.len());
    for start in 0..from.len() {
        let mut at = start;
        loop {
            let next = from[at];
            from[at] = at;
            if next == start {
                break;
            }
            items.swap(at, next);
            at = next;
        }
    }
}

fn conflict(
    what: impl fmt::Display,
    expected: impl fmt::Display,
    found: impl fmt::Display,
) -> Conflict {
    Conflict {
        what: what.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

impl Change {
    /// A file move computed from its table; `None` if the table has no such move.
    pub fn file(f: &RawFile, event: FileEvent) -> Option<Change> {
        let to = file_step(f.id, f.state, event).ok()?;
        Some(Change::File {
            id: f.id,
            from: f.state,
            attempts: f.attempts,
            event,
            to,
            error: None,
            tmb: None,
            retry: None,
        })
    }

    /// A group move computed from its table; `None` if the table has no such move.
    pub fn group(grp: &MergeGroup, event: GroupEvent) -> Option<Change> {
        let to = group_step(grp.no, grp.state, event).ok()?;
        Some(Change::Group {
            no: grp.no,
            from: grp.state,
            attempts: grp.attempts,
            event,
            to,
            error: None,
            output: None,
            retry: None,
        })
    }

    /// A job move computed from its table; `None` if the table has no such move.
    pub fn job(job: &Job, event: JobEvent) -> Option<Change> {
        let to = job_step(job.key, job.state, event).ok()?;
        Some(Change::Job {
            key: job.key,
            from: job.state,
            event,
            to,
            batch_id: None,
            exit_code: None,
            error: None,
        })
    }

    /// Forms `grp` (as [`MergeGroup::new`] makes it) from its files.
    pub fn new_group(grp: &MergeGroup) -> Change {
        Change::NewGroup {
            no: grp.no,
            files: grp.files.clone(),
            bytes: grp.bytes,
        }
    }

    /// The same job change, recording the batch system's id.
    pub fn with_batch_id(mut self, id: impl Into<String>) -> Change {
        if let Change::Job { batch_id, .. } = &mut self {
            *batch_id = Some(id.into());
        }
        self
    }

    /// The same job change, recording the exit code.
    pub fn with_exit_code(mut self, code: Option<i32>) -> Change {
        if let Change::Job { exit_code, .. } = &mut self {
            *exit_code = code;
        }
        self
    }

    /// The same group change, recording the merged file its job produced.
    pub fn with_output(mut self, merged: MergedFile) -> Change {
        if let Change::Group { output, .. } = &mut self {
            *output = Some(merged);
        }
        self
    }

    /// The same file change, recording the TMB file a reco job produced.
    pub fn with_tmb(mut self, t: TmbFile) -> Change {
        if let Change::File { tmb, .. } = &mut self {
            *tmb = Some(t);
        }
        self
    }

    /// The same change, recording `error`.
    pub fn with_error(mut self, e: impl Into<String>) -> Change {
        match &mut self {
            Change::File { error, .. }
            | Change::Group { error, .. }
            | Change::Job { error, .. } => {
                *error = Some(e.into());
            }
            Change::Dataset(m) => m.set_reason(e.into()),
            Change::NewGroup { .. } | Change::NewJob { .. } | Change::Outage(_) => {}
        }
        self
    }

    /// The same file or group change, recording when it may be tried again.
    pub fn with_retry(mut self, r: Option<Retry>) -> Change {
        if let Change::File { retry, .. } | Change::Group { retry, .. } = &mut self {
            *retry = r;
        }
        self
    }
}

impl DatasetView {
    /// A newly registered dataset (`LOCK`, every phase `NOT DONE`) with these files.
    pub fn new(name: DatasetName, files: impl IntoIterator<Item = RawFile>) -> Self {
        DatasetView {
            name,
            status: Status::NEW,
            files: files.into_iter().map(|f| (f.id, f)).collect(),
            jobs: BTreeMap::new(),
            groups: BTreeMap::new(),
            outages: Vec::new(),
        }
    }

    /// The outage of `step`, while its next try is still to come at `now`.
    pub fn out(&self, step: Step, now: i64) -> Option<&Outage> {
        self.outages
            .iter()
            .find(|o| o.step == step && now < o.until)
    }

    /// The job currently live (reserved, submitted or running) for a subject, if any.
    pub fn live_job(&self, subject: crate::job::JobSubject) -> Option<&Job> {
        // Keys order by subject first, so a subject's attempts are one range.
        let first = JobKey {
            subject,
            attempt: 0,
        };
        let last = JobKey {
            subject,
            attempt: u32::MAX,
        };
        self.jobs
            .range(first..=last)
            .map(|(_, j)| j)
            .find(|j| j.state.is_live())
    }

    /// The attempts of the step `file` is in; for a file that has just finished its reco
    /// (reconstructed, no attempt at anything since), the attempts that reco took.
    pub fn step_attempts(&self, file: &RawFile) -> u32 {
        if file.state == FileState::Reconstructed && file.attempts == 0 {
            let subject = JobSubject::Reco(file.id);
            let first = JobKey {
                subject,
                attempt: 0,
            };
            let last = JobKey {
                subject,
                attempt: u32::MAX,
            };
            return self
                .jobs
                .range(first..=last)
                .map(|(k, _)| k.attempt)
                .max()
                .unwrap_or(0);
        }
        file.attempts
    }

    /// Number of files in each state, in [`FileState::ALL`] order.
    pub fn file_counts(&self) -> BTreeMap<FileState, usize> {
        let mut m = BTreeMap::new();
        for f in self.files.values() {
            *m.entry(f.state).or_insert(0) += 1;
        }
        m
    }

    /// How many files and groups are in each state, for [`crate::guard::admits`].
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for f in self.files.values() {
            *t.files.entry(f.state).or_insert(0) += 1;
            if f.state == FileState::Reconstructed && f.group.is_none() {
                t.ungrouped += 1;
            }
        }
        for g in self.groups.values() {
            *t.groups.entry(g.state).or_insert(0) += 1;
        }
        t
    }

    /// What the dataset move `m` (change `index` of a list) makes of `status`, with this
    /// view's rows: refused if the dataset is not at `m`'s start or the move's rules do
    /// not hold for the rows.
    fn moved(&self, index: usize, status: Status, m: &DatasetMove) -> Result<Status, ApplyError> {
        if status != m.from() {
            return Err(conflict(
                format!("dataset {}", self.name),
                m.from().columns(),
                status.columns(),
            )
            .into());
        }
        if needs_tally(m.via()) {
            admits(m.from().state.kind(), m.via(), &self.tally()).map_err(|u| IllegalChange {
                index,
                change: Change::Dataset(m.clone()).to_string(),
                rule: u.into(),
            })?;
        }
        Ok(m.to())
    }

    /// The status [`DatasetView::apply`] would leave after `change`, a dataset move, if the
    /// dataset were at `status` with these rows: the view is neither changed nor copied.
    /// Any other change is refused as a conflict (it would move rows, not the status).
    pub fn status_after(&self, status: Status, change: &Change) -> Result<Status, ApplyError> {
        Change::check_all(std::slice::from_ref(change))?;
        match change {
            Change::Dataset(m) => self.moved(0, status, m),
            other => Err(conflict(
                format!("dataset {}", self.name),
                "a dataset move",
                other.to_string(),
            )
            .into()),
        }
    }

    /// Whether [`DatasetView::apply`] would take `changes`, without changing the view.
    /// They are tried on a copy of the rows they name (and the subjects of the jobs they
    /// name), not of the whole view; a dataset move, whose rules may count every file, on
    /// a copy of the whole.
    pub fn applies(&self, changes: &[Change]) -> bool {
        if changes.iter().any(|c| matches!(c, Change::Dataset(_))) {
            return self.clone().apply(changes).is_ok();
        }
        let mut part = DatasetView {
            name: self.name.clone(),
            status: self.status,
            files: BTreeMap::new(),
            jobs: BTreeMap::new(),
            groups: BTreeMap::new(),
            outages: self.outages.clone(),
        };
        let file = |part: &mut DatasetView, id: &FileId| {
            if let Some(f) = self.files.get(id) {
                part.files.entry(*id).or_insert_with(|| f.clone());
            }
        };
        let group = |part: &mut DatasetView, no: &GroupNo| {
            if let Some(g) = self.groups.get(no) {
                part.groups.entry(*no).or_insert_with(|| g.clone());
            }
        };
        for c in changes {
            match c {
                Change::Dataset(_) | Change::Outage(_) => {}
                Change::File { id, .. } => file(&mut part, id),
                Change::NewGroup { no, files, .. } => {
                    group(&mut part, no);
                    for id in files {
                        file(&mut part, id);
                    }
                }
                Change::Group { no, .. } => group(&mut part, no),
                Change::NewJob { key } | Change::Job { key, .. } => {
                    if let Some(j) = self.jobs.get(key) {
                        part.jobs.entry(*key).or_insert_with(|| j.clone());
                    }
                    match &key.subject {
                        JobSubject::Reco(f) => file(&mut part, f),
                        JobSubject::Merge(g) => group(&mut part, g),
                    }
                }
            }
        }
        // The copy is thrown away: no undo log.
        Change::check_all(changes).is_ok()
            && changes
                .iter()
                .enumerate()
                .all(|(index, c)| part.apply_one(index, c).is_ok())
    }

    /// Applies `changes` in order, all or nothing, with the rules storage enforces: each
    /// change is legal by its table ([`Change::check`]), finds what it expects (else a
    /// [`Conflict`]), and a closing dataset transition is founded on the files and groups
    /// as the earlier changes left them ([`crate::guard`]).
    pub fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError> {
        self.apply_undoable(changes).map(drop)
    }

    /// [`DatasetView::apply`], keeping what the changes overwrote: [`DatasetView::undo`]
    /// puts the view back as it was before them. For a store that holds views as its
    /// rows and checks something after the changes (a budget) before it keeps them.
    pub fn apply_undoable(&mut self, changes: &[Change]) -> Result<UndoLog, ApplyError> {
        Change::check_all(changes)?;
        // An undo log of what each change touches, rather than a copy of the whole view:
        // recording thousands of outcomes one by one stays linear.
        let mut undo = Vec::new();
        for (index, c) in changes.iter().enumerate() {
            self.remember(c, &mut undo);
            if let Err(e) = self.apply_one(index, c) {
                self.roll_back(undo);
                return Err(e);
            }
        }
        Ok(UndoLog(undo))
    }

    /// Puts back what the changes that gave `log` overwrote. Only right on the view they
    /// were applied to, with nothing applied since.
    pub fn undo(&mut self, log: UndoLog) {
        self.roll_back(log.0);
    }

    fn remember(&self, change: &Change, undo: &mut Vec<Undo>) {
        match change {
            Change::Dataset(_) => undo.push(Undo::Status(self.status)),
            Change::Outage(_) => undo.push(Undo::Outages(self.outages.clone())),
            Change::File { id, .. } => undo.push(Undo::File(*id, self.files.get(id).cloned())),
            Change::NewGroup { no, files, .. } => {
                undo.push(Undo::Group(*no, self.groups.get(no).cloned()));
                for id in files {
                    undo.push(Undo::File(*id, self.files.get(id).cloned()));
                }
            }
            Change::Group { no, .. } => undo.push(Undo::Group(*no, self.groups.get(no).cloned())),
            Change::NewJob { key } | Change::Job { key, .. } => {
                undo.push(Undo::Job(*key, self.jobs.get(key).cloned()));
            }
        }
    }

    fn roll_back(&mut self, undo: Vec<Undo>) {
        fn restore<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, old: Option<V>) {
            match old {
                Some(v) => {
                    map.insert(key, v);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        for u in undo.into_iter().rev() {
            match u {
                Undo::Status(s) => self.status = s,
                Undo::Outages(o) => self.outages = o,
                Undo::File(id, old) => restore(&mut self.files, id, old),
                Undo::Group(no, old) => restore(&mut self.groups, no, old),
                Undo::Job(key, old) => restore(&mut self.jobs, key, old),
            }
        }
    }

    fn apply_one(&mut self, index: usize, change: &Change) -> Result<(), ApplyError> {
        match change {
            Change::Dataset(m) => self.status = self.moved(index, self.status, m)?,
            Change::Outage(o) => self.outages.clone_from(o),
            Change::File { .. } => self.move_file(change)?,
            Change::NewGroup { .. } => self.new_group(change)?,
            Change::Group { .. } => self.move_group(change)?,
            Change::NewJob { .. } => self.new_job(change)?,
            Change::Job { .. } => self.move_job(change)?,
        }
        Ok(())
    }

    /// Applies `change`, a [`Change::File`].
    fn move_file(&mut self, change: &Change) -> Result<(), ApplyError> {
        let Change::File {
            id,
            from,
            attempts,
            event,
            to,
            error,
            tmb,
            retry,
        } = change
        else {
            return Ok(());
        };
        let f = self
            .files
            .get_mut(id)
            .ok_or_else(|| conflict(format!("raw file {id}"), from, "no such file"))?;
        if f.state != *from || f.attempts != *attempts {
            return Err(conflict(
                format!("raw file {id}"),
                format!("{from} after {attempts} attempts"),
                format!("{} after {} attempts", f.state, f.attempts),
            )
            .into());
        }
        f.state = *to;
        f.attempt_base = event.base_after(*attempts, f.attempt_base);
        f.attempts = event.attempts_after(*attempts);
        if let Some(e) = error {
            f.last_error = Some(e.clone());
        }
        if let Some(t) = tmb {
            f.tmb = Some(t.clone());
        }
        if event.clears_retry() {
            f.retry = None;
        } else if retry.is_some() {
            f.retry = *retry;
        }
        Ok(())
    }

    /// Applies `change`, a [`Change::NewGroup`].
    fn new_group(&mut self, change: &Change) -> Result<(), ApplyError> {
        let Change::NewGroup { no, files, bytes } = change else {
            return Ok(());
        };
        if self.groups.contains_key(no) {
            return Err(conflict(format!("merge group {no}"), "absent", "present").into());
        }
        for id in files {
            let f = self.files.get_mut(id).ok_or_else(|| {
                conflict(format!("raw file {id}"), "reconstructed", "no such file")
            })?;
            if f.state != FileState::Reconstructed || f.group.is_some() {
                let found = match f.group {
                    Some(g) => format!("{} in {g}", f.state),
                    None => f.state.to_string(),
                };
                return Err(
                    conflict(format!("raw file {id}"), "reconstructed, ungrouped", found).into(),
                );
            }
            f.group = Some(*no);
        }
        self.groups
            .insert(*no, MergeGroup::new(*no, files.clone(), *bytes));
        Ok(())
    }

    /// Applies `change`, a [`Change::Group`].
    fn move_group(&mut self, change: &Change) -> Result<(), ApplyError> {
        let Change::Group {
            no,
            from,
            attempts,
            event,
            to,
            error,
            output,
            retry,
        } = change
        else {
            return Ok(());
        };
        let grp = self
            .groups
            .get_mut(no)
            .ok_or_else(|| conflict(format!("merge group {no}"), from, "no such group"))?;
        if grp.state != *from || grp.attempts != *attempts {
            return Err(conflict(
                format!("merge group {no}"),
                format!("{from} after {attempts} attempts"),
                format!("{} after {} attempts", grp.state, grp.attempts),
            )
            .into());
        }
        grp.state = *to;
        grp.attempt_base = event.base_after(*attempts, grp.attempt_base);
        grp.attempts = event.attempts_after(*attempts);
        if let Some(e) = error {
            grp.last_error = Some(e.clone());
        }
        if let Some(o) = output {
            grp.output = Some(o.clone());
        }
        if event.clears_retry() {
            grp.retry = None;
        } else if retry.is_some() {
            grp.retry = *retry;
        }
        Ok(())
    }

    /// Applies `change`, a [`Change::NewJob`].
    fn new_job(&mut self, change: &Change) -> Result<(), ApplyError> {
        let Change::NewJob { key } = change else {
            return Ok(());
        };
        let subject_here = match key.subject {
            JobSubject::Reco(f) => self.files.contains_key(&f),
            JobSubject::Merge(g) => self.groups.contains_key(&g),
        };
        if !subject_here {
            return Err(conflict(
                format!("job {key}"),
                format!("{} of {}", key.subject, self.name),
                "no such subject in this dataset",
            )
            .into());
        }
        if let Some(j) = self.jobs.get(key) {
            return Err(conflict(format!("job {key}"), "absent", j.state).into());
        }
        self.jobs.insert(
            *key,
            Job {
                key: *key,
                state: JobState::Reserved,
                batch_id: None,
                exit_code: None,
                error: None,
            },
        );
        Ok(())
    }

    /// Applies `change`, a [`Change::Job`].
    fn move_job(&mut self, change: &Change) -> Result<(), ApplyError> {
        let Change::Job {
            key,
            from,
            to,
            batch_id,
            exit_code,
            error,
            ..
        } = change
        else {
            return Ok(());
        };
        let j = self
            .jobs
            .get_mut(key)
            .ok_or_else(|| conflict(format!("job {key}"), from, "no such job"))?;
        if j.state != *from {
            return Err(conflict(format!("job {key}"), from, j.state).into());
        }
        j.state = *to;
        if let Some(b) = batch_id {
            j.batch_id = Some(b.clone());
        }
        if exit_code.is_some() {
            j.exit_code = *exit_code;
        }
        if let Some(e) = error {
            j.error = Some(e.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSubject;

    use proptest::prelude::*;

    proptest! {
        /// Moving in place puts every item where a copy would.
        #[test]
        fn permute_moves_each_item_to_its_place(
            order in (0usize..64).prop_flat_map(|n| {
                Just((0..n).collect::<Vec<_>>()).prop_shuffle()
            })
        ) {
            let items: Vec<String> = (0..order.len()).map(|i| format!("item {i}")).collect();
            let copied: Vec<String> = order.iter().map(|&i| items[i].clone()).collect();
            let mut moved = items;
            let mut from = order.clone();
            permute(&mut moved, &mut from);
            prop_assert_eq!(moved, copied);
            prop_assert!(from.iter().enumerate().all(|(i, &j)| i == j));
        }
    }

    fn view(states: &[FileState]) -> DatasetView {
        let files = states.iter().enumerate().map(|(i, s)| {
            let mut f = RawFile::new(FileId(i as u64 + 1), format!("raw{i}"), 10);
            f.state = *s;
            f
        });
        DatasetView::new(DatasetName::new("unit").unwrap(), files)
    }

    #[test]
    fn batch_order_makes_alike_moves_adjacent_and_keeps_each_rows_order() {
        let v = view(&[
            FileState::Staging,
            FileState::Staging,
            FileState::Staging,
            FileState::Staged,
        ]);
        let f = |id: u64| &v.files[&FileId(id)];
        let fail = Change::file(f(2), FileEvent::StageFail).unwrap();
        let mut failed = v.clone();
        failed.apply(std::slice::from_ref(&fail)).unwrap();
        let retry = Change::file(&failed.files[&FileId(2)], FileEvent::RequestStage).unwrap();
        failed.apply(std::slice::from_ref(&retry)).unwrap();
        // Its third move sorts before its second by state (`staging` < `stage_failed`).
        let done = Change::file(&failed.files[&FileId(2)], FileEvent::StageDone).unwrap();
        let reco = Change::file(f(4), FileEvent::SubmitReco).unwrap();
        let job = Change::NewJob {
            key: JobKey {
                subject: JobSubject::Reco(FileId(4)),
                attempt: 1,
            },
        };
        let staged = |id| Change::file(f(id), FileEvent::StageDone).unwrap();
        let mut batch = vec![
            staged(1),
            fail.clone(),
            reco.clone(),
            job.clone(),
            retry.clone(),
            staged(3),
            done.clone(),
        ];
        let mut expected = v.clone();
        expected.apply(&batch).unwrap();
        Change::batch_order(&mut batch);
        // The two `staged` moves are one run; file 2's retry still follows its failure,
        // and the reservation follows the file move it reserves.
        let pos = |c: &Change| batch.iter().position(|b| b == c).unwrap();
        assert_eq!(pos(&staged(3)), pos(&staged(1)) + 1, "{batch:#?}");
        assert!(
            pos(&fail) < pos(&retry) && pos(&retry) < pos(&done),
            "{batch:#?}"
        );
        assert!(pos(&job) > pos(&reco));
        let mut got = v.clone();
        got.apply(&batch).unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn an_error_from_a_finished_step_is_not_a_current_failure() {
        let mut v = view(&[FileState::RecoFailed, FileState::Reconstructed]);
        for f in v.files.values_mut() {
            f.last_error = Some("segfault".into());
        }
        assert_eq!(v.files[&FileId(1)].current_error(), Some("segfault"));
        assert_eq!(v.files[&FileId(2)].current_error(), None);
    }

    #[test]
    fn a_reconstructed_file_shows_the_attempts_its_reco_took() {
        let mut v = view(&[FileState::Reconstructed]);
        for attempt in [1, 2] {
            let key = JobKey {
                subject: JobSubject::Reco(FileId(1)),
                attempt,
            };
            let state = if attempt == 2 {
                JobState::Done
            } else {
                JobState::Failed
            };
            v.jobs.insert(
                key,
                Job {
                    key,
                    state,
                    batch_id: None,
                    exit_code: None,
                    error: None,
                },
            );
        }
        let f = v.files[&FileId(1)].clone();
        assert_eq!(f.attempts, 0);
        assert_eq!(v.step_attempts(&f), 2);
    }

    #[test]
    fn a_batch_with_one_stale_change_leaves_the_view_as_it_was() {
        let mut v = view(&[FileState::Registered, FileState::Registered]);
        let before = v.clone();
        let ok = Change::file(&v.files[&FileId(1)], FileEvent::RequestStage).unwrap();
        let mut stale = Change::file(&v.files[&FileId(2)], FileEvent::RequestStage).unwrap();
        if let Change::File { attempts, .. } = &mut stale {
            *attempts = 5;
        }
        let err = v.apply(&[ok, stale]).unwrap_err();
        assert!(matches!(err, ApplyError::Conflict(_)), "{err}");
        assert_eq!(v, before);
    }

    #[test]
    fn a_job_for_a_file_of_another_dataset_is_refused() {
        let mut v = view(&[FileState::Staged]);
        let key = JobKey {
            subject: JobSubject::Reco(FileId(99)),
            attempt: 1,
        };
        let err = v.apply(&[Change::NewJob { key }]).unwrap_err();
        assert!(
            err.to_string().contains("no such subject in this dataset"),
            "{err}"
        );
        let zero = JobKey {
            subject: JobSubject::Reco(FileId(1)),
            attempt: 0,
        };
        let err = v.apply(&[Change::NewJob { key: zero }]).unwrap_err();
        assert!(matches!(err, ApplyError::Illegal(_)), "{err}");
    }

    #[test]
    fn a_change_names_itself_in_the_lifecycles_words() {
        let v = view(&[FileState::Registered]);
        let c = Change::file(&v.files[&FileId(1)], FileEvent::RequestStage).unwrap();
        assert_eq!(
            c.to_string(),
            "raw file f1 registered --request_stage--> staging"
        );
    }
}
