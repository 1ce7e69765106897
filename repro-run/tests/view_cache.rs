//! A driver keeping views between runs ([`ViewCache`]) decides exactly what one that loads
//! every dataset each time decides: its kept view is, after every run, the dataset as the
//! database has it; a write by anyone else (an operator, another process) makes the next
//! run load the dataset afresh; and a whole campaign with failures and retries ends the
//! same with the cache as without it.

use std::path::Path;

use repro_core::{DatasetName, Transition};
use repro_db::Store;
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::{Driver, Op, ViewCache};

mod support;
use support::NoCursor;

async fn campaign(dir: &Path, datasets: u32, files: u32) -> (Store, Vec<DatasetName>) {
    support::campaign(dir, "kept", datasets, files).await
}

/// The sim with every kind of failure, so that retries, lost jobs and partial merges
/// happen; a job takes 10 simulated seconds.
fn world(dir: &Path, seed: u64) -> SimConfig {
    SimConfig {
        seed,
        world: dir.join("world"),
        stage_failure: 0.1,
        reco_failure: 0.15,
        merge_failure: 0.1,
        lost_job: 0.05,
        duration_s: 10.0,
        ..SimConfig::default()
    }
}

/// Ticks every 5 simulated seconds until every dataset is at rest; after each tick, each
/// view the cache keeps must equal a fresh load. Returns each dataset's final view and
/// the cache's hits and misses.
async fn play(
    dir: &Path,
    seed: u64,
    cache: Option<&ViewCache>,
) -> (Vec<repro_core::DatasetView>, (u64, u64)) {
    let (store, names) = campaign(dir, 3, 40).await;
    let config = world(dir, seed);
    for t in 0..400 {
        let backend = NoCursor(SimBackend::new(config.clone(), f64::from(t) * 5.0));
        let mut driver = Driver::new(&store, &backend).with_workers(2);
        if let Some(c) = cache {
            driver = driver.with_view_cache(c);
        }
        let run = driver.run_many(Op::Tick, &names, true).await;
        assert!(run.errors.is_empty(), "tick {t}: {:?}", run.errors);
        let mut resting = 0;
        for name in &names {
            let loaded = store.load(name).await.unwrap();
            resting += usize::from(repro_core::plan::at_rest(loaded.status.state));
            // What is kept is what is stored; only a dataset at rest is let go.
            if let Some(c) = cache {
                match c.view(name) {
                    Some(v) => assert_eq!(v, loaded, "tick {t}: {name}"),
                    None => assert!(
                        repro_core::plan::at_rest(loaded.status.state),
                        "tick {t}: {name} is not kept"
                    ),
                }
            }
        }
        if resting == names.len() {
            break;
        }
    }
    let mut out = Vec::new();
    for name in &names {
        out.push(store.load(name).await.unwrap());
    }
    store.close().await.unwrap();
    (
        out,
        cache.map(ViewCache::hits_and_misses).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_with_kept_views_ends_as_one_that_loads_every_time() {
    for seed in [1, 7] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cache = ViewCache::new(usize::MAX);
        let (kept, (hits, misses)) = play(a.path(), seed, Some(&cache)).await;
        let (loaded, _) = play(b.path(), seed, None).await;
        assert_eq!(kept, loaded, "seed {seed}");
        assert!(
            kept.iter().all(
                |v| v.status.columns().cleanup == repro_core::CleanupWord::Cleaned
                    || repro_core::plan::at_rest(v.status.state)
            ),
            "seed {seed}: not all at rest"
        );
        // Each dataset is loaded by its first run; after that, its views are the ones kept.
        assert!(hits > misses, "seed {seed}: {hits} hits, {misses} misses");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_view_is_the_dataset_after_every_run_and_anothers_write_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, names) = campaign(dir.path(), 2, 30).await;
    // Nothing finishes while the test looks: every run finds its dataset where it was.
    let config = SimConfig {
        duration_s: 1000.0,
        ..world(dir.path(), 3)
    };
    let cache = ViewCache::new(usize::MAX);
    let tick = async |t: u32| {
        let backend = NoCursor(SimBackend::new(config.clone(), f64::from(t)));
        let run = Driver::new(&store, &backend)
            .with_workers(2)
            .with_view_cache(&cache)
            .run_many(Op::Tick, &names, true)
            .await;
        assert!(run.errors.is_empty(), "tick {t}: {:?}", run.errors);
        run.reports
    };
    for t in 0..3 {
        tick(t).await;
    }
    assert_eq!(cache.hits_and_misses(), (4, 2), "loaded once, then kept");
    let (hits_before, misses_before) = cache.hits_and_misses();
    // An operator locks one dataset from another process (another store): its revision
    // moves, so the next run loads it, finds it locked and leaves it alone.
    let operator = Store::open(&repro_run::demo::sqlite_url(&dir.path().join("s.db")))
        .await
        .unwrap();
    let moved = operator
        .load_dataset(&names[0])
        .await
        .unwrap()
        .take(Transition::Lock)
        .unwrap();
    operator.save(moved, "operator").await.unwrap();
    let reports = tick(6).await;
    assert!(
        reports[0]
            .skipped
            .as_deref()
            .is_some_and(|s| s.contains("LOCKed by operator")),
        "{:?}",
        reports[0]
    );
    let (hits, misses) = cache.hits_and_misses();
    assert_eq!(
        misses,
        misses_before + 1,
        "the locked dataset's kept view is stale and is not used"
    );
    assert_eq!(hits, hits_before + 1, "the other's is used");
    // Unlocked, it is loaded again (the unlock is a write), then kept again.
    let moved = operator
        .load_dataset(&names[0])
        .await
        .unwrap()
        .take(Transition::Unlock)
        .unwrap();
    operator.save(moved, "operator").await.unwrap();
    tick(7).await;
    tick(8).await;
    let (hits_after, misses_after) = cache.hits_and_misses();
    assert_eq!(misses_after, misses + 1);
    assert_eq!(hits_after, hits + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cache_keeps_what_it_has_and_loads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, names) = campaign(dir.path(), 3, 30).await;
    let config = SimConfig {
        duration_s: 1000.0,
        ..world(dir.path(), 5)
    };
    // Room for two datasets of 30 files: the third, last in the run's order, is not kept.
    let cache = ViewCache::new(60);
    for t in 0..4 {
        let backend = NoCursor(SimBackend::new(config.clone(), f64::from(t)));
        let run = Driver::new(&store, &backend)
            .with_workers(1)
            .with_view_cache(&cache)
            .run_many(Op::Tick, &names, true)
            .await;
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        assert_eq!(cache.len_and_files(), (2, 60), "tick {t}");
    }
    // Four ticks of three datasets: the first two loaded once, the third every time.
    assert_eq!(cache.hits_and_misses(), (6, 6));
}
