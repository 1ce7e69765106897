//! `simulate`: a campaign played forward with the real decisions, on a copy, within the
//! limits, highest priority first, and the same for the same seed.

use repro_core::{DatasetName, Limits, plan::at_rest};
use repro_db::{ListFilter, NewFile, Register, Store};
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::simulate::{Campaign, DatasetSpec, Prediction, Scenario, simulate};
use repro_run::{Config, Driver, Op};

const LIMITS: Limits = Limits {
    stage_requests: Some(20),
    disk_bytes: None,
    reco_jobs: Some(12),
    merge_jobs: Some(2),
    submissions: None,
};

/// Two samples at one site: `hi` (priority 5) and `lo`, with limits and a world of 8 batch
/// slots, hour-long reco jobs and a stage rate of 100 files an hour.
fn scenario(dir: &std::path::Path, slots: u64) -> Scenario {
    let mut config = Config::default();
    config.limits.site.insert("fnal".into(), LIMITS);
    let sim = &mut config.backend.sim;
    sim.slots = Some(slots);
    sim.stage_rate = Some(100.0);
    sim.reco_duration_s = Some(3600.0);
    sim.merge_duration_s = Some(1800.0);
    sim.duration_spread = 0.3;
    let spec = |name: &str, count, priority| DatasetSpec {
        name: name.into(),
        count: Some(count),
        files: 24,
        size: 1000,
        site: Some("fnal".into()),
        sample: Some(name.into()),
        priority,
    };
    Scenario {
        config,
        seed: Some(7),
        interval_s: 1800,
        horizon_s: 60 * 86_400,
        ..Scenario::new(
            Campaign::Described(vec![spec("lo", 3, 0), spec("hi", 2, 5)]),
            dir,
        )
    }
}

async fn predict(s: &Scenario) -> Prediction {
    simulate(s, |_, _, _| {}).await.unwrap()
}

