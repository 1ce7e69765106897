//! What is due for a dataset, as data.
//!
//! [`plan`] looks at a [`DatasetView`] and returns the [`Change`]s to write and the
//! [`Action`]s to perform. The protocol for a driver is: write the changes in one guarded
//! transaction; only if that commits, perform the actions; report what the outside world
//! said as [`crate::Outcome`]s. Each action is reserved by one of the changes (a file moves
//! to `staging`, a job row appears in `reserved`, a group moves to `declaring`, a file to
//! `deleting`), so a second plan computed from the same snapshot conflicts instead of
//! repeating the action, and a plan computed after the first was written does not repeat it.
//!
//! [`polls`] lists what a check should ask the outside world about.

use crate::budget::{Budget, Draw, Limit, Waiting};
use crate::file::{FileEvent, FileId, FileState, TmbFile};
use crate::job::{JobKey, JobSubject};
use crate::name::DatasetName;
use crate::outage;
use crate::policy::Policy;
use crate::retry::Due;
use crate::state::{DatasetState, Phase, StageKind, Status};
use crate::transition::Transition;
use crate::typed::AnyDataset;
use crate::view::{
    Change, DatasetView, GroupEvent, GroupNo, GroupState, MergeGroup, MergedFile, RawFile,
};
use crate::words::LockWord;

/// An external action a driver performs through a backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Ask the storage system to stage a raw file.
    Stage {
        /// The file.
        file: FileId,
        /// Its logical name.
        lfn: String,
        /// Which staging attempt.
        attempt: u32,
    },
    /// Submit a reco job for a staged raw file.
    SubmitReco {
        /// The reserved job.
        job: JobKey,
        /// Its deterministic batch name.
        name: String,
        /// Its raw file's logical name.
        lfn: String,
    },
    /// Submit a merge job over a group of TMB files.
    SubmitMerge {
        /// The reserved job.
        job: JobKey,
        /// Its deterministic batch name.
        name: String,
        /// The TMB files to merge.
        inputs: Vec<TmbFile>,
        /// The merged file to write.
        output: String,
    },
    /// Declare a merged file to the catalog.
    Declare {
        /// Its group.
        group: GroupNo,
        /// The merged file.
        merged: MergedFile,
        /// Which declaration attempt.
        attempt: u32,
    },
    /// Delete a raw file's intermediate copies (staged copy and TMB file).
    Delete {
        /// The raw file.
        file: FileId,
        /// Its logical name (the staged copy).
        lfn: String,
        /// Its TMB file.
        tmb: Option<TmbFile>,
        /// Which deletion attempt.
        attempt: u32,
    },
}

impl Action {
    /// The phase this action serves.
    pub fn phase(&self) -> Phase {
        match self {
            Action::Stage { .. } => Phase::Prestage,
            Action::SubmitReco { .. } => Phase::Reco,
            Action::SubmitMerge { .. } | Action::Declare { .. } => Phase::Merge,
            Action::Delete { .. } => Phase::Cleanup,
        }
    }
}

/// What a check asks the outside world about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "poll", rename_all = "snake_case")]
pub enum Poll {
    /// Is this raw file staged yet?
    Stage {
        /// The file.
        file: FileId,
        /// Its logical name.
        lfn: String,
    },
    /// Where is this job? Without a batch id, look it up by name: it was reserved, and its
    /// submission may or may not have happened.
    Job {
        /// The job.
        job: JobKey,
        /// Its deterministic name.
        name: String,
        /// Its batch id, if recorded.
        batch_id: Option<String>,
        /// For a reco job, its raw file's logical name (where its output goes).
        #[serde(skip_serializing_if = "Option::is_none")]
        lfn: Option<String>,
    },
    /// Was this declaration (reserved, outcome not recorded) made?
    Declaration {
        /// The group.
        group: GroupNo,
        /// Its merged file.
        merged: MergedFile,
    },
    /// Was this deletion (reserved, outcome not recorded) made?
    Deletion {
        /// The raw file.
        file: FileId,
        /// Its logical name.
        lfn: String,
        /// Its TMB file.
        tmb: Option<TmbFile>,
    },
}

/// The changes to write and the actions to perform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Guarded writes, in order; all in one transaction.
    pub changes: Vec<Change>,
    /// External actions, performed only after the changes are written.
    pub actions: Vec<Action>,
    /// Work that was due but held back for want of budget, per limit that held it
    /// (empty within [`Budget::UNLIMITED`]).
    pub waiting: Waiting,
}

