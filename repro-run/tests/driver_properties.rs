//! The loop users run, under arbitrary use: the real [`Driver`] (leases, conflict re-reads,
//! batching) over a real SQLite store and the sim backend with failures and lost jobs,
//! driven by random sequences of the predecessor scripts' operations, ticks from two "hosts", and
//! operator actions. After every step, every dataset still loads, no external action was
//! performed twice, and every file's history is a legal path through the file table; at the
//! end, with the failures switched off and an operator retrying what failed, every dataset
//! reaches `CLEANED`.
//!
//! It runs on the store in memory (`sqlite::memory:`, `PROPTEST_CASES` cases, 24 by
//! default), on a SQLite file (a quarter of them), and on MariaDB and PostgreSQL (an eighth)
//! when `REPRO_TEST_MYSQL_URL` / `REPRO_TEST_POSTGRES_URL` are set.

use std::collections::HashSet;
use std::path::Path;

use proptest::prelude::*;
use repro_core::file::{FileEvent, FileState, file_step};
use repro_core::{CleanupWord, DatasetName, FileId, LockWord, Phase, Policy, operator};
use repro_db::{NewFile, Register, Store};
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::{Driver, Op};

#[derive(Debug, Clone)]
enum Step {
    /// One of the predecessor scripts' operations on every dataset, by the first or the second host.
    Run(Op, bool),
    Lock(usize),
    Unlock(usize),
    Retry(usize),
    Reset(usize, Phase),
    Recover(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Tick),
        2 => Just(Op::Check),
        1 => Just(Op::Prestage),
        1 => Just(Op::Reconstruct),
        1 => any::<bool>().prop_map(|partial| Op::Merge { partial }),
        1 => Just(Op::Dbup),
        1 => Just(Op::Cleanup),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (op(), any::<bool>()).prop_map(|(o, h)| Step::Run(o, h)),
        1 => (0usize..2).prop_map(Step::Lock),
        2 => (0usize..2).prop_map(Step::Unlock),
        2 => (0usize..2).prop_map(Step::Retry),
        1 => (0usize..2, prop_oneof![Just(Phase::Prestage), Just(Phase::Reco)])
            .prop_map(|(d, p)| Step::Reset(d, p)),
        1 => (0usize..2).prop_map(Step::Recover),
    ]
}

fn sim(dir: &Path, seed: u64, failure: f64) -> SimBackend {
    let config = SimConfig {
        seed,
        journal: Some(dir.join("journal.jsonl")),
        world: dir.join("world"),
        stage_failure: failure / 2.0,
        reco_failure: failure,
        merge_failure: failure,
        declare_failure: failure / 2.0,
        delete_failure: failure / 2.0,
        lost_job: failure / 4.0,
        duration_s: 0.0,
        ..SimConfig::default()
    };
    SimBackend::new(config, 0.0)
}

/// Every external action the journal holds, each once; returns how many there were.
fn nothing_done_twice(dir: &Path) -> Result<usize, TestCaseError> {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap_or_default();
    let mut seen = HashSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("journal lines are JSON");
        let key = (
            v["action"].to_string(),
            v["dataset"].to_string(),
            v["file"].to_string(),
            v["attempt"].to_string(),
        );
        prop_assert!(seen.insert(key), "done twice: {line}");
    }
    Ok(seen.len())
}

/// Each dataset loads, and each file's history is a path through the file table.
async fn invariants(store: &Store, names: &[DatasetName]) -> Result<(), TestCaseError> {
    for name in names {
        let view = store.load(name).await;
        prop_assert!(view.is_ok(), "{name} does not load: {:?}", view.err());
        let history = store.history(name, Some("file")).await.unwrap();
        for h in history {
            let (from, event, to) = (
                h.from.parse::<FileState>(),
                h.via.parse::<FileEvent>(),
                h.to.parse::<FileState>(),
            );
            let (Ok(from), Ok(event), Ok(to)) = (from, event, to) else {
                return Err(TestCaseError::fail(format!(
                    "unreadable file history {h:?}"
                )));
            };
            let stepped = file_step(FileId(h.entity_id as u64), from, event);
            prop_assert_eq!(stepped, Ok(to), "illegal file move in the history: {:?}", h);
        }
    }
    Ok(())
}