/// The prediction as JSON, without the real time it took.
fn stable(p: &Prediction) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap();
    v.as_object_mut().unwrap().remove("wall_s");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_with_limits_comes_to_rest_within_them_highest_priority_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = predict(&scenario(dir.path(), 8)).await;
    let end = p.end_h.expect("the campaign comes to rest");
    assert_eq!(p.datasets.len(), 5);
    assert!(
        p.datasets
            .iter()
            .all(|d| d.at_rest_h.is_some_and(|h| h <= end))
    );
    let sample = |name: &str| {
        p.samples
            .iter()
            .find(|s| s.sample.as_deref() == Some(name))
            .and_then(|s| s.at_rest_h)
            .unwrap()
    };
    assert!(sample("hi") < sample("lo"), "{:?}", p.samples);
    let fnal = p
        .peaks
        .iter()
        .find(|s| s.site.as_deref() == Some("fnal"))
        .unwrap();
    assert_eq!(fnal.limits, LIMITS);
    assert!(
        fnal.peak.stage_requests <= 20 && fnal.peak.reco_jobs <= 12 && fnal.peak.merge_jobs <= 2
    );
    assert_eq!(
        fnal.peak.reco_jobs, 12,
        "the reco limit is what holds the campaign back"
    );
    assert!(
        p.waits.get("reco jobs in flight").is_some_and(|n| *n > 0),
        "{:?}",
        p.waits
    );
    // Every raw file is somewhere in every row; the last row has them all at rest.
    assert!(p.chart.iter().all(|r| r.files() == 120));
    let last = p.chart.last().unwrap();
    assert_eq!(last.cleaned + last.failed, 120);
    assert!(p.chart.windows(2).all(|w| w[0].cleaned <= w[1].cleaned));
    assert!(p.chart.iter().all(|r| r.reco_jobs <= 12));
    assert!(p.bottleneck.is_some());
    let svg = p.chart_svg();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    assert_eq!(svg.matches("<polygon").count(), 8, "a band per phase");
    assert_eq!(svg.matches("<polyline").count(), 3, "2 job kinds, disk");

    // The same seed and scenario: the same prediction, in a directory of its own.
    let again = tempfile::tempdir().unwrap();
    assert_eq!(
        stable(&predict(&scenario(again.path(), 8)).await),
        stable(&p)
    );
    // The datasets plan in turns, in their order, while the workers poll and record
    // ahead: the budgets go the same way with one worker or four.
    for workers in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = scenario(dir.path(), 8);
        s.config.run.workers = workers;
        assert_eq!(stable(&predict(&s).await), stable(&p), "{workers} workers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_batch_slots_take_longer_and_a_short_horizon_stops_short() {
    let dir = tempfile::tempdir().unwrap();
    let wide = predict(&scenario(dir.path(), 12)).await.end_h.unwrap();
    let narrow = predict(&scenario(dir.path(), 2)).await.end_h.unwrap();
    // Two slots for 120 hour-long jobs: at least 60 hours of reco alone.
    assert!(
        narrow >= 60.0 && narrow > wide * 2.0,
        "{narrow} h against {wide} h"
    );
    let mut short = scenario(dir.path(), 12);
    short.horizon_s = 4 * 3600;
    let p = predict(&short).await;
    assert_eq!(p.end_h, None);
    assert!(p.datasets.iter().any(|d| d.at_rest_h.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_is_played_forward_on_a_copy_from_where_it_stands() {
    let dir = tempfile::tempdir().unwrap();
    let url = repro_run::demo::sqlite_url(&dir.path().join("live.db"));
    let live = Store::open(&url).await.unwrap();
    live.migrate().await.unwrap();
    let a = DatasetName::new("live.a").unwrap();
    let files: Vec<NewFile> = (0..30)
        .map(|f| NewFile::new(format!("/raw/{f}"), 10))
        .collect();
    live.register(&a, &files, &Register::unlocked(), "t")
        .await
        .unwrap();
    let locked = DatasetName::new("live.locked").unwrap();
    live.register(&locked, &files, &Register::default(), "t")
        .await
        .unwrap();
    // Two real ticks against a world of its own: staged, then every reco job submitted
    // there (they run for a day).
    let world = SimConfig {
        world: dir.path().join("live-world"),
        reco_failure: 0.0,
        merge_failure: 0.0,
        lost_job: 0.0,
        reco_duration_s: Some(86_400.0),
        ..SimConfig::default()
    };
    for t in [0.0, 60.0] {
        let backend = SimBackend::new(world.clone(), t);
        let run = Driver::new(&live, &backend)
            .with_workers(1)
            .run_many(Op::Tick, std::slice::from_ref(&a), false)
            .await;
        assert!(run.errors.is_empty(), "{:?}", run.errors);
    }
    let before = live.load(&a).await.unwrap();
    assert_eq!(before.jobs.len(), 30, "every reco job in flight");
    let listed = live.list(&ListFilter::default()).await.unwrap();

    let sim_dir = dir.path().join("sim");
    let mut config = Config::default();
    config.backend.sim.reco_failure = 0.0;
    config.backend.sim.merge_failure = 0.0;
    config.backend.sim.lost_job = 0.0;
    config.backend.sim.reco_duration_s = Some(7200.0);
    let s = Scenario {
        config,
        seed: Some(1),
        horizon_s: 30 * 86_400,
        ..Scenario::new(Campaign::Database(url.clone()), &sim_dir)
    };
    let p = predict(&s).await;
    // The jobs in flight were taken as started at hour 0 and end at hour 2: none is
    // lost or submitted again, so the dataset is at rest a few ticks later.
    let end = p.end_h.unwrap();
    assert!((3.0..=6.0).contains(&end), "at rest at {end} h");
    let copy = Store::open(&repro_run::demo::sqlite_url(&sim_dir.join("simulate.db")))
        .await
        .unwrap();
    let after = copy.load(&a).await.unwrap();
    assert!(at_rest(after.status.state));
    assert!(
        after.jobs.keys().all(|k| k.attempt == 1),
        "nothing retried: {:?}",
        after.jobs.keys()
    );
    // The locked dataset stays where it is, and out of the end time.
    let l = p.datasets.iter().find(|d| d.name == "live.locked").unwrap();
    assert_eq!((l.at_rest_h, l.state.starts_with("LOCK ")), (None, true));
    // Played again from the same place: the same prediction.
    let again = predict(&Scenario {
        dir: dir.path().join("sim-again"),
        ..s.clone()
    })
    .await;
    assert_eq!(stable(&again), stable(&p));
    // The live database was only read.
    assert_eq!(live.load(&a).await.unwrap(), before);
    assert_eq!(live.list(&ListFilter::default()).await.unwrap(), listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibration_reads_run_times_failures_and_what_each_site_managed_from_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = repro_run::demo::sqlite_url(&dir.path().join("past.db"));
    let store = Store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let files: Vec<NewFile> = (0..4)
        .map(|f| NewFile::new(format!("/raw/{f}"), 10))
        .collect();
    let at_fnal = Register {
        site: Some("fnal".into()),
        ..Register::default()
    };
    store
        .register(&DatasetName::new("past").unwrap(), &files, &at_fnal, "t")
        .await
        .unwrap();
    let id = store.list(&ListFilter::default()).await.unwrap()[0].id;
    // A past campaign, as its history recorded it (seconds after 10:00).
    let mut rows = Vec::new();
    let mut row = |entity: &str, eid: i64, to: &str, s: i64| {
        rows.push(format!(
            "({id}, '{entity}', {eid}, '-', '{to}', 'x', 'cron', '2026-11-01 {:02}:{:02}:{:02}')",
            10 + s / 3600,
            s % 3600 / 60,
            s % 60
        ));
    };
    // Four files staged 10 minutes after the request, one failed once first.
    for f in 1..=4 {
        row("file", f, "staging", 0);
        row("file", f, "staged", 600);
    }
    row("file", 5, "staging", 0);
    row("file", 5, "stage_failed", 300);
    // Reco: three run 1 h, 2 h and 4 h (median 2 h), two of them at once; one fails,
    // one is lost. Merge: one 30-minute job.
    for (job, start, end, how) in [
        (1, 700, 700 + 3600, "done"),
        (2, 700, 700 + 7200, "done"),
        (3, 8000, 8000 + 14_400, "done"),
        (4, 8000, 8100, "failed"),
        (5, 23_000, 23_500, "lost"),
    ] {
        row("reco_job", job, "submitted", start - 60);
        row("reco_job", job, "running", start);
        row("reco_job", job, how, end);
    }
    row("merge_job", 1, "submitted", 23_000);
    row("merge_job", 1, "running", 23_000);
    row("merge_job", 1, "done", 24_800);
    store
        .execute_unprepared(&format!(
            "INSERT INTO transitions (dataset_id, entity, entity_id, from_state, to_state, via, actor, at) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();

    let c = repro_run::simulate::calibrate(&url).await.unwrap();
    assert_eq!((c.reco.done, c.reco.failed, c.reco.lost), (3, 1, 1));
    assert_eq!(c.reco.median_s, Some(7200.0));
    let spread = c.reco.spread.unwrap();
    assert!(
        (0.6..0.8).contains(&spread),
        "sd of ln(1 h, 2 h, 4 h) is ln 2: {spread}"
    );
    assert_eq!((c.merge.done, c.merge.median_s), (1, Some(1800.0)));
    assert_eq!(
        (c.stage.staged, c.stage.failed, c.stage.median_s),
        (4, 1, Some(600.0))
    );
    let fnal = &c.sites["fnal"];
    // Jobs 3 and 4 overlap, and 1 and 2; the merge job after job 3 ends.
    assert_eq!((fnal.peak_running, fnal.peak_staged_per_hour), (2, 4));

    let mut sim = SimConfig::default();
    c.apply(&mut sim);
    assert_eq!(
        (
            sim.reco_duration_s,
            sim.merge_duration_s,
            sim.stage_duration_s
        ),
        (Some(7200.0), Some(1800.0), Some(600.0))
    );
    assert!(
        (sim.reco_failure - 0.2).abs() < 1e-9,
        "{}",
        sim.reco_failure
    );
    assert!((sim.lost_job - 1.0 / 6.0).abs() < 1e-9, "{}", sim.lost_job);
    assert!((sim.stage_failure - 0.2).abs() < 1e-9);
    assert_eq!(sim.capacity(Some("fnal")).slots, Some(2));
    assert_eq!(sim.capacity(Some("fnal")).stage_rate, Some(4.0));
}

/// The same campaign split over two sites, each within the old limits, under a total of
/// 8 reco jobs over both: the total holds and is what the campaign fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_over_two_sites_holds_and_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(dir.path(), 30);
    s.config.limits.site.insert("cern".into(), LIMITS);
    s.config.limits.total = Limits {
        reco_jobs: Some(8),
        ..Limits::default()
    };
    let Campaign::Described(specs) = &mut s.campaign else {
        unreachable!()
    };
    specs[0].site = Some("cern".into());
    let p = predict(&s).await;
    assert!(p.end_h.is_some(), "the campaign comes to rest");
    let total = p.total.expect("a total is reported when one is set");
    assert_eq!(total.limits.reco_jobs, Some(8));
    assert_eq!(
        total.peak.reco_jobs, 8,
        "the total is what holds the campaign back"
    );
    let per_site: u64 = p.peaks.iter().map(|s| s.peak.reco_jobs).max().unwrap();
    assert!(per_site <= 8, "{:?}", p.peaks);
    assert!(p.waits.contains_key("reco jobs in flight"), "{:?}", p.waits);
}

/// A forecast can be repeated: played twice with one seed, the same campaign (two sites, a
/// total, a disk budget that lets one dataset in at a time at one site, failures and
/// retries on two workers) gives the same prediction, tick for tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seed_predicts_the_same_campaign_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(&dir.path().join("first"), 10);
    s.config.limits.site.insert(
        "cern".into(),
        Limits {
            disk_bytes: Some(30_000),
            ..LIMITS
        },
    );
    s.config.limits.total = Limits {
        reco_jobs: Some(16),
        ..Limits::default()
    };
    s.config.backend.sim.reco_failure = 0.2;
    s.config.backend.sim.stage_failure = 0.1;
    let Campaign::Described(specs) = &mut s.campaign else {
        unreachable!()
    };
    specs[0].site = Some("cern".into());
    let first = predict(&s).await;
    let second = predict(&Scenario {
        dir: dir.path().join("second"),
        ..s.clone()
    })
    .await;
    assert!(first.end_h.is_some(), "the campaign comes to rest");
    assert!(first.waits.contains_key("disk budget"), "{:?}", first.waits);
    assert_eq!(stable(&first), stable(&second));
}

/// A big sample registered first and a small one after it, at one priority: the small one
/// is not starved behind the big one's older datasets, and weighting the big one makes the
/// small one wait longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_sample_does_not_starve_a_small_one_and_weights_shift_the_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scenario(dir.path(), 12);
    let Campaign::Described(specs) = &mut s.campaign else {
        unreachable!()
    };
    let mut big = specs[0].clone();
    big.name = "big".into();
    big.sample = Some("big".into());
    big.count = Some(4);
    let mut small = big.clone();
    small.name = "small".into();
    small.sample = Some("small".into());
    small.count = Some(1);
    *specs = vec![big, small];
    let at_rest = |p: &Prediction, sample: &str| {
        p.samples
            .iter()
            .find(|s| s.sample.as_deref() == Some(sample))
            .and_then(|s| s.at_rest_h)
            .unwrap()
    };
    let even = predict(&s).await;
    assert!(
        at_rest(&even, "small") < at_rest(&even, "big"),
        "{:?}",
        even.samples
    );
    let first_big = even
        .datasets
        .iter()
        .filter(|d| d.sample.as_deref() == Some("big"))
        .filter_map(|d| d.at_rest_h)
        .fold(f64::INFINITY, f64::min);
    assert!(
        at_rest(&even, "small") <= first_big,
        "the small sample holds half the budget, so its one dataset ends before any of the big one's four: {:?}",
        even.datasets
    );
    s.config.weights.insert("big".into(), 4);
    let weighted = predict(&s).await;
    assert!(
        at_rest(&weighted, "small") > at_rest(&even, "small"),
        "small at rest after {} h weighted 4:1, {} h even",
        at_rest(&weighted, "small"),
        at_rest(&even, "small")
    );
}

/// A tape that refuses 40% of stage requests, played with three ways of retrying.
fn flaky_tape(dir: &std::path::Path, retry: repro_run::config::RetryConfig) -> Scenario {
    let mut config = Config::default();
    let sim = &mut config.backend.sim;
    (
        sim.stage_failure,
        sim.reco_failure,
        sim.merge_failure,
        sim.lost_job,
    ) = (0.4, 0.0, 0.0, 0.0);
    config.policy.max_attempts = 2;
    config.policy.retry = retry;
    ticked_every_10_minutes(dir, config, ("tape", 3, 100), 3)
}

/// `count` alike datasets of `files` files at no site, ticked every ten minutes.
fn ticked_every_10_minutes(
    dir: &std::path::Path,
    config: Config,
    (name, count, files): (&str, u32, u32),
    seed: u64,
) -> Scenario {
    let spec = DatasetSpec {
        name: name.into(),
        count: Some(count),
        files,
        size: 1000,
        site: None,
        sample: None,
        priority: 0,
    };
    Scenario {
        config,
        seed: Some(seed),
        interval_s: 600,
        horizon_s: 30 * 86_400,
        ..Scenario::new(Campaign::Described(vec![spec]), dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_window_keeps_trying_what_attempts_alone_would_lose_and_waits_between_tries() {
    use repro_run::config::RetryConfig;
    let dir = tempfile::tempdir().unwrap();
    let lost = |p: &Prediction| p.chart.last().unwrap().failed;
    // Two attempts, back to back: a tenth of the files is lost within the hour.
    let plain = predict(&flaky_tape(dir.path(), RetryConfig::default())).await;
    assert!(lost(&plain) > 20, "{}", lost(&plain));
    assert!(plain.end_h.unwrap() <= 1.0, "{:?}", plain.end_h);
    // Half an hour, then an hour, two, ... for twelve hours: a file is tried until the
    // window closes, and the campaign takes as long as its waits.
    let patient = RetryConfig {
        first_delay_s: Some(1800),
        window_s: Some(12 * 3600),
        ..RetryConfig::default()
    };
    let p = predict(&flaky_tape(dir.path(), patient.clone())).await;
    assert!(
        lost(&p) * 5 < lost(&plain),
        "{} of {}",
        lost(&p),
        lost(&plain)
    );
    let end = p.end_h.unwrap();
    assert!((6.0..=16.0).contains(&end), "{end}");
    // Without the window, the delays alone only spread the same two attempts out.
    let spread = RetryConfig {
        window_s: Some(0),
        ..patient
    };
    let s = predict(&flaky_tape(dir.path(), spread)).await;
    assert_eq!(lost(&s), lost(&plain), "the same attempts fail");
    assert!(s.end_h.unwrap() > plain.end_h.unwrap());
}

/// Twenty datasets of twenty files at a site whose tape system refuses every request for
/// the first half hour, whose batch system loses a tenth of the jobs ending in its second
/// hour, and whose catalog is down (HTTP 503) from the third hour to the fifth; a tick
/// every ten minutes, as cron would.
fn outages(dir: &std::path::Path, retry: repro_run::config::RetryConfig) -> Scenario {
    use repro_run::config::{Outage, Service};
    let mut config = Config::default();
    let sim = &mut config.backend.sim;
    sim.seed = 5;
    sim.stage_duration_s = Some(1800.0);
    sim.reco_duration_s = Some(3600.0);
    sim.merge_duration_s = Some(1800.0);
    sim.duration_spread = 0.3;
    let outage = |service, from_h, hours, lose| Outage {
        service,
        from_h,
        hours,
        lose,
    };
    sim.outages = vec![
        outage(Service::Tape, 0.0, 0.5, 1.0),
        outage(Service::Batch, 1.5, 1.0, 0.1),
        outage(Service::Catalog, 3.0, 2.0, 1.0),
    ];
    config.policy.retry = retry;
    ticked_every_10_minutes(dir, config, ("p17", 20, 20), 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_through_outages_ends_cleaned_and_complete_with_no_person_in_between() {
    use repro_run::config::RetryConfig;
    let dir = tempfile::tempdir().unwrap();
    // As before the retry policy: three attempts, back to back. The catalog's two hours
    // outlast them, and a third of the datasets wait for a person at merge FAILED.
    let plain = predict(&outages(dir.path(), RetryConfig::default())).await;
    let failed: Vec<&str> = plain
        .datasets
        .iter()
        .filter(|d| d.state.contains("FAILED"))
        .map(|d| d.name.as_str())
        .collect();
    assert!(failed.len() >= 3, "{:#?}", plain.datasets);
    // Ten minutes, doubling up to an hour, for six hours: every outage is waited out.
    let patient = RetryConfig {
        first_delay_s: Some(600),
        max_delay_s: Some(3600),
        jitter_percent: Some(10),
        window_s: Some(6 * 3600),
        ..RetryConfig::default()
    };
    all_cleaned_within_12_hours(&predict(&outages(dir.path(), patient)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_breaker_waits_out_the_services_without_a_window_and_spends_no_attempts() {
    use repro_run::config::{OutageConfig, RetryConfig};
    let dir = tempfile::tempdir().unwrap();
    // The same three attempts back to back and no window, but a step that fails as a whole
    // (five transient failures, no success) waits as a whole: ten minutes, doubling up to
    // an hour, its failures excused.
    let mut s = outages(dir.path(), RetryConfig::default());
    s.config.policy.outage = OutageConfig {
        failures: 5,
        first_delay_s: 600,
        max_delay_s: 3600,
    };
    // The tape and catalog outages cost nothing; what the batch system's partial losses
    // (a tenth of the jobs, never a whole step) cost is the retry policy's.
    all_cleaned_within_12_hours(&predict(&s).await);
}

/// Every dataset of `p` `CLEANED` and complete, no file failed for good, within 12 hours.
fn all_cleaned_within_12_hours(p: &Prediction) {
    assert!(
        p.datasets
            .iter()
            .all(|d| d.state == "PRESTAGE COMPLETED MERGED_DBUP CLEANED"),
        "{:#?}",
        p.datasets
    );
    assert_eq!(p.chart.last().unwrap().failed, 0, "no file failed for good");
    let end = p.end_h.unwrap();
    assert!(end < 12.0, "{end}");
}

/// A backend of a tool author's own, told the simulated time: everything is staged,
/// declared and deleted at once, and a job ends at the first poll after it was submitted.
struct AtOnce {
    t: f64,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl repro_run::Backend for AtOnce {
    fn perform(
        &self,
        _: &repro_run::DatasetName,
        actions: &[repro_run::Action],
    ) -> Result<Vec<repro_run::Outcome>, repro_run::BackendError> {
        use repro_run::{Action, Outcome};
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(actions
            .iter()
            .map(|a| match a {
                Action::Stage { file, .. } => Outcome::Staged { file: *file },
                Action::SubmitReco { job, .. } | Action::SubmitMerge { job, .. } => {
                    Outcome::Submitted {
                        job: *job,
                        batch_id: format!("own.{job}"),
                    }
                }
                Action::Declare { group, .. } => Outcome::Declared { group: *group },
                Action::Delete { file, .. } => Outcome::Deleted { file: *file },
            })
            .collect())
    }

    fn poll(
        &self,
        dataset: &repro_run::DatasetName,
        polls: &[repro_run::Poll],
    ) -> Result<Vec<repro_run::Outcome>, repro_run::BackendError> {
        use repro_run::lifecycle::JobSubject;
        use repro_run::{MergedFile, Outcome, Poll, TmbFile};
        Ok(polls
            .iter()
            .filter_map(|p| match p {
                Poll::Job { job, .. } => Some(match job.subject {
                    JobSubject::Reco(f) => Outcome::RecoDone {
                        job: *job,
                        tmb: TmbFile::new(format!("/tmb/{f}"), 1),
                    },
                    JobSubject::Merge(g) => Outcome::MergeDone {
                        job: *job,
                        output: MergedFile::of(dataset, g, 1),
                    },
                }),
                _ => None,
            })
            .collect())
    }

    fn now(&self) -> i64 {
        self.t as i64
    }
}

/// `simulate` plays a backend of one's own: its answers decide when the campaign ends
/// (hours, where the sim backend's world with its default durations takes days), and it is
/// told the simulated time of each tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_of_ones_own_is_played_in_simulated_time() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DatasetSpec {
        name: "own".into(),
        count: Some(3),
        files: 20,
        ..DatasetSpec::default()
    };
    let plain = Scenario::new(
        Campaign::Described(vec![spec.clone()]),
        dir.path().join("sim"),
    );
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, t_seen) = (calls.clone(), seen.clone());
    let own = Scenario::new(Campaign::Described(vec![spec]), dir.path().join("own")).with_backend(
        move |t| {
            t_seen.lock().unwrap().push(t);
            Box::new(AtOnce {
                t,
                calls: c.clone(),
            })
        },
    );
    let in_sim = predict(&plain).await;
    let p = predict(&own).await;
    let end = p.end_h.expect("at rest");
    assert!(end <= 12.0, "every step is done by the next tick: {end} h");
    assert!(
        in_sim.end_h.unwrap() > end,
        "{:?} against {end}",
        in_sim.end_h
    );
    assert!(
        p.datasets.iter().all(|d| d.state.ends_with("CLEANED")),
        "{:?}",
        p.datasets
    );
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) > 0);
    // One backend per tick, at each tick's simulated second.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), p.ticks);
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, t)| *t == i as f64 * 3600.0),
        "{seen:?}"
    );
}