impl Plan {
    /// Nothing is due.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.actions.is_empty()
    }

    /// The dataset transitions in this plan, in order.
    pub fn transitions(&self) -> impl Iterator<Item = Transition> + '_ {
        self.changes.iter().filter_map(|c| match c {
            Change::Dataset(m) => Some(m.via()),
            _ => None,
        })
    }
}

/// Everything due for `view` under `policy` once every retry's wait is over: nothing for a
/// locked dataset, otherwise the work of its current phase and, where that phase ends, the
/// start of the next. A driver plans at a time ([`plan_within`]), where what waits to be
/// retried waits.
pub fn plan(view: &DatasetView, policy: &Policy) -> Plan {
    plan_for(view, policy, i64::MAX, |_| true)
}

/// What is due while the dataset is at a stage `at` accepts: the work behind one of the
/// predecessor scripts' operations (`prestage` works at the prestage stages, `dbup` at `MergeDone`, ...).
/// Planning stops where the dataset moves to a stage `at` refuses.
/// `now` is the time (seconds since the epoch) retries are due against.
pub fn plan_for(
    view: &DatasetView,
    policy: &Policy,
    now: i64,
    at: impl Fn(StageKind) -> bool,
) -> Plan {
    let mut unlimited = Budget::UNLIMITED;
    plan_within(view, policy, now, at, &mut unlimited)
}

/// [`plan_for`], starting no more stage requests and jobs than `budget` has room for, and
/// taking what it plans from it. What is held back is in [`Plan::waiting`]; a phase never
/// closes while work of it waits. Within [`Budget::UNLIMITED`] this is [`plan_for`].
pub fn plan_within(
    view: &DatasetView,
    policy: &Policy,
    now: i64,
    at: impl Fn(StageKind) -> bool,
    budget: &mut (impl Draw + ?Sized),
) -> Plan {
    let mut out = Plan::default();
    if view.status.lock == LockWord::Lock {
        return out;
    }
    // A step either moves the dataset (starting or closing a phase: the move alone, since
    // a phase closes only when none of its work is left) and planning goes on at the next
    // stage, or does the stage's work and is the last. The rows are the view's throughout:
    // only the status moves, so the view is never copied (a copy of a 50,000-file view per
    // plan was most of the cost of planning, and a third of a tick's memory).
    let ctx = Ctx { policy, now, view };
    let mut status = view.status;
    // Automatic edges only go forward, so this ends within one pass over the stages.
    for _ in 0..StageKind::ALL.len() {
        if !at(status.state.kind()) {
            break;
        }
        let Step { mut work, leave } = stage_step(view, status, ctx, budget);
        for (limit, n) in std::mem::take(&mut work.waiting) {
            *out.waiting.entry(limit).or_default() += n;
        }
        if let Some(via) = leave {
            debug_assert!(work.is_empty(), "a phase closes with none of its work left");
            let Some(change) = dataset_move(&view.name, status, via) else {
                break;
            };
            match view.status_after(status, &change) {
                Ok(next) => status = next,
                // Only an inconsistent snapshot gets here; what was planned so far stands.
                Err(_) => break,
            }
            out.changes.push(change);
            continue;
        }
        if work.changes.is_empty() {
            break;
        }
        Change::batch_order(&mut work.changes);
        // The last step, checked against the view without being applied.
        if view.applies(&work.changes) {
            out.changes.extend(work.changes);
            out.actions.extend(work.actions);
        }
        break;
    }
    out
}

/// What one stage plans: its work, and the transition that leaves the stage once none of
/// its work is left (made by [`plan_within`] on the status the dataset has by then).
#[derive(Default)]
struct Step {
    work: Plan,
    leave: Option<Transition>,
}

impl Step {
    fn leave(via: Transition) -> Self {
        Step {
            work: Plan::default(),
            leave: Some(via),
        }
    }
}

/// What a plan decides by: the policy, the time retries are due against, and the
/// dataset's outages.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    policy: &'a Policy,
    now: i64,
    view: &'a DatasetView,
}

impl Ctx<'_> {
    /// What a `step` that made `tried` attempts (0: none yet) and recorded `retry` may do
    /// now: wait while the step is out, else what the policy says.
    fn due(&self, step: outage::Step, tried: u32, retry: Option<crate::retry::Retry>) -> Due {
        match self.view.out(step, self.now) {
            Some(o) => Due::At(o.until),
            None => self.policy.due(step.phase(), tried, retry, self.now),
        }
    }
}

