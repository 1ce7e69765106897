//! The public storage API under arbitrary use: sequences of changes from fresh views, from
//! stale views, hand-picked illegal moves and changes meant for another dataset. Whatever
//! the sequence, no dataset is ever left in a state `load` refuses, a refused `apply`
//! leaves every row as it was, and the store accepts exactly what the core's in-memory
//! writer accepts, ending in the same state.
//!
//! `PROPTEST_CASES` sets the number of cases on SQLite (64 by default); MariaDB and
//! PostgreSQL run an eighth of them.

use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use repro_core::file::{FileEvent, FileState};
use repro_core::job::{JobEvent, JobKey, JobState, JobSubject};
use repro_core::plan::{Poll, plan, polls};
use repro_core::typed::AnyDataset;
use repro_core::view::{GroupEvent, GroupNo, GroupState};
use repro_core::{
    Change, DatasetName, DatasetState, DatasetView, Outcome, Policy, StageKind, Status, Transition,
    outcome::record,
};
use repro_db::{NewFile, Register, Store};

use crate::support::{Backend, TestDb};
use crate::test_lifecycle::{answer, succeed};

/// One use of the API.
#[derive(Debug, Clone)]
enum Step {
    /// Plan from a fresh load and apply it.
    Plan,
    /// Answer the due polls (each succeeds or fails by its bit) and apply the record.
    Poll(u64),
    /// Report what the last plan's actions did, succeeding.
    Act,
    /// Apply the changes of an earlier step again (a stale view, a replay).
    Replay(usize),
    /// A file move picked at random, legal by its table or not.
    File(usize, usize, usize),
    /// A group move picked at random.
    Group(u32, usize, usize),
    /// A job move picked at random.
    Job(usize, usize, usize),
    /// A job reserved for a file of this dataset or of the other one.
    NewJob(usize, bool),
    /// A typed dataset move taken from a status the dataset may not be in.
    Dataset(usize, usize),
    /// The other dataset's last plan, applied to this one.
    Crossed,
    /// An operator retry.
    Retry,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Plan),
        6 => any::<u64>().prop_map(Step::Poll),
        4 => Just(Step::Act),
        2 => (0usize..64).prop_map(Step::Replay),
        2 => (0usize..8, 0..FileState::ALL.len(), 0..FileEvent::ALL.len())
            .prop_map(|(f, s, e)| Step::File(f, s, e)),
        1 => (1u32..4, 0..GroupState::ALL.len(), 0..GroupEvent::ALL.len())
            .prop_map(|(g, s, e)| Step::Group(g, s, e)),
        1 => (0usize..8, 0..JobState::ALL.len(), 0..JobEvent::ALL.len())
            .prop_map(|(f, s, e)| Step::Job(f, s, e)),
        1 => (0usize..8, any::<bool>()).prop_map(|(f, foreign)| Step::NewJob(f, foreign)),
        2 => (0..StageKind::ALL.len(), 0..Transition::ALL.len())
            .prop_map(|(k, t)| Step::Dataset(k, t)),
        1 => Just(Step::Crossed),
        1 => Just(Step::Retry),
    ]
}

/// Everything stored about a dataset, to compare before and after a refused write.
async fn rows(store: &Store, name: &DatasetName) -> (DatasetView, usize) {
    let view = store
        .load(name)
        .await
        .unwrap_or_else(|e| panic!("{name} no longer loads: {e}"));
    let history = store.history(name, None).await.unwrap().len();
    (view, history)
}

fn nth<T: Copy>(all: &[T], i: usize) -> T {
    all[i % all.len()]
}

/// What the world answers to `poll`: success, or the failure that fits it.
fn answer_poll(view: &DatasetView, poll: &Poll, ok: bool) -> Option<Outcome> {
    if ok {
        return answer(view, poll);
    }
    Some(match poll {
        Poll::Stage { file, .. } => Outcome::StageFailed {
            file: *file,
            reason: "tape error".into(),
            class: repro_core::ErrorClass::Unknown,
        },
        Poll::Job { job, .. } => Outcome::JobFailed {
            job: *job,
            exit_code: Some(3),
            reason: "segfault".into(),
            class: repro_core::ErrorClass::Unknown,
        },
        Poll::Declaration { group, .. } => Outcome::DeclareFailed {
            group: *group,
            reason: "catalog down".into(),
            class: repro_core::ErrorClass::Unknown,
        },
        Poll::Deletion { file, .. } => Outcome::DeleteFailed {
            file: *file,
            reason: "permission denied".into(),
            class: repro_core::ErrorClass::Unknown,
        },
    })
}