/// Where a case keeps its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Memory,
    File,
    Server(&'static str),
}

/// A URL with its database replaced: `mysql://root@host/test` -> `mysql://root@host/NAME`.
fn with_db(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let base = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    format!("{}/{name}", &url[..base])
}

static CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh, migrated store for one case, and the server database to drop after it.
async fn fresh(db: Db, dir: &Path) -> (Store, Option<(String, String)>) {
    let (store, drop) = match db {
        Db::Memory => (Store::open(repro_db::MEMORY).await.unwrap(), None),
        Db::File => {
            let url = repro_run::demo::sqlite_url(&dir.join("p.db"));
            (Store::open(&url).await.unwrap(), None)
        }
        Db::Server(var) => {
            let admin = std::env::var(var).unwrap();
            let name = format!(
                "repro_drv_{}_{}",
                std::process::id(),
                CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let a = Store::open(&admin).await.unwrap();
            a.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await
                .unwrap();
            a.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let store = Store::open(&with_db(&admin, &name)).await.unwrap();
            (store, Some((admin, name)))
        }
    };
    store.migrate().await.unwrap();
    (store, drop)
}

async fn case(
    db: Db,
    files: usize,
    failure: f64,
    seed: u64,
    policy: Policy,
    steps: Vec<Step>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let (store, server) = fresh(db, dir.path()).await;
    let result = run_case(&store, dir.path(), files, failure, seed, policy, steps).await;
    if let Some((admin, name)) = server {
        let force = if admin.starts_with("postgres") {
            " WITH (FORCE)"
        } else {
            ""
        };
        drop(store);
        if let Ok(a) = Store::open(&admin).await {
            a.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                .await
                .ok();
        }
    }
    result
}

async fn run_case(
    store: &Store,
    dir: &Path,
    files: usize,
    failure: f64,
    seed: u64,
    policy: Policy,
    steps: Vec<Step>,
) -> Result<(), TestCaseError> {
    let mut names = Vec::new();
    for d in 0..2 {
        let name = DatasetName::new(format!("prop.{d}")).unwrap();
        let list: Vec<NewFile> = (0..files)
            .map(|i| NewFile::new(format!("{name}/raw_{i}"), 100))
            .collect();
        store
            .register(&name, &list, &Register::unlocked(), "prop")
            .await
            .unwrap();
        names.push(name);
    }
    let backend = sim(dir, seed, failure);
    for s in &steps {
        match s {
            Step::Run(op, second_host) => {
                let mut driver = Driver::new(store, &backend)
                    .with_policy(policy.clone())
                    .with_actor("prop");
                if *second_host {
                    driver.owner = "other-host:1:1".into();
                }
                let run = driver.run_many(*op, &names, true).await;
                for (n, e) in &run.errors {
                    // Only refusals of a named stage may come back here; never a broken row.
                    prop_assert!(
                        matches!(e.kind(), repro_run::ErrorKind::Refused),
                        "{op:?} on {n}: {e}"
                    );
                }
            }
            Step::Lock(d) | Step::Unlock(d) => {
                let view = store.load(&names[*d]).await.unwrap();
                let changes = if matches!(s, Step::Lock(_)) {
                    operator::lock(&view, Some("prop"))
                } else {
                    operator::unlock(&view, Some("prop"))
                };
                if let Ok(c) = changes {
                    store.apply(&names[*d], &c, "prop").await.unwrap();
                }
            }
            Step::Retry(d) | Step::Reset(d, _) | Step::Recover(d) => {
                let view = store.load(&names[*d]).await.unwrap();
                let changes = match s {
                    Step::Retry(_) => operator::retry(&view, None, Some("prop"), None),
                    Step::Reset(_, p) => operator::reset(&view, *p, "prop"),
                    _ => operator::recover(&view, "prop"),
                };
                if let Ok(c) = changes {
                    store.apply(&names[*d], &c, "prop").await.unwrap();
                }
            }
        }
        invariants(store, &names).await?;
        nothing_done_twice(dir)?;
    }
    // The failures stop; an operator unlocks, retries what failed and merges what is
    // partial. Everything comes to CLEANED.
    let backend = sim(dir, seed, 0.0);
    for _ in 0..60 {
        let mut all_clean = true;
        for name in &names {
            let view = store.load(name).await.unwrap();
            if view.status.lock == LockWord::Lock
                && let Ok(c) = operator::unlock(&view, Some("prop"))
            {
                store.apply(name, &c, "prop").await.unwrap();
            }
            let view = store.load(name).await.unwrap();
            if view.status.state.kind().is_failed()
                && let Ok(c) = operator::retry(&view, None, Some("prop"), None)
            {
                store.apply(name, &c, "prop").await.unwrap();
            }
            all_clean &= view.status.columns().cleanup == CleanupWord::Cleaned;
        }
        if all_clean {
            break;
        }
        for op in [Op::Tick, Op::Merge { partial: true }] {
            // A refusal (a dataset not at merge's stage) is expected here; a failure of
            // the store or the backend is not.
            let run = Driver::new(store, &backend)
                .with_policy(policy.clone())
                .run_many(op, &names, true)
                .await;
            for (name, e) in &run.errors {
                prop_assert!(
                    e.kind() == repro_run::ErrorKind::Refused,
                    "{} on {}: {}",
                    op.name(),
                    name,
                    e
                );
            }
        }
    }
    invariants(store, &names).await?;
    nothing_done_twice(dir)?;
    for name in &names {
        let s = store.summary(name).await.unwrap();
        prop_assert_eq!(
            s.status.columns().cleanup,
            CleanupWord::Cleaned,
            "{} did not come to CLEANED: {}",
            name,
            s.status.columns()
        );
    }
    Ok(())
}

fn cases(db: Db) -> u32 {
    let base = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24u32);
    match db {
        Db::Memory => base,
        Db::File => (base / 4).max(2),
        Db::Server(_) => (base / 8).max(2),
    }
}