/// The work of the stage the dataset is at, and the transition that leaves it when the
/// stage's work is done. One function per stage.
fn stage_step(
    v: &DatasetView,
    status: Status,
    ctx: Ctx<'_>,
    budget: &mut (impl Draw + ?Sized),
) -> Step {
    match status.state.kind() {
        StageKind::PrestageNotDone => start_prestage(v, budget),
        StageKind::RecoNotDone => Step::leave(Transition::StartReco),
        StageKind::MergeNotDone => start_merge(status, ctx.policy),
        StageKind::PrestageRunning => prestaging(v, ctx, budget),
        StageKind::RecoRunning => reconstructing(v, ctx, budget),
        StageKind::MergeRunning => merging(v, ctx, budget),
        StageKind::MergeDone => declaring(v, ctx),
        StageKind::CleanupNotDone => cleaning(v, ctx),
        // At rest: only an operator moves it on.
        StageKind::PrestageFailed
        | StageKind::RecoFailed
        | StageKind::MergeFailed
        | StageKind::CleanupFailed
        | StageKind::Cleaned => Step::default(),
    }
}

/// The dataset move `via` from `status`, made by the typed method it names on the
/// recovered dataset.
fn dataset_move(name: &DatasetName, status: Status, via: Transition) -> Option<Change> {
    let moved = AnyDataset::recover(name.clone(), status).take(via).ok()?;
    moved.into_changes().pop()
}

impl Plan {
    /// Reserves an action: the change that reserves it, then the action itself. A change
    /// the tables refuse reserves nothing, and then nothing is done.
    fn reserve(&mut self, change: Option<Change>, action: Action) {
        if let Some(c) = change {
            self.changes.push(c);
            self.actions.push(action);
        }
    }

    /// Counts one piece of work held back by `limit`.
    fn wait(&mut self, limit: Limit) {
        *self.waiting.entry(limit).or_default() += 1;
    }
}

/// Prestage `NOT DONE`: starts when the disk budget has room for all its raw files.
fn start_prestage(v: &DatasetView, budget: &mut (impl Draw + ?Sized)) -> Step {
    let bytes = v.files.values().fold(0u64, |b, f| b.saturating_add(f.size));
    match budget.take_disk(bytes) {
        Ok(()) => Step::leave(Transition::StartPrestage),
        Err(limit) => {
            let mut work = Plan::default();
            *work.waiting.entry(limit).or_default() += v.files.len() as u64;
            Step { work, leave: None }
        }
    }
}

/// Merge `NOT DONE`: a reco-`PARTIAL` dataset waits unless the policy merges partial ones.
fn start_merge(status: Status, policy: &Policy) -> Step {
    let partial = status.state.reco_outcome() == Some(crate::RecoOutcome::Partial);
    if partial && !policy.merge_partial {
        return Step::default();
    }
    Step::leave(Transition::StartMerge)
}

/// Prestage `RUNNING`: stage what has attempts left, give up on what has none; when no file
/// is left to stage, finish (some staged) or fail (none).
fn prestaging(v: &DatasetView, ctx: Ctx<'_>, budget: &mut (impl Draw + ?Sized)) -> Step {
    let mut p = Plan::default();
    let mut open = false;
    for f in v.files.values() {
        open |= stage_file(f, ctx, budget, &mut p);
    }
    let leave = (!open).then(|| {
        if v.files.values().any(|f| !f.state.failed_for_good()) {
            Transition::FinishPrestage
        } else {
            Transition::FailPrestage
        }
    });
    Step { work: p, leave }
}

/// One raw file's staging: a stage request when one is due and the budget has room,
/// giving up when its attempts and window are spent. Whether its staging is still open.
/// Besides prestage, the later phases call it for files an operator re-armed after the
/// dataset left prestage (`repro retry` while the dataset is in reco or merge).
fn stage_file(f: &RawFile, ctx: Ctx<'_>, budget: &mut (impl Draw + ?Sized), p: &mut Plan) -> bool {
    let due = match f.state {
        // Registered afresh or re-armed: no attempt of this step counts yet.
        FileState::Registered => ctx.due(outage::Step::Stage, 0, None),
        FileState::StageFailed => ctx.due(outage::Step::Stage, f.tried(), f.retry),
        FileState::Staging => return true,
        _ => return false,
    };
    if !tried_now(due, f, p) {
        return true;
    }
    if let Err(limit) = budget.take_stage() {
        p.wait(limit);
        return true;
    }
    let action = Action::Stage {
        file: f.id,
        lfn: f.lfn.clone(),
        attempt: f.attempts + 1,
    };
    p.reserve(Change::file(f, FileEvent::RequestStage), action);
    true
}

