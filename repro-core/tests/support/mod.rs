//! The reference model for the property tests: the outside world as it really is (storage
//! system, batch system, catalog, disk), kept apart from what the core believes. A driver
//! loop in the style of `repro tick` moves the core; the world checks every action it is
//! asked to do, and the invariants compare the core's bookkeeping against the world.

#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use repro_core::file::FileId;
use repro_core::job::{JobKey, JobSubject};
use repro_core::outcome::record;
use repro_core::plan::{Poll, plan, polls};
use repro_core::{
    Action, Change, DatasetName, DatasetView, FileState, GroupState, MergedFile, Outcome, Policy,
    RawFile, StageKind, TmbFile,
};

/// A tiny deterministic generator, so a failing case replays exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// True with probability `p` percent.
    /// A failure's class: mostly unknown, sometimes transient, now and then permanent.
    pub fn class(&mut self) -> repro_core::ErrorClass {
        match self.next_u64() % 10 {
            0 => repro_core::ErrorClass::Permanent,
            1..=3 => repro_core::ErrorClass::Transient,
            _ => repro_core::ErrorClass::Unknown,
        }
    }

    pub fn chance(&mut self, p: u8) -> bool {
        (self.next_u64() % 100) < u64::from(p)
    }
}

/// How the batch system treats one job it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Done,
    Failed,
    Lost,
}

#[derive(Debug, Clone)]
struct BatchJob {
    key: JobKey,
    fate: Fate,
    finished: bool,
}

/// The outside world.
#[derive(Debug, Default)]
pub struct World {
    /// Staged raw copies on disk.
    pub staged: BTreeSet<FileId>,
    /// Stage requests accepted and not yet answered.
    pub stage_requests: BTreeSet<FileId>,
    /// Jobs the batch system accepted, by name.
    jobs: BTreeMap<String, BatchJob>,
    next_batch_id: u64,
    /// TMB files on disk, by the raw file they came from.
    pub tmb: BTreeMap<FileId, TmbFile>,
    /// Merged files on disk, by name, with the raw files they cover.
    pub merged: BTreeMap<String, Vec<FileId>>,
    /// Merged files the catalog has.
    pub catalog: BTreeSet<String>,
    /// Raw files whose intermediate copies were deleted.
    pub deleted: BTreeSet<FileId>,
    /// Every external action performed: (action, subject, attempt). Must never repeat.
    pub journal: Vec<(&'static str, String, u32)>,
    /// Every violation seen while acting, reported by the invariants.
    pub violations: Vec<String>,
    /// Failure probability of each step, in percent (0: a world where nothing fails).
    pub failure: u8,
}

impl World {
    pub fn new(failure: u8) -> Self {
        World {
            failure,
            ..World::default()
        }
    }

    fn log(&mut self, action: &'static str, subject: String, attempt: u32) {
        let entry = (action, subject, attempt);
        if self.journal.contains(&entry) {
            self.violations
                .push(format!("action done twice: {entry:?}"));
        }
        self.journal.push(entry);
    }

    fn live_jobs_for(&self, subject: JobSubject) -> usize {
        self.jobs
            .values()
            .filter(|j| j.key.subject == subject && !j.finished)
            .count()
    }

