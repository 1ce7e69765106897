//! A tick leaves a dataset alone, without loading its files or polling them, while nothing
//! has been written to it and its backend's cursor has not moved since a tick found nothing
//! to do; anything that changes either makes the next tick look again. Leaving datasets
//! alone changes nothing in what a campaign does.

use std::path::Path;

use repro_core::{Action, DatasetName, Outcome, Poll, Transition};
use repro_db::Store;
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::{Backend, BackendError, Driver, Op, Report};

mod support;
use support::NoCursor;

async fn store(dir: &Path, datasets: u32, files: u32) -> (Store, Vec<DatasetName>) {
    support::campaign(dir, "quiet", datasets, files).await
}

/// One tick of `names` at simulated time `now`, as a cron run would start it.
async fn tick(store: &Store, backend: &dyn Backend, names: &[DatasetName]) -> Vec<Report> {
    let run = Driver::new(store, backend)
        .with_workers(1)
        .run_many(Op::Tick, names, true)
        .await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    run.reports
}

fn settled(reports: &[Report]) -> Vec<bool> {
    reports.iter().map(|r| r.settled).collect()
}

async fn set_lock(store: &Store, name: &DatasetName, via: Transition) {
    let moved = store.load_dataset(name).await.unwrap().take(via).unwrap();
    store.save(moved, "operator").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_tick_leaves_datasets_alone_until_something_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, names) = store(dir.path(), 2, 20).await;
    let config = SimConfig {
        world: dir.path().join("world"),
        stage_failure: 0.0,
        reco_failure: 0.0,
        merge_failure: 0.0,
        lost_job: 0.0,
        duration_s: 100.0,
        ..SimConfig::default()
    };
    let at = |now: f64| SimBackend::new(config.clone(), now);

    // The first tick asks for staging; the next finds nothing new and nothing to do, and
    // says so; the one after leaves both alone.
    let first = tick(&store, &at(0.0), &names).await;
    assert!(first.iter().all(|r| r.actions == 20 && !r.settled));
    let second = tick(&store, &at(1.0), &names).await;
    assert_eq!(
        settled(&second),
        [false, false],
        "it acted since it last looked"
    );
    assert!(second.iter().all(|r| r.actions == 0 && r.outcomes == 0));
    let third = tick(&store, &at(2.0), &names).await;
    assert_eq!(settled(&third), [true, true]);

    // An operator's lock is a write: the locked dataset is looked at (and found locked),
    // the other is still left alone; unlocked, it is looked at once more, then left alone.
    set_lock(&store, &names[0], Transition::Lock).await;
    let locked = tick(&store, &at(3.0), &names).await;
    assert!(
        locked[0]
            .skipped
            .as_deref()
            .is_some_and(|s| s.contains("LOCKed by operator")),
        "{:?}",
        locked[0]
    );
    assert_eq!(settled(&locked), [false, true]);
    set_lock(&store, &names[0], Transition::Unlock).await;
    assert_eq!(
        settled(&tick(&store, &at(4.0), &names).await),
        [false, true]
    );
    assert_eq!(settled(&tick(&store, &at(5.0), &names).await), [true, true]);

    // Once the stage requests are ready out there, the cursor moves: both are looked at
    // and what was staged is recorded and acted on.
    let staged = tick(&store, &at(150.0), &names).await;
    assert_eq!(settled(&staged), [false, false]);
    assert!(
        staged.iter().all(
            |r| r.transitions == [Transition::FinishPrestage, Transition::StartReco]
                && r.actions == 20
        ),
        "{staged:?}"
    );

    // The jobs start: recording that is all the tick does, and only its own writes came
    // after its poll, so the very next tick leaves both alone until the jobs end at 250.
    let started = tick(&store, &at(151.0), &names).await;
    assert!(started.iter().all(|r| r.outcomes == 20 && r.actions == 0));
    assert_eq!(
        settled(&tick(&store, &at(152.0), &names).await),
        [true, true]
    );
    assert_eq!(
        settled(&tick(&store, &at(249.0), &names).await),
        [true, true]
    );

    // A change of policy is looked at again too.
    let other = repro_core::Policy {
        max_attempts: 7,
        ..repro_core::Policy::default()
    };
    let run = Driver::new(&store, &at(249.5))
        .with_policy(other)
        .run_many(Op::Tick, &names, true)
        .await;
    assert!(run.reports.iter().all(|r| !r.settled));
}