struct Case {
    store: Store,
    names: [DatasetName; 2],
    policy: Policy,
    /// Every batch tried so far, for replays.
    tried: Vec<Vec<Change>>,
    last_plan: [Vec<repro_core::Action>; 2],
    last_changes: [Vec<Change>; 2],
    /// The file ids of the dataset that is not `side`.
    other_files: [Vec<repro_core::FileId>; 2],
    tally: std::sync::Arc<[AtomicU32; 3]>,
}

static CASE: AtomicU32 = AtomicU32::new(0);

impl Case {
    async fn new(store: Store, tally: std::sync::Arc<[AtomicU32; 3]>) -> Case {
        let n = CASE.fetch_add(1, Ordering::Relaxed);
        let mut names = Vec::new();
        for side in ["a", "b"] {
            let name = DatasetName::new(format!("prop.{n}.{side}")).unwrap();
            let files: Vec<NewFile> = (0..5)
                .map(|i| NewFile {
                    lfn: format!("{name}/raw_{i}"),
                    size: 100 + i,
                })
                .collect();
            let opts = Register {
                unlock: true,
                ..Register::default()
            };
            store.register(&name, &files, &opts, "prop").await.unwrap();
            names.push(name);
        }
        let mut files = Vec::new();
        for n in &names {
            let v = store.load(n).await.unwrap();
            files.push(v.files.keys().copied().collect::<Vec<_>>());
        }
        Case {
            other_files: [files[1].clone(), files[0].clone()],
            tally,
            store,
            names: [names[0].clone(), names[1].clone()],
            policy: Policy {
                max_attempts: 2,
                merge_group_files: 2,
                merge_partial: true,
                ..Policy::default()
            },
            tried: Vec::new(),
            last_plan: [Vec::new(), Vec::new()],
            last_changes: [Vec::new(), Vec::new()],
        }
    }

    /// The changes a step tries on dataset `side`.
    fn changes(&mut self, side: usize, view: &DatasetView, step: &Step) -> Vec<Change> {
        match step {
            Step::Plan => {
                let p = plan(view, &self.policy);
                self.last_plan[side] = p.actions.clone();
                p.changes
            }
            Step::Poll(bits) => {
                let mut work = view.clone();
                let mut all = Vec::new();
                for (i, poll) in polls(view).iter().enumerate() {
                    let ok = bits >> (i % 64) & 1 == 1;
                    if let Some(o) = answer_poll(&work, poll, ok)
                        && let Ok(c) = record(&work, &o)
                        && work.apply(&c).is_ok()
                    {
                        all.extend(c);
                    }
                }
                all
            }
            Step::Act => {
                let mut work = view.clone();
                let mut all = Vec::new();
                for a in std::mem::take(&mut self.last_plan[side]) {
                    if let Some(o) = succeed(&a)
                        && let Ok(c) = record(&work, &o)
                        && work.apply(&c).is_ok()
                    {
                        all.extend(c);
                    }
                }
                all
            }
            Step::Replay(i) if !self.tried.is_empty() => self.tried[i % self.tried.len()].clone(),
            Step::Replay(_) => Vec::new(),
            Step::File(f, s, e) => {
                let ids: Vec<_> = view.files.keys().copied().collect();
                vec![Change::File {
                    id: nth(&ids, *f),
                    from: nth(FileState::ALL, *s),
                    attempts: 0,
                    event: nth(FileEvent::ALL, *e),
                    to: nth(FileState::ALL, s + e),
                    error: None,
                    tmb: None,
                    retry: None,
                }]
            }
            Step::Group(g, s, e) => vec![Change::Group {
                no: GroupNo(*g),
                from: nth(GroupState::ALL, *s),
                attempts: 0,
                event: nth(GroupEvent::ALL, *e),
                to: nth(GroupState::ALL, s + 1),
                error: None,
                output: None,
                retry: None,
            }],
            Step::Job(f, s, e) => {
                let ids: Vec<_> = view.files.keys().copied().collect();
                let key = JobKey {
                    subject: JobSubject::Reco(nth(&ids, *f)),
                    attempt: 1,
                };
                let from = nth(JobState::ALL, *s);
                let event = nth(JobEvent::ALL, *e);
                vec![Change::Job {
                    key,
                    from,
                    event,
                    to: nth(JobState::ALL, s + e),
                    batch_id: None,
                    exit_code: None,
                    error: None,
                }]
            }
            Step::NewJob(f, foreign) => {
                let ids: Vec<_> = if *foreign {
                    self.other_files[side].clone()
                } else {
                    view.files.keys().copied().collect()
                };
                vec![Change::NewJob {
                    key: JobKey {
                        subject: JobSubject::Reco(nth(&ids, *f)),
                        attempt: 1 + (*f as u32 % 2),
                    },
                }]
            }
            Step::Dataset(k, t) => {
                let kind = nth(StageKind::ALL, *k);
                let outcome = view.status.state.reco_outcome();
                let state =
                    DatasetState::at(kind, outcome.or(Some(repro_core::RecoOutcome::Completed)))
                        .or_else(|| DatasetState::at(kind, None))
                        .unwrap_or(view.status.state);
                let status = Status {
                    lock: view.status.lock,
                    state,
                };
                AnyDataset::recover(view.name.clone(), status)
                    .take(nth(Transition::ALL, *t))
                    .map(AnyDataset::into_changes)
                    .unwrap_or_default()
            }
            Step::Crossed => self.last_changes[1 - side].clone(),
            Step::Retry => {
                repro_core::operator::retry(view, None, Some("prop"), None).unwrap_or_default()
            }
        }
    }