    /// Performs one action as a backend would, returning what it reports at once.
    pub fn perform(
        &mut self,
        view: &DatasetView,
        action: &Action,
        rng: &mut Rng,
    ) -> Option<Outcome> {
        match action {
            Action::Stage { file, attempt, .. } => {
                self.log("stage", file.to_string(), *attempt);
                if rng.chance(self.failure) {
                    return Some(Outcome::StageFailed {
                        file: *file,
                        reason: "tape error".into(),
                        class: rng.class(),
                    });
                }
                self.stage_requests.insert(*file);
                None
            }
            Action::SubmitReco { job, name, .. } | Action::SubmitMerge { job, name, .. } => {
                let what = if matches!(action, Action::SubmitReco { .. }) {
                    "reco_submit"
                } else {
                    "merge_submit"
                };
                self.log(what, format!("{:?}", job.subject), job.attempt);
                if self.live_jobs_for(job.subject) > 0 {
                    self.violations.push(format!(
                        "{name} submitted while {:?} has a live job",
                        job.subject
                    ));
                }
                if let Action::SubmitReco { job, .. } = action
                    && let JobSubject::Reco(f) = job.subject
                    && !self.staged.contains(&f)
                {
                    self.violations
                        .push(format!("reco of {f} submitted before it was staged"));
                }
                if let Action::SubmitMerge { inputs, .. } = action {
                    for t in inputs {
                        if !self.tmb.values().any(|x| x == t) {
                            self.violations
                                .push(format!("merge over missing TMB file {}", t.path));
                        }
                    }
                }
                if rng.chance(self.failure / 2) {
                    return Some(Outcome::JobFailed {
                        job: *job,
                        exit_code: None,
                        reason: "sbatch: error: queue full".into(),
                        class: rng.class(),
                    });
                }
                let fate = if rng.chance(self.failure) {
                    if rng.chance(30) {
                        Fate::Lost
                    } else {
                        Fate::Failed
                    }
                } else {
                    Fate::Done
                };
                self.next_batch_id += 1;
                self.jobs.insert(
                    name.clone(),
                    BatchJob {
                        key: *job,
                        fate,
                        finished: false,
                    },
                );
                let _ = view;
                Some(Outcome::Submitted {
                    job: *job,
                    batch_id: self.next_batch_id.to_string(),
                })
            }
            Action::Declare {
                group,
                merged,
                attempt,
            } => {
                self.log("declare", group.to_string(), *attempt);
                if !self.merged.contains_key(&merged.name) {
                    self.violations
                        .push(format!("declared {} which does not exist", merged.name));
                }
                if rng.chance(self.failure) {
                    return Some(Outcome::DeclareFailed {
                        group: *group,
                        reason: "catalog timeout".into(),
                        class: rng.class(),
                    });
                }
                self.catalog.insert(merged.name.clone());
                Some(Outcome::Declared { group: *group })
            }
            Action::Delete {
                file, tmb, attempt, ..
            } => {
                self.log("delete", file.to_string(), *attempt);
                // Cleanup may only delete intermediates of a file covered by a declared merged file.
                let covered = self
                    .merged
                    .iter()
                    .any(|(name, files)| files.contains(file) && self.catalog.contains(name));
                if !covered {
                    self.violations.push(format!(
                        "deleted {file} not covered by a declared merged file"
                    ));
                }
                if let Some(t) = tmb
                    && self.merged.contains_key(&t.path)
                {
                    self.violations
                        .push(format!("deleted merged output {}", t.path));
                }
                if rng.chance(self.failure) {
                    return Some(Outcome::DeleteFailed {
                        file: *file,
                        reason: "permission denied".into(),
                        class: rng.class(),
                    });
                }
                self.deleted.insert(*file);
                self.staged.remove(file);
                self.tmb.remove(file);
                Some(Outcome::Deleted { file: *file })
            }
        }
    }