/// Whether a raw file's step that is `due` is tried now; if not, it waits, or it is
/// given up on (its give-up added to `p`).
fn tried_now(due: Due, f: &RawFile, p: &mut Plan) -> bool {
    if due == Due::GiveUp {
        p.changes.extend(Change::file(f, FileEvent::GiveUp));
    }
    due == Due::Now
}

/// Reco `RUNNING`: submit a job for each staged file (or failed one whose retry is due)
/// that has none live, give up on the rest, and stage re-armed files; when every file is
/// settled, end complete, partial or failed by how many have a TMB file.
fn reconstructing(v: &DatasetView, ctx: Ctx<'_>, budget: &mut (impl Draw + ?Sized)) -> Step {
    let mut p = Plan::default();
    let mut open = false;
    for f in v.files.values() {
        open |= stage_file(f, ctx, budget, &mut p) || reco_file(v, f, ctx, budget, &mut p);
    }
    let leave = (!open).then(|| {
        let with_tmb = v.files.values().filter(|f| f.state.has_tmb()).count();
        if with_tmb == v.files.len() {
            Transition::CompleteReco
        } else if with_tmb > 0 {
            Transition::PartialReco
        } else {
            Transition::FailReco
        }
    });
    Step { work: p, leave }
}

/// One raw file's reco: a job reserved for a staged file (or a failed one whose retry is
/// due) that has none live, giving up on one whose attempts and window are spent. Whether
/// its reco is open.
fn reco_file(
    v: &DatasetView,
    f: &RawFile,
    ctx: Ctx<'_>,
    budget: &mut (impl Draw + ?Sized),
    p: &mut Plan,
) -> bool {
    let due = match f.state {
        // Staged afresh or re-armed: no reco attempt counts yet.
        FileState::Staged => ctx.due(outage::Step::Reco, 0, None),
        FileState::RecoFailed => ctx.due(outage::Step::Reco, f.tried(), f.retry),
        FileState::RecoSubmitted => return true,
        _ => return false,
    };
    let subject = JobSubject::Reco(f.id);
    // Looked up only for the files of this phase (not the reconstructed, merged and
    // cleaned ones a long reco phase accumulates).
    if v.live_job(subject).is_some() {
        return true;
    }
    if !tried_now(due, f, p) {
        return true;
    }
    if let Err(limit) = budget.take_reco() {
        p.wait(limit);
        return true;
    }
    let key = JobKey {
        subject,
        attempt: f.attempts + 1,
    };
    let action = Action::SubmitReco {
        job: key,
        name: key.name(&v.name),
        lfn: f.lfn.clone(),
    };
    if let Some(c) = Change::file(f, FileEvent::SubmitReco) {
        p.changes.push(c);
        p.reserve(Some(Change::NewJob { key }), action);
    }
    true
}

/// Merge `RUNNING`: resubmit merging groups with no live job when due (or give them up),
/// form new groups from reconstructed, ungrouped files and submit them, stage and
/// reconstruct re-armed files; when nothing merges any more, finish, or fail if a group
/// failed for good.
fn merging(v: &DatasetView, ctx: Ctx<'_>, budget: &mut (impl Draw + ?Sized)) -> Step {
    let mut p = Plan::default();
    let mut leave = None;
    let mut open = false;
    for f in v.files.values() {
        open |= stage_file(f, ctx, budget, &mut p) || reco_file(v, f, ctx, budget, &mut p);
    }
    for grp in v.groups.values() {
        if grp.state != GroupState::Merging {
            continue;
        }
        open = true;
        if v.live_job(JobSubject::Merge(grp.no)).is_some() {
            continue;
        }
        match ctx.due(outage::Step::Merge, grp.tried(), grp.retry) {
            Due::Now => match budget.take_merge() {
                Ok(()) => submit_merge(v, grp, &mut p),
                Err(limit) => p.wait(limit),
            },
            Due::At(_) => {}
            Due::GiveUp => p.changes.extend(Change::group(grp, GroupEvent::GiveUp)),
        }
    }
    let next = v.groups.keys().next_back().map_or(1, |g| g.0 + 1);
    // While merge jobs are out, no group is formed either.
    let held = ctx.due(outage::Step::Merge, 0, None) != Due::Now;
    for (i, files) in new_groups(v, ctx.policy).into_iter().enumerate() {
        open = true;
        if held {
            break;
        }
        // A group is formed only when its job can start: numbers stay dense, and a
        // group never sits merging with no job for want of budget.
        if let Err(limit) = budget.take_merge() {
            p.wait(limit);
            continue;
        }
        let bytes = files.iter().map(|f| tmb_size(v, *f)).sum();
        let grp = MergeGroup::new(GroupNo(next + i as u32), files, bytes);
        p.changes.push(Change::new_group(&grp));
        submit_merge(v, &grp, &mut p);
    }
    if !open {
        let failed = v
            .groups
            .values()
            .any(|g| g.state == GroupState::FailedForGood);
        leave = Some(if failed {
            Transition::FailMerge
        } else {
            Transition::FinishMerge
        });
    }
    Step { work: p, leave }
}