/// Plays a campaign with failures to rest, a tick every 37 simulated seconds; returns the
/// ticks it took, how many dataset-ticks were left alone, and every dataset's history
/// without its times.
async fn play(dir: &Path, cursor: bool) -> (usize, usize, Vec<Vec<String>>) {
    let (store, names) = store(dir, 3, 30).await;
    let config = SimConfig {
        world: dir.join("world"),
        seed: 5,
        stage_failure: 0.05,
        reco_failure: 0.1,
        merge_failure: 0.1,
        lost_job: 0.05,
        duration_s: 100.0,
        duration_spread: 0.5,
        ..SimConfig::default()
    };
    let mut left_alone = 0;
    for i in 0..500 {
        let sim = SimBackend::new(config.clone(), 37.0 * i as f64);
        let reports = if cursor {
            tick(&store, &sim, &names).await
        } else {
            tick(&store, &NoCursor(sim), &names).await
        };
        left_alone += reports.iter().filter(|r| r.settled).count();
        // What `repro plan` shows is the same whether read from a settled row or from
        // the whole dataset.
        let policy = repro_core::Policy::default();
        for n in &names {
            let ledger = repro_run::ledger::Ledger::new();
            let shown = repro_run::preview_dataset(&store, &ledger, n, &policy, i64::MAX)
                .await
                .unwrap();
            let view = store.load(n).await.unwrap();
            assert_eq!(
                store.polls_due(n).await.unwrap(),
                repro_core::plan::polls(&view).len() as u64,
                "tick {i}, {n}: polls counted by the database"
            );
            let full = repro_run::preview(&view, &policy);
            assert_eq!(
                serde_json::to_value(&shown).unwrap(),
                serde_json::to_value(&full).unwrap(),
                "tick {i}, {n}"
            );
        }
        let list = store.list(&repro_db::ListFilter::default()).await.unwrap();
        if list
            .iter()
            .all(|d| repro_core::plan::at_rest(d.status.state))
        {
            let mut histories = Vec::new();
            for n in &names {
                let h = store.history(n, None).await.unwrap();
                histories.push(
                    h.iter()
                        .map(|e| {
                            format!(
                                "{} {} {} -> {} via {} ({:?})",
                                e.entity, e.entity_id, e.from, e.to, e.via, e.reason
                            )
                        })
                        .collect(),
                );
            }
            return (i + 1, left_alone, histories);
        }
    }
    panic!("not at rest after 500 ticks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_settled_datasets_alone_changes_nothing_a_campaign_does() {
    let with = tempfile::tempdir().unwrap();
    let without = tempfile::tempdir().unwrap();
    let (ticks, left_alone, history) = play(with.path(), true).await;
    let (ticks_without, none, history_without) = play(without.path(), false).await;
    assert_eq!(none, 0);
    assert!(
        left_alone > ticks / 2,
        "only {left_alone} of {ticks} x 3 dataset-ticks were left alone"
    );
    assert_eq!(ticks, ticks_without);
    assert_eq!(history, history_without);
}

/// The sim, but the batch ids of its submissions are lost, as when a tick dies between
/// submitting and recording.
struct LosesBatchIds(SimBackend);

impl Backend for LosesBatchIds {
    fn perform(&self, d: &DatasetName, a: &[Action]) -> Result<Vec<Outcome>, BackendError> {
        let out = self.0.perform(d, a)?;
        Ok(out
            .into_iter()
            .filter(|o| !matches!(o, Outcome::Submitted { .. }))
            .collect())
    }

    fn poll(&self, d: &DatasetName, p: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        self.0.poll(d, p)
    }

    fn cursor(&self, d: &DatasetName) -> Result<Option<String>, BackendError> {
        self.0.cursor(d)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_learns_a_lost_batch_id_does_not_settle_on_the_old_answer() {
    // Jobs end as they are submitted. The first submissions' batch ids are lost: the next
    // poll learns them ("submitted"), and only a poll with the batch id learns the job
    // ended. Settling on the first answer would leave the dataset alone for good, with
    // nothing out there changing any more.
    let dir = tempfile::tempdir().unwrap();
    let (store, names) = store(dir.path(), 1, 5).await;
    let config = SimConfig {
        world: dir.path().join("world"),
        stage_failure: 0.0,
        reco_failure: 0.0,
        merge_failure: 0.0,
        lost_job: 0.0,
        duration_s: 0.0,
        ..SimConfig::default()
    };
    let sim = || SimBackend::new(config.clone(), 10.0);
    tick(&store, &sim(), &names).await; // stage
    let submitted = tick(&store, &LosesBatchIds(sim()), &names).await;
    assert!(submitted[0].transitions.contains(&Transition::StartReco));
    for _ in 0..20 {
        tick(&store, &sim(), &names).await;
    }
    let s = store.summary(&names[0]).await.unwrap();
    assert!(
        repro_core::plan::at_rest(s.status.state),
        "{}",
        s.status.columns()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waits_to_be_retried_is_left_alone_until_the_first_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let (store, names) = store(dir.path(), 1, 10).await;
    // The tape refuses everything; a failure waits an hour.
    let config = SimConfig {
        world: dir.path().join("world"),
        stage_failure: 1.0,
        reco_failure: 0.0,
        merge_failure: 0.0,
        lost_job: 0.0,
        ..SimConfig::default()
    };
    let mut policy = repro_core::Policy::default();
    policy.retry.all.first_delay_s = 3600;
    let at = |now: f64| SimBackend::new(config.clone(), now);
    let tick_at = async |now: f64| {
        let run = Driver::new(&store, &at(now))
            .with_policy(policy.clone())
            .with_workers(1)
            .run_many(Op::Tick, &names, true)
            .await;
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        run.reports.into_iter().next().unwrap()
    };
    // Staging asked for, then every request failed: each waits until hour 1.
    assert_eq!(tick_at(0.0).await.actions, 10);
    let failed = tick_at(60.0).await;
    assert_eq!(failed.actions, 0);
    // Nothing due: that tick settled it, and the ones after leave it alone, saying
    // when the first retry is due, from the row alone.
    assert!(tick_at(120.0).await.settled);
    assert!(tick_at(1800.0).await.settled);
    let ledger = repro_run::ledger::Ledger::new();
    let p = repro_run::preview_dataset(&store, &ledger, &names[0], &policy, 1800)
        .await
        .unwrap();
    assert_eq!(
        p.retrying.as_deref(),
        Some("waiting to be tried again, the first at 1970-01-01 01:01 UTC")
    );
    assert!(p.actions.is_empty());
    // Once due, the dataset is looked at again and every file is asked for once more.
    let due = tick_at(3600.0 + 60.0).await;
    assert!(!due.settled);
    assert_eq!(due.actions, 10);
}