fn run_on(db: Db) {
    use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
    if let Db::Server(var) = db {
        // Ignored without it (see the build script); run anyway, it fails.
        assert!(
            std::env::var_os(var).is_some(),
            "{var} is not set: no server to test on"
        );
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(db),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/driver_properties.txt",
        ))),
        ..Config::default()
    });
    let strategy = (
        1usize..8,
        prop_oneof![Just(0.0), Just(0.25)],
        any::<u64>(),
        (1u32..4, 1u32..4, any::<bool>()),
        proptest::collection::vec(step(), 1..25),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runner.run(
        &strategy,
        |(files, failure, seed, (max_attempts, merge_group_files, merge_partial), steps)| {
            let policy = Policy {
                max_attempts,
                merge_group_files,
                merge_group_bytes: None,
                merge_partial,
                ..Policy::default()
            };
            rt.block_on(case(db, files, failure, seed, policy, steps))
        },
    );
    if let Err(e) = result {
        panic!("{db:?}: {e}");
    }
}

#[test]
fn the_real_driver_keeps_every_invariant_and_brings_everything_to_cleaned_in_memory() {
    run_on(Db::Memory);
}

#[test]
fn the_real_driver_keeps_every_invariant_and_brings_everything_to_cleaned_on_a_sqlite_file() {
    run_on(Db::File);
}

#[test]
#[cfg_attr(
    not(repro_mysql),
    ignore = "needs a MariaDB server: set REPRO_TEST_MYSQL_URL"
)]
fn the_real_driver_keeps_every_invariant_and_brings_everything_to_cleaned_on_mariadb() {
    run_on(Db::Server("REPRO_TEST_MYSQL_URL"));
}

#[test]
#[cfg_attr(
    not(repro_postgres),
    ignore = "needs a PostgreSQL server: set REPRO_TEST_POSTGRES_URL"
)]
fn the_real_driver_keeps_every_invariant_and_brings_everything_to_cleaned_on_postgres() {
    run_on(Db::Server("REPRO_TEST_POSTGRES_URL"));
}