/// Reserves the next merge job of `grp` and its submission.
fn submit_merge(v: &DatasetView, grp: &MergeGroup, p: &mut Plan) {
    let key = JobKey {
        subject: JobSubject::Merge(grp.no),
        attempt: grp.attempts + 1,
    };
    let action = Action::SubmitMerge {
        job: key,
        name: key.name(&v.name),
        inputs: tmb_files(v, &grp.files),
        output: MergedFile::name_for(&v.name, grp.no),
    };
    if let Some(c) = Change::group(grp, GroupEvent::SubmitMerge) {
        p.changes.push(c);
        p.reserve(Some(Change::NewJob { key }), action);
    }
}

/// Merge `MERGED`/`PARTIAL`: declare each merged file whose attempt is due; when none is
/// left to declare, declare the dataset (`MERGED_DBUP`), or fail if attempts ran out.
fn declaring(v: &DatasetView, ctx: Ctx<'_>) -> Step {
    let mut p = Plan::default();
    let mut leave = None;
    let mut open = false;
    let mut exhausted = false;
    for grp in v.groups.values() {
        match grp.state {
            GroupState::Merged => match ctx.due(outage::Step::Declare, grp.tried(), grp.retry) {
                Due::Now => {
                    if let Some(merged) = &grp.output {
                        let action = Action::Declare {
                            group: grp.no,
                            merged: merged.clone(),
                            attempt: grp.attempts + 1,
                        };
                        p.reserve(Change::group(grp, GroupEvent::ReserveDeclare), action);
                    }
                    open = true;
                }
                Due::At(_) => open = true,
                Due::GiveUp => exhausted = true,
            },
            GroupState::Declaring => open = true,
            _ => {}
        }
    }
    if !open {
        leave = Some(if exhausted {
            Transition::FailMerge
        } else {
            Transition::DeclareMerged
        });
    }
    Step { work: p, leave }
}

/// Cleanup `NOT DONE`: delete each merged file's intermediates when due; when none is
/// left, clean, or fail if attempts ran out.
fn cleaning(v: &DatasetView, ctx: Ctx<'_>) -> Step {
    let mut p = Plan::default();
    let mut leave = None;
    let mut open = false;
    let mut exhausted = false;
    for f in v.files.values() {
        match f.state {
            FileState::Merged => match ctx.due(outage::Step::Delete, f.tried(), f.retry) {
                Due::Now => {
                    let action = Action::Delete {
                        file: f.id,
                        lfn: f.lfn.clone(),
                        tmb: f.tmb.clone(),
                        attempt: f.attempts + 1,
                    };
                    p.reserve(Change::file(f, FileEvent::ReserveDelete), action);
                    open = true;
                }
                Due::At(_) => open = true,
                Due::GiveUp => exhausted = true,
            },
            FileState::Deleting => open = true,
            _ => {}
        }
    }
    if !open {
        leave = Some(if exhausted {
            Transition::FailCleanup
        } else {
            Transition::Clean
        });
    }
    Step { work: p, leave }
}

fn tmb_size(v: &DatasetView, id: FileId) -> u64 {
    v.files
        .get(&id)
        .and_then(|f| f.tmb.as_ref())
        .map_or(0, |t| t.size)
}

fn tmb_files(v: &DatasetView, ids: &[FileId]) -> Vec<TmbFile> {
    ids.iter()
        .filter_map(|id| v.files.get(id).and_then(|f| f.tmb.clone()))
        .collect()
}