    async fn run(&mut self, steps: &[(bool, Step)]) -> Result<(), TestCaseError> {
        for (i, (second, step)) in steps.iter().enumerate() {
            let side = usize::from(*second);
            let name = self.names[side].clone();
            let (before, history) = rows(&self.store, &name).await;
            let other = rows(&self.store, &self.names[1 - side]).await;
            let changes = self.changes(side, &before, step);
            if changes.is_empty() {
                continue;
            }
            let mut model = before.clone();
            let in_memory = model.apply(&changes);
            let stored = self.store.apply(&name, &changes, "prop").await;
            let (after, history_after) = rows(&self.store, &name).await;
            prop_assert_eq!(
                stored.is_ok(),
                in_memory.is_ok(),
                "step {} {:?}: store said {:?}, memory said {:?}",
                i,
                step,
                stored,
                in_memory
            );
            match stored {
                Ok(()) => {
                    prop_assert_eq!(
                        &after,
                        &model,
                        "step {} {:?}: store and memory differ",
                        i,
                        step
                    );
                    self.last_changes[side] = changes.clone();
                    self.tally[0].fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    prop_assert!(
                        e.is_conflict() || matches!(e, repro_db::DbError::Illegal(_)),
                        "step {} {:?}: refused for another reason: {}",
                        i,
                        step,
                        e
                    );
                    prop_assert_eq!(
                        &after,
                        &before,
                        "step {} {:?}: a refused apply wrote ({})",
                        i,
                        step,
                        e
                    );
                    prop_assert_eq!(
                        history_after,
                        history,
                        "step {} {:?}: history grew",
                        i,
                        step
                    );
                    let k = if e.is_conflict() { 1 } else { 2 };
                    self.tally[k].fetch_add(1, Ordering::Relaxed);
                }
            }
            // The other dataset is never touched by this one's changes.
            prop_assert_eq!(&rows(&self.store, &self.names[1 - side]).await, &other);
            self.tried.push(changes);
        }
        Ok(())
    }
}

fn cases(backend: Backend) -> u32 {
    let base = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64u32);
    match backend {
        Backend::Sqlite => base,
        _ => (base / 8).max(2),
    }
}

fn run_on(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::new(backend));
    let store = rt.block_on(db.store());
    let mut runner = TestRunner::new(Config {
        cases: cases(backend),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec((any::<bool>(), step()), 1..40);
    let tally = std::sync::Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
    let result = runner.run(&strategy, |steps| {
        rt.block_on(async {
            let mut case = Case::new(store.clone(), tally.clone()).await;
            case.run(&steps).await
        })
    });
    rt.block_on(db.drop_db());
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
    let [ok, conflict, illegal] = tally.each_ref().map(|a| a.load(Ordering::Relaxed));
    eprintln!("{backend:?}: {ok} batches written, {conflict} conflicts, {illegal} illegal");
    // A run that never writes or never refuses proves nothing.
    assert!(
        ok > 0 && conflict > 0 && illegal > 0,
        "{ok} / {conflict} / {illegal}"
    );
}

#[test]
fn no_sequence_of_changes_corrupts_a_dataset_or_writes_part_of_a_refused_batch_sqlite() {
    run_on(Backend::Sqlite);
}

#[test]
#[cfg_attr(
    not(repro_mysql),
    ignore = "needs a MariaDB server: set REPRO_TEST_MYSQL_URL"
)]
fn no_sequence_of_changes_corrupts_a_dataset_or_writes_part_of_a_refused_batch_mysql() {
    run_on(Backend::Mysql);
}

#[test]
#[cfg_attr(
    not(repro_postgres),
    ignore = "needs a PostgreSQL server: set REPRO_TEST_POSTGRES_URL"
)]
fn no_sequence_of_changes_corrupts_a_dataset_or_writes_part_of_a_refused_batch_postgres() {
    run_on(Backend::Postgres);
}
