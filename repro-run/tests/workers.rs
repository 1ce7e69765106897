//! One run works on several datasets at once, never more than its workers, each under its
//! own lease, and the campaign ends as it does one dataset at a time: every dataset
//! `CLEANED`, every external action done once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use repro_core::{Action, CleanupWord, DatasetName, Outcome, Poll};
use repro_db::{ListFilter, NewFile, Register, Store};
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::{Backend, BackendError, Driver, Op};

/// The sim, watched: at every call, how many datasets this process holds a lease on.
struct Watched {
    sim: SimBackend,
    store: Store,
    owner: String,
    most: AtomicUsize,
    /// The test's runtime: backend calls come from threads of the driver's own.
    rt: tokio::runtime::Handle,
}

impl Watched {
    fn look(&self) {
        let list = self
            .rt
            .block_on(self.store.list(&ListFilter::default()))
            .unwrap();
        let now = repro_db::now();
        let held = list
            .iter()
            .filter(|d| {
                d.lease
                    .as_ref()
                    .is_some_and(|(who, until)| *who == self.owner && *until > now)
            })
            .count();
        self.most.fetch_max(held, Ordering::SeqCst);
    }
}

impl Backend for Watched {
    fn perform(&self, d: &DatasetName, a: &[Action]) -> Result<Vec<Outcome>, BackendError> {
        self.look();
        self.sim.perform(d, a)
    }

    fn poll(&self, d: &DatasetName, p: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        self.look();
        self.sim.poll(d, p)
    }
}

/// Ticks 8 datasets to rest with `workers`; returns the most leases held at once.
async fn campaign(dir: &Path, workers: usize) -> usize {
    let store = Store::open(&repro_run::demo::sqlite_url(&dir.join("w.db")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut names = Vec::new();
    for d in 0..8 {
        let name = DatasetName::new(format!("workers.ds{d}")).unwrap();
        let files: Vec<NewFile> = (0..40)
            .map(|f| NewFile::new(format!("/raw/{name}/f{f:03}"), 10))
            .collect();
        store
            .register(&name, &files, &Register::unlocked(), "test")
            .await
            .unwrap();
        names.push(name);
    }
    let journal = dir.join("journal.jsonl");
    let sim = SimBackend::new(
        SimConfig {
            world: dir.join("world"),
            journal: Some(journal.clone()),
            reco_failure: 0.1,
            merge_failure: 0.1,
            lost_job: 0.05,
            ..SimConfig::default()
        },
        0.0,
    );
    let watched = Watched {
        sim,
        store: store.clone(),
        owner: repro_run::driver::default_owner(),
        most: AtomicUsize::new(0),
        rt: tokio::runtime::Handle::current(),
    };
    for _ in 0..30 {
        let run = Driver::new(&store, &watched)
            .with_workers(workers)
            .run_many(Op::Tick, &names, false)
            .await;
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        // Reports come in the order of the names, whatever order the work finished in.
        let reported: Vec<&str> = run.reports.iter().map(|r| r.name.as_str()).collect();
        let expected: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        assert_eq!(reported, expected);
    }
    for d in store.list(&ListFilter::default()).await.unwrap() {
        assert_eq!(
            d.status.columns().cleanup,
            CleanupWord::Cleaned,
            "{}",
            d.name
        );
        assert!(d.lease.is_none(), "{} is still held: {:?}", d.name, d.lease);
    }
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut seen = HashSet::new();
    for line in text.lines() {
        assert!(seen.insert(line.to_owned()), "done twice: {line}");
    }
    watched.most.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_works_on_up_to_its_workers_datasets_at_once_and_loses_nothing() {
    let one = tempfile::tempdir().unwrap();
    assert_eq!(
        campaign(one.path(), 1).await,
        1,
        "one worker holds one dataset at a time"
    );
    let four = tempfile::tempdir().unwrap();
    let most = campaign(four.path(), 4).await;
    assert!(
        (2..=4).contains(&most),
        "four workers held {most} datasets at once"
    );
}

/// A tool on a current-thread runtime gets its datasets one after the other, not a panic.
#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_the_datasets_go_one_after_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&repro_run::demo::sqlite_url(&dir.path().join("c.db")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let names: Vec<DatasetName> = (0..3)
        .map(|d| DatasetName::new(format!("current.ds{d}")).unwrap())
        .collect();
    for name in &names {
        let files: Vec<NewFile> = (0..10)
            .map(|f| NewFile::new(format!("/raw/{name}/f{f}"), 10))
            .collect();
        store
            .register(name, &files, &Register::unlocked(), "test")
            .await
            .unwrap();
    }
    let sim = SimBackend::new(
        SimConfig {
            world: dir.path().join("world"),
            reco_failure: 0.0,
            merge_failure: 0.0,
            lost_job: 0.0,
            ..SimConfig::default()
        },
        0.0,
    );
    for _ in 0..10 {
        let run = Driver::new(&store, &sim)
            .with_workers(4)
            .run_many(Op::Tick, &names, false)
            .await;
        assert!(run.errors.is_empty(), "{:?}", run.errors);
    }
    for d in store.list(&ListFilter::default()).await.unwrap() {
        assert_eq!(
            d.status.columns().cleanup,
            CleanupWord::Cleaned,
            "{}",
            d.name
        );
    }
}