    /// Answers one poll as a backend would.
    pub fn answer(&mut self, view: &DatasetView, poll: &Poll, rng: &mut Rng) -> Option<Outcome> {
        match poll {
            Poll::Stage { file, .. } => {
                if !self.stage_requests.remove(file) {
                    return Some(Outcome::StageFailed {
                        file: *file,
                        reason: "no stage request known".into(),
                        class: rng.class(),
                    });
                }
                if rng.chance(self.failure) {
                    Some(Outcome::StageFailed {
                        file: *file,
                        reason: "file unavailable".into(),
                        class: rng.class(),
                    })
                } else if rng.chance(20) {
                    self.stage_requests.insert(*file); // still pending
                    None
                } else {
                    self.staged.insert(*file);
                    Some(Outcome::Staged { file: *file })
                }
            }
            Poll::Job {
                job,
                name,
                batch_id,
                ..
            } => {
                let Some(bj) = self.jobs.get_mut(name) else {
                    return Some(if batch_id.is_none() {
                        Outcome::JobFailed {
                            job: *job,
                            exit_code: None,
                            reason: "reserved but never submitted".into(),
                            class: rng.class(),
                        }
                    } else {
                        Outcome::JobLost { job: *job }
                    });
                };
                if bj.finished {
                    return None;
                }
                if batch_id.is_none() {
                    // Submitted, but the submission was never recorded: adopt it.
                    return Some(Outcome::Submitted {
                        job: *job,
                        batch_id: format!("adopted-{name}"),
                    });
                }
                if rng.chance(20) {
                    return None; // still running
                }
                bj.finished = true;
                let key = bj.key;
                match bj.fate {
                    Fate::Failed => Some(Outcome::JobFailed {
                        job: key,
                        exit_code: Some(1),
                        reason: "segfault".into(),
                        class: rng.class(),
                    }),
                    Fate::Lost => {
                        self.jobs.remove(name);
                        Some(Outcome::JobLost { job: key })
                    }
                    Fate::Done => match key.subject {
                        JobSubject::Reco(f) => {
                            let tmb = TmbFile {
                                path: format!("{}.tmb.{}.a{}", view.name, f, key.attempt),
                                size: 100 + f.0,
                            };
                            self.tmb.insert(f, tmb.clone());
                            Some(Outcome::RecoDone { job: key, tmb })
                        }
                        JobSubject::Merge(g) => {
                            let files = view
                                .groups
                                .get(&g)
                                .map(|g| g.files.clone())
                                .unwrap_or_default();
                            let name = MergedFile::name_for(&view.name, g);
                            if self.merged.contains_key(&name) {
                                self.violations
                                    .push(format!("merged file {name} written twice"));
                            }
                            self.merged.insert(name.clone(), files);
                            Some(Outcome::MergeDone {
                                job: key,
                                output: MergedFile { name, size: 1000 },
                            })
                        }
                    },
                }
            }
            Poll::Declaration { group, merged } => Some(if self.catalog.contains(&merged.name) {
                Outcome::Declared { group: *group }
            } else {
                Outcome::DeclareFailed {
                    group: *group,
                    reason: "not in the catalog after an interrupted declaration".into(),
                    class: rng.class(),
                }
            }),
            Poll::Deletion { file, .. } => Some(if self.deleted.contains(file) {
                Outcome::Deleted { file: *file }
            } else {
                Outcome::DeleteFailed {
                    file: *file,
                    reason: "still present after an interrupted deletion".into(),
                    class: rng.class(),
                }
            }),
        }
    }
}

/// A dataset of `n` files, newly registered and unlocked.
pub fn dataset(n: u64) -> DatasetView {
    let name = DatasetName::new("prop.ds").unwrap();
    let mut v = DatasetView::new(
        name,
        (1..=n).map(|i| RawFile::new(FileId(i), format!("raw_{i:04}.dat"), 1000 + i)),
    );
    let ch = repro_core::operator::unlock(&v, None).unwrap();
    v.apply(&ch).unwrap();
    v
}

/// Records an outcome; stale outcomes are skipped as a driver would.
pub fn report(view: &mut DatasetView, outcome: &Outcome) {
    if let Ok(changes) = record(view, outcome) {
        view.apply(&changes)
            .expect("a recorded outcome applies to the view it was computed from");
    }
}

/// One planning round as a driver does it: write the plan, then perform its actions.
/// With `crash`, the process dies after writing and before acting.
pub fn tick(
    view: &mut DatasetView,
    world: &mut World,
    policy: &Policy,
    rng: &mut Rng,
    crash: bool,
) -> usize {
    let p = plan(view, policy);
    view.apply(&p.changes)
        .expect("a plan applies to the view it was computed from");
    if crash {
        return p.changes.len();
    }
    let outcomes: Vec<Outcome> = p
        .actions
        .iter()
        .filter_map(|a| world.perform(view, a, rng))
        .collect();
    record_all(view, &outcomes);
    p.changes.len()
}

/// One check as a driver does it: poll everything, record the answers.
pub fn check(view: &mut DatasetView, world: &mut World, rng: &mut Rng) {
    let outcomes: Vec<Outcome> = polls(view)
        .iter()
        .filter_map(|p| world.answer(view, p, rng))
        .collect();
    record_all(view, &outcomes);
}

/// Records a run's outcomes as a driver does: each is decided on the view the ones before
/// it left, and their changes are written as one batch in [`Change::batch_order`]. The
/// batch in that order must apply to the view and leave it as the outcomes did one by one.
pub fn record_all(view: &mut DatasetView, outcomes: &[Outcome]) {
    let mut work = view.clone();
    let mut all = Vec::new();
    for o in outcomes {
        if let Ok(changes) = record(&work, o) {
            work.apply(&changes)
                .expect("a recorded outcome applies to the view it was computed from");
            all.extend(changes);
        }
    }
    let mut batched = all.clone();
    Change::batch_order(&mut batched);
    let mut at_once = view.clone();
    at_once
        .apply(&batched)
        .expect("the run's changes in batch order apply to the view they were computed from");
    assert_eq!(at_once, work, "batch order changed what the outcomes wrote");
    *view = work;
}

/// Whether two plans reserve any of the same actions.
pub fn repeated_reservations(first: &[Change], second: &[Change]) -> Vec<String> {
    let key = |c: &Change| match c {
        Change::File {
            id,
            event,
            attempts,
            ..
        } => Some(format!("{id} {event} {}", attempts + 1)),
        Change::NewJob { key } => Some(format!("job {key}")),
        Change::NewGroup { no, .. } => Some(format!("group {no}")),
        Change::Group {
            no,
            event,
            attempts,
            ..
        } => Some(format!("{no} {event} {}", attempts + 1)),
        _ => None,
    };
    let a: BTreeSet<String> = first.iter().filter_map(key).collect();
    second
        .iter()
        .filter_map(key)
        .filter(|k| a.contains(k))
        .collect()
}

/// The invariants that hold after every step; returns the broken ones.
pub fn broken_invariants(view: &DatasetView, world: &World, registered: u64) -> Vec<String> {
    use repro_core::state::Phase;
    let mut bad = world.violations.clone();
    // The stored form is always a legal row.
    let cols = view.status.columns();
    if repro_core::Status::from_columns(cols) != Ok(view.status) {
        bad.push(format!("status does not survive storage: {cols}"));
    }
    // Every raw file is in exactly one state and none disappears.
    let ids: Vec<u64> = view.files.keys().map(|f| f.0).collect();
    if ids != (1..=registered).collect::<Vec<_>>() {
        bad.push(format!("files changed: {ids:?}"));
    }
    // No phase is entered before its predecessor is done. Work of an earlier phase is
    // found later only where an operator's retry re-armed it, and only in a stage that
    // still does that work (reco, and merging), so no phase closes with it left.
    let phase = view.status.state.phase();
    let kind = view.status.state.kind();
    let stages_late = matches!(
        kind,
        StageKind::RecoNotDone | StageKind::RecoRunning | StageKind::MergeRunning
    );
    for f in view.files.values() {
        let unfinished_stage = matches!(
            f.state,
            FileState::Registered | FileState::Staging | FileState::StageFailed
        );
        let unfinished_reco = matches!(
            f.state,
            FileState::Staged | FileState::RecoSubmitted | FileState::RecoFailed
        );
        if phase > Phase::Prestage && unfinished_stage && !stages_late {
            bad.push(format!("{} is {} in phase {phase}", f.id, f.state));
        }
        if phase > Phase::Reco && unfinished_reco && kind != StageKind::MergeRunning {
            bad.push(format!("{} is {} in phase {phase}", f.id, f.state));
        }
        if phase == Phase::Cleanup && f.state == FileState::Reconstructed {
            bad.push(format!("{} not merged in phase {phase}", f.id));
        }
        // What the core believes exists, exists.
        if matches!(f.state, FileState::Staged | FileState::RecoSubmitted)
            && !world.staged.contains(&f.id)
        {
            bad.push(format!("{} is {} but not on disk", f.id, f.state));
        }
        if matches!(f.state, FileState::Reconstructed | FileState::Merged)
            && !world.tmb.contains_key(&f.id)
        {
            bad.push(format!("{} is {} but has no TMB file", f.id, f.state));
        }
        if f.state == FileState::Cleaned && !world.deleted.contains(&f.id) {
            bad.push(format!("{} is cleaned but was never deleted", f.id));
        }
        if world.deleted.contains(&f.id)
            && !matches!(f.state, FileState::Deleting | FileState::Cleaned)
        {
            bad.push(format!("{} was deleted but is {}", f.id, f.state));
        }
    }
    if phase == Phase::Cleanup
        && view
            .groups
            .values()
            .any(|g| g.state != GroupState::Declared)
    {
        bad.push("cleanup phase with undeclared merge groups".into());
    }
    // Merge groups cover each file at most once; merged files cover it exactly once.
    let mut cover: BTreeMap<FileId, usize> = BTreeMap::new();
    for g in view.groups.values() {
        for f in &g.files {
            *cover.entry(*f).or_default() += 1;
        }
    }
    for (f, n) in &cover {
        if *n != 1 {
            bad.push(format!("{f} is in {n} merge groups"));
        }
    }
    let mut merged_cover: BTreeMap<FileId, usize> = BTreeMap::new();
    for files in world.merged.values() {
        for f in files {
            *merged_cover.entry(*f).or_default() += 1;
        }
    }
    for f in view.files.values() {
        let n = merged_cover.get(&f.id).copied().unwrap_or(0);
        let merged = matches!(
            f.state,
            FileState::Merged | FileState::Deleting | FileState::Cleaned
        );
        if merged && n != 1 || n > 1 {
            bad.push(format!(
                "{} ({}) is covered by {n} merged files",
                f.id, f.state
            ));
        }
    }
    for g in view.groups.values() {
        if g.state == GroupState::Declared
            && !world
                .catalog
                .contains(&MergedFile::name_for(&view.name, g.no))
        {
            bad.push(format!("{} declared but not in the catalog", g.no));
        }
    }
    // A file never has two live jobs.
    let mut live: BTreeMap<JobSubject, usize> = BTreeMap::new();
    for j in view.jobs.values().filter(|j| j.state.is_live()) {
        *live.entry(j.key.subject).or_default() += 1;
    }
    for (s, n) in live {
        if n > 1 {
            bad.push(format!("{s:?} has {n} live jobs"));
        }
    }
    bad
}
