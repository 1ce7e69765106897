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

use crate::file::{FileEvent, FileId, FileState, TmbFile};
use crate::job::{JobKey, JobSubject};
use crate::policy::Policy;
use crate::state::{DatasetState, Phase, StageKind};
use crate::transition::Transition;
use crate::typed::AnyDataset;
use crate::view::{Change, DatasetView, GroupEvent, GroupNo, GroupState, MergedFile};
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

/// Everything due for `view` now under `policy`: nothing for a locked dataset, otherwise the
/// work of its current phase and, where that phase ends, the start of the next.
pub fn plan(view: &DatasetView, policy: &Policy) -> Plan {
    plan_for(view, policy, |_| true)
}

/// What is due while the dataset is at a stage `at` accepts: the work behind one of the
/// seed's operations (`prestage` works at the prestage stages, `dbup` at `MergeDone`, ...).
/// Planning stops where the dataset moves to a stage `at` refuses.
pub fn plan_for(view: &DatasetView, policy: &Policy, at: impl Fn(StageKind) -> bool) -> Plan {
    let mut out = Plan::default();
    if view.status.lock == LockWord::Lock {
        return out;
    }
    let mut work = view.clone();
    // Automatic edges only go forward, so this ends within one pass over the stages.
    for _ in 0..StageKind::ALL.len() {
        if !at(work.status.state.kind()) {
            break;
        }
        let (changes, actions) = phase_step(&work, policy);
        if changes.is_empty() {
            break;
        }
        let moved = changes.iter().any(|c| matches!(c, Change::Dataset(_)));
        if work.apply(&changes).is_err() {
            // Only an inconsistent snapshot gets here; what was planned so far stands.
            break;
        }
        out.changes.extend(changes);
        out.actions.extend(actions);
        if !moved {
            break;
        }
    }
    out
}

/// The dataset move `via`, made by the typed method it names on the recovered dataset.
fn dataset_move(v: &DatasetView, via: Transition) -> Option<Change> {
    let moved = AnyDataset::recover(v.name.clone(), v.status)
        .take(via)
        .ok()?;
    moved.into_changes().pop()
}