/// Groups the reconstructed, ungrouped files in id order, each group as full as the
/// policy's file and byte limits allow.
fn new_groups(v: &DatasetView, policy: &Policy) -> Vec<Vec<FileId>> {
    let mut groups = Vec::new();
    let mut cur: Vec<FileId> = Vec::new();
    let mut bytes = 0u64;
    for f in v.files.values() {
        if f.state != FileState::Reconstructed || f.group.is_some() {
            continue;
        }
        let size = f.tmb.as_ref().map_or(0, |t| t.size);
        let full_files = cur.len() as u64 >= u64::from(policy.merge_group_files);
        let full_bytes = policy
            .merge_group_bytes
            .is_some_and(|cap| !cur.is_empty() && bytes.saturating_add(size) > cap);
        if full_files || full_bytes {
            groups.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push(f.id);
        bytes = bytes.saturating_add(size);
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// What a check should ask the outside world about: staging files, live jobs, and
/// declarations and deletions whose outcome was never recorded. Nothing for a locked dataset.
pub fn polls(view: &DatasetView) -> Vec<Poll> {
    let mut out = Vec::new();
    if view.status.lock == LockWord::Lock {
        return out;
    }
    for f in view.files.values() {
        match f.state {
            FileState::Staging => out.push(Poll::Stage {
                file: f.id,
                lfn: f.lfn.clone(),
            }),
            FileState::Deleting => out.push(Poll::Deletion {
                file: f.id,
                lfn: f.lfn.clone(),
                tmb: f.tmb.clone(),
            }),
            _ => {}
        }
    }
    for j in view.jobs.values().filter(|j| j.state.is_live()) {
        out.push(job_poll(view, j));
    }
    for g in view.groups.values() {
        if let (GroupState::Declaring, Some(merged)) = (g.state, &g.output) {
            out.push(Poll::Declaration {
                group: g.no,
                merged: merged.clone(),
            });
        }
    }
    out
}

/// Whether the dataset is at the end of the line: `CLEANED`, or `FAILED` somewhere.
pub fn at_rest(state: DatasetState) -> bool {
    state.kind().at_rest()
}

/// The poll that asks where job `j` of `view` is.
pub fn job_poll(view: &DatasetView, j: &crate::view::Job) -> Poll {
    let lfn = match j.key.subject {
        JobSubject::Reco(f) => view.files.get(&f).map(|f| f.lfn.clone()),
        JobSubject::Merge(_) => None,
    };
    Poll::Job {
        job: j.key,
        name: j.key.name(&view.name),
        batch_id: j.batch_id.clone(),
        lfn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Waiting;
    use crate::file::{FileId, TmbFile};
    use crate::name::DatasetName;
    use crate::state::{CleanupProgress, MergeProgress, Progress, Status};
    use crate::view::RawFile;
    use crate::{RecoOutcome, words::LockWord};

    fn policy() -> Policy {
        Policy {
            max_attempts: 2,
            merge_group_files: 2,
            merge_group_bytes: None,
            merge_partial: false,
            ..Policy::default()
        }
    }

    /// An unlocked dataset at `state` whose files are in `files`, in that order.
    fn at(state: DatasetState, files: &[FileState]) -> DatasetView {
        let raw = files.iter().enumerate().map(|(i, s)| {
            let mut f = RawFile::new(FileId(i as u64 + 1), format!("raw{i}"), 10);
            f.state = *s;
            if s.has_tmb() {
                f.tmb = Some(TmbFile::new(format!("tmb{i}"), 5));
            }
            f
        });
        let mut v = DatasetView::new(DatasetName::new("unit").unwrap(), raw);
        v.status = Status {
            lock: LockWord::Unlock,
            state,
        };
        v
    }

    /// A stage's step as a plan: its work, or the move that leaves the stage.
    /// Planning once every wait is over, as `plan` does.
    fn at_end<'a>(policy: &'a Policy, view: &'a DatasetView) -> Ctx<'a> {
        Ctx {
            policy,
            now: i64::MAX,
            view,
        }
    }

    fn as_plan(v: &DatasetView, step: Step) -> Plan {
        let mut p = step.work;
        if let Some(via) = step.leave {
            p.changes.extend(dataset_move(&v.name, v.status, via));
        }
        p
    }

    fn prestaging(v: &DatasetView, policy: &Policy, budget: &mut Budget) -> Plan {
        as_plan(v, super::prestaging(v, at_end(policy, v), budget))
    }

    fn reconstructing(v: &DatasetView, policy: &Policy, budget: &mut Budget) -> Plan {
        as_plan(v, super::reconstructing(v, at_end(policy, v), budget))
    }

    fn merging(v: &DatasetView, policy: &Policy, budget: &mut Budget) -> Plan {
        as_plan(v, super::merging(v, at_end(policy, v), budget))
    }

    fn declaring(v: &DatasetView, policy: &Policy) -> Plan {
        as_plan(v, super::declaring(v, at_end(policy, v)))
    }

    fn cleaning(v: &DatasetView, policy: &Policy) -> Plan {
        as_plan(v, super::cleaning(v, at_end(policy, v)))
    }

    fn start_merge(v: &DatasetView, policy: &Policy) -> Plan {
        as_plan(v, super::start_merge(v.status, policy))
    }

    fn vias(p: &Plan) -> Vec<Transition> {
        p.transitions().collect()
    }

    const PRESTAGING: DatasetState = DatasetState::Prestage(Progress::Running);
    const RECONSTRUCTING: DatasetState = DatasetState::Reco(Progress::Running);

    #[test]
    fn a_locked_dataset_plans_nothing() {
        let mut v = at(DatasetState::START, &[FileState::Registered]);
        v.status.lock = LockWord::Lock;
        assert!(plan(&v, &policy()).is_empty());
    }

    #[test]
    fn a_new_dataset_starts_prestage_and_stages_every_file_in_one_plan() {
        let v = at(DatasetState::START, &[FileState::Registered; 3]);
        let p = plan(&v, &policy());
        assert_eq!(vias(&p), [Transition::StartPrestage]);
        assert_eq!(p.actions.len(), 3);
        assert!(
            p.actions
                .iter()
                .all(|a| matches!(a, Action::Stage { attempt: 1, .. }))
        );
    }

    #[test]
    fn prestaging_gives_up_on_a_file_out_of_attempts_and_retries_the_others() {
        let mut v = at(
            PRESTAGING,
            &[FileState::StageFailed, FileState::StageFailed],
        );
        v.files.get_mut(&FileId(1)).unwrap().attempts = 2;
        v.files.get_mut(&FileId(2)).unwrap().attempts = 1;
        let p = prestaging(&v, &policy(), &mut Budget::default());
        assert_eq!(
            p.actions,
            [Action::Stage {
                file: FileId(2),
                lfn: "raw1".into(),
                attempt: 2
            }]
        );
        assert!(p.changes.iter().any(|c| matches!(
            c,
            Change::File {
                id: FileId(1),
                event: FileEvent::GiveUp,
                ..
            }
        )));
        assert!(vias(&p).is_empty(), "a file is still being staged");
    }

    #[test]
    fn prestaging_finishes_when_some_file_is_staged_and_fails_when_none_is() {
        let some = at(
            PRESTAGING,
            &[FileState::Staged, FileState::StageFailedForGood],
        );
        assert_eq!(
            vias(&prestaging(&some, &policy(), &mut Budget::default())),
            [Transition::FinishPrestage]
        );
        let none = at(PRESTAGING, &[FileState::StageFailedForGood]);
        assert_eq!(
            vias(&prestaging(&none, &policy(), &mut Budget::default())),
            [Transition::FailPrestage]
        );
        let busy = at(PRESTAGING, &[FileState::Staged, FileState::Staging]);
        assert!(prestaging(&busy, &policy(), &mut Budget::default()).is_empty());
    }

    #[test]
    fn reconstructing_reserves_one_job_per_staged_file() {
        let v = at(RECONSTRUCTING, &[FileState::Staged, FileState::Staged]);
        let p = reconstructing(&v, &policy(), &mut Budget::default());
        let jobs: Vec<_> = p
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::NewJob { key } => Some(key.name(&v.name)),
                _ => None,
            })
            .collect();
        assert_eq!(jobs, ["unit.reco.f1.a1", "unit.reco.f2.a1"]);
        assert_eq!(p.actions.len(), 2);
        // Written, the same plan reserves nothing again.
        let mut after = v.clone();
        after.apply(&p.changes).unwrap();
        assert!(reconstructing(&after, &policy(), &mut Budget::default()).is_empty());
    }

    #[test]
    fn a_budget_holds_work_back_and_keeps_the_phase_open() {
        let v = at(RECONSTRUCTING, &[FileState::Staged; 3]);
        let mut b = Budget {
            reco_jobs: Some(1),
            ..Budget::UNLIMITED
        };
        let p = plan_within(&v, &policy(), i64::MAX, |_| true, &mut b);
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.waiting, Waiting::from([(Limit::RecoJobs, 2)]));
        assert_eq!(b.reco_jobs, Some(0));
        assert_eq!(
            p.transitions().count(),
            0,
            "reco does not end while files wait"
        );
        // A new dataset waits for disk as a whole, and says how many files wait.
        let new = at(DatasetState::START, &[FileState::Registered; 2]);
        let mut small = Budget {
            disk_bytes: Some(1),
            ..Budget::UNLIMITED
        };
        let p = plan_within(&new, &policy(), i64::MAX, |_| true, &mut small);
        assert!(p.changes.is_empty());
        assert_eq!(p.waiting, Waiting::from([(Limit::DiskBytes, 2)]));
    }

    #[test]
    fn reco_ends_complete_partial_or_failed() {
        use FileState as F;
        let all = at(RECONSTRUCTING, &[F::Reconstructed, F::Reconstructed]);
        assert_eq!(
            vias(&reconstructing(&all, &policy(), &mut Budget::default())),
            [Transition::CompleteReco]
        );
        let some = at(RECONSTRUCTING, &[F::Reconstructed, F::RecoFailedForGood]);
        assert_eq!(
            vias(&reconstructing(&some, &policy(), &mut Budget::default())),
            [Transition::PartialReco]
        );
        let none = at(
            RECONSTRUCTING,
            &[F::RecoFailedForGood, F::StageFailedForGood],
        );
        assert_eq!(
            vias(&reconstructing(&none, &policy(), &mut Budget::default())),
            [Transition::FailReco]
        );
    }

    #[test]
    fn a_partial_dataset_waits_for_merge_unless_the_policy_merges_partial_ones() {
        let waiting = DatasetState::Merge(RecoOutcome::Partial, MergeProgress::NotDone);
        let v = at(
            waiting,
            &[FileState::Reconstructed, FileState::RecoFailedForGood],
        );
        assert!(start_merge(&v, &policy()).is_empty());
        let merge_partial = Policy {
            merge_partial: true,
            ..policy()
        };
        assert_eq!(
            vias(&start_merge(&v, &merge_partial)),
            [Transition::StartMerge]
        );
    }

    #[test]
    fn merging_forms_groups_as_full_as_the_policy_allows_and_submits_each() {
        let running = DatasetState::Merge(RecoOutcome::Completed, MergeProgress::Running);
        let v = at(running, &[FileState::Reconstructed; 5]);
        let p = merging(&v, &policy(), &mut Budget::default());
        let groups: Vec<usize> = p
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::NewGroup { files, .. } => Some(files.len()),
                _ => None,
            })
            .collect();
        assert_eq!(groups, [2, 2, 1]);
        let outputs: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::SubmitMerge { output, .. } => Some(output.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            outputs,
            ["unit.merged.0001", "unit.merged.0002", "unit.merged.0003"]
        );
        assert!(vias(&p).is_empty());
    }

    #[test]
    fn declaring_reserves_each_merged_file_then_declares_the_dataset() {
        let done = DatasetState::Merge(RecoOutcome::Completed, MergeProgress::Merged);
        let mut v = at(done, &[FileState::Merged]);
        let mut g = MergeGroup::new(GroupNo(1), vec![FileId(1)], 5);
        g.state = GroupState::Merged;
        g.output = Some(MergedFile::of(&v.name, g.no, 5));
        v.groups.insert(g.no, g);
        let p = declaring(&v, &policy());
        assert!(matches!(
            p.actions[..],
            [Action::Declare {
                group: GroupNo(1),
                attempt: 1,
                ..
            }]
        ));
        v.groups.get_mut(&GroupNo(1)).unwrap().state = GroupState::Declared;
        assert_eq!(vias(&declaring(&v, &policy())), [Transition::DeclareMerged]);
    }

    #[test]
    fn cleaning_deletes_intermediates_and_fails_when_attempts_run_out() {
        let cleanup = DatasetState::Cleanup(RecoOutcome::Completed, CleanupProgress::NotDone);
        let mut v = at(cleanup, &[FileState::Merged, FileState::Cleaned]);
        let p = cleaning(&v, &policy());
        assert!(matches!(
            p.actions[..],
            [Action::Delete {
                file: FileId(1),
                attempt: 1,
                ..
            }]
        ));
        v.files.get_mut(&FileId(1)).unwrap().attempts = 2;
        assert_eq!(vias(&cleaning(&v, &policy())), [Transition::FailCleanup]);
        v.files.get_mut(&FileId(1)).unwrap().state = FileState::Cleaned;
        assert_eq!(vias(&cleaning(&v, &policy())), [Transition::Clean]);
    }

    #[test]
    fn a_plan_runs_on_through_stages_that_end_at_once() {
        // Reco NOT DONE with every file already reconstructed (after a reset): the plan
        // starts reco and ends it in one go.
        let v = at(
            DatasetState::Reco(Progress::NotDone),
            &[FileState::Reconstructed],
        );
        let p = plan(&v, &policy());
        assert_eq!(
            vias(&p)[..3],
            [
                Transition::StartReco,
                Transition::CompleteReco,
                Transition::StartMerge
            ]
        );
    }
}