fn phase_step(v: &DatasetView, policy: &Policy) -> (Vec<Change>, Vec<Action>) {
    let mut changes = Vec::new();
    let mut actions = Vec::new();
    let cap = policy.max_attempts;
    let go = |via| dataset_move(v, via).into_iter().collect::<Vec<_>>();
    match v.status.state.kind() {
        StageKind::PrestageNotDone => return (go(Transition::StartPrestage), actions),
        StageKind::RecoNotDone => return (go(Transition::StartReco), actions),
        StageKind::MergeNotDone => {
            let partial = v.status.state.reco_outcome() == Some(crate::RecoOutcome::Partial);
            if partial && !policy.merge_partial {
                return (changes, actions);
            }
            return (go(Transition::StartMerge), actions);
        }
        StageKind::PrestageRunning => {
            let mut open = false;
            for f in v.files.values() {
                match f.state {
                    FileState::Registered | FileState::StageFailed if f.may_try(cap) => {
                        changes.extend(Change::file(f, FileEvent::RequestStage));
                        actions.push(Action::Stage {
                            file: f.id,
                            lfn: f.lfn.clone(),
                            attempt: f.attempts + 1,
                        });
                        open = true;
                    }
                    FileState::StageFailed => {
                        changes.extend(Change::file(f, FileEvent::GiveUp));
                        open = true;
                    }
                    FileState::Staging => open = true,
                    _ => {}
                }
            }
            if !open {
                let any_staged = v.files.values().any(|f| !f.state.failed_for_good());
                let via = if any_staged {
                    Transition::FinishPrestage
                } else {
                    Transition::FailPrestage
                };
                changes.extend(dataset_move(v, via));
            }
        }
        StageKind::RecoRunning => {
            let mut open = false;
            for f in v.files.values() {
                let subject = JobSubject::Reco(f.id);
                match f.state {
                    FileState::Staged | FileState::RecoFailed
                        if f.may_try(cap) && v.live_job(subject).is_none() =>
                    {
                        let key = JobKey {
                            subject,
                            attempt: f.attempts + 1,
                        };
                        changes.extend(Change::file(f, FileEvent::SubmitReco));
                        changes.push(Change::NewJob { key });
                        actions.push(Action::SubmitReco {
                            job: key,
                            name: key.name(&v.name),
                            lfn: f.lfn.clone(),
                        });
                        open = true;
                    }
                    FileState::RecoFailed if v.live_job(subject).is_none() => {
                        changes.extend(Change::file(f, FileEvent::GiveUp));
                        open = true;
                    }
                    FileState::Staged | FileState::RecoSubmitted | FileState::RecoFailed => {
                        open = true;
                    }
                    _ => {}
                }
            }
            if !open {
                let with_tmb = v.files.values().filter(|f| f.state.has_tmb()).count();
                let via = if with_tmb == v.files.len() {
                    Transition::CompleteReco
                } else if with_tmb > 0 {
                    Transition::PartialReco
                } else {
                    Transition::FailReco
                };
                changes.extend(dataset_move(v, via));
            }
        }
        StageKind::MergeRunning => {
            let mut open = false;
            for grp in v.groups.values() {
                match grp.state {
                    GroupState::Merging => {
                        open = true;
                        if v.live_job(JobSubject::Merge(grp.no)).is_some() {
                            continue;
                        }
                        if grp.may_try(cap) {
                            submit_merge(v, grp.no, grp.attempts, &mut actions);
                            changes.extend(Change::group(grp, GroupEvent::SubmitMerge));
                            changes.push(Change::NewJob {
                                key: JobKey {
                                    subject: JobSubject::Merge(grp.no),
                                    attempt: grp.attempts + 1,
                                },
                            });
                        } else {
                            changes.extend(Change::group(grp, GroupEvent::GiveUp));
                        }
                    }
                    GroupState::FailedForGood => {}
                    GroupState::Merged | GroupState::Declaring | GroupState::Declared => {}
                }
            }
            let next = v.groups.keys().next_back().map_or(1, |g| g.0 + 1);
            for (i, files) in new_groups(v, policy).into_iter().enumerate() {
                open = true;
                let no = GroupNo(next + i as u32);
                let bytes = files.iter().map(|f| tmb_size(v, *f)).sum();
                let inputs = tmb_files(v, &files);
                changes.push(Change::NewGroup { no, files, bytes });
                changes.push(Change::Group {
                    no,
                    from: GroupState::Merging,
                    attempts: 0,
                    event: GroupEvent::SubmitMerge,
                    to: GroupState::Merging,
                    error: None,
                    output: None,
                });
                let key = JobKey {
                    subject: JobSubject::Merge(no),
                    attempt: 1,
                };
                changes.push(Change::NewJob { key });
                actions.push(Action::SubmitMerge {
                    job: key,
                    name: key.name(&v.name),
                    inputs,
                    output: MergedFile::name_for(&v.name, no),
                });
            }
            if !open {
                let failed = v
                    .groups
                    .values()
                    .any(|g| g.state == GroupState::FailedForGood);
                let via = if failed {
                    Transition::FailMerge
                } else {
                    Transition::FinishMerge
                };
                changes.extend(dataset_move(v, via));
            }
        }
        StageKind::MergeDone => {
            let mut open = false;
            let mut exhausted = false;
            for grp in v.groups.values() {
                match grp.state {
                    GroupState::Merged if grp.may_try(cap) => {
                        if let Some(merged) = &grp.output {
                            changes.extend(Change::group(grp, GroupEvent::ReserveDeclare));
                            actions.push(Action::Declare {
                                group: grp.no,
                                merged: merged.clone(),
                                attempt: grp.attempts + 1,
                            });
                        }
                        open = true;
                    }
                    GroupState::Merged => exhausted = true,
                    GroupState::Declaring => open = true,
                    _ => {}
                }
            }
            if !open {
                let via = if exhausted {
                    Transition::FailMerge
                } else {
                    Transition::DeclareMerged
                };
                changes.extend(dataset_move(v, via));
            }
        }
        StageKind::CleanupNotDone => {
            let mut open = false;
            let mut exhausted = false;
            for f in v.files.values() {
                match f.state {
                    FileState::Merged if f.may_try(cap) => {
                        changes.extend(Change::file(f, FileEvent::ReserveDelete));
                        actions.push(Action::Delete {
                            file: f.id,
                            lfn: f.lfn.clone(),
                            tmb: f.tmb.clone(),
                            attempt: f.attempts + 1,
                        });
                        open = true;
                    }
                    FileState::Merged => exhausted = true,
                    FileState::Deleting => open = true,
                    _ => {}
                }
            }
            if !open {
                let via = if exhausted {
                    Transition::FailCleanup
                } else {
                    Transition::Clean
                };
                changes.extend(dataset_move(v, via));
            }
        }
        StageKind::PrestageFailed
        | StageKind::RecoFailed
        | StageKind::MergeFailed
        | StageKind::CleanupFailed
        | StageKind::Cleaned => {}
    }
    (changes, actions)
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

fn submit_merge(v: &DatasetView, no: GroupNo, attempts: u32, actions: &mut Vec<Action>) {
    let Some(grp) = v.groups.get(&no) else { return };
    let key = JobKey {
        subject: JobSubject::Merge(no),
        attempt: attempts + 1,
    };
    actions.push(Action::SubmitMerge {
        job: key,
        name: key.name(&v.name),
        inputs: tmb_files(v, &grp.files),
        output: MergedFile::name_for(&v.name, no),
    });
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
        out.push(Poll::Job {
            job: j.key,
            name: j.key.name(&view.name),
            batch_id: j.batch_id.clone(),
        });
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
    matches!(
        state.kind(),
        StageKind::Cleaned
            | StageKind::PrestageFailed
            | StageKind::RecoFailed
            | StageKind::MergeFailed
            | StageKind::CleanupFailed
    )
}
