//! The demo campaign: datasets registered on a fresh database (SQLite unless given another)
//! and ticked through the sim backend until every one is at rest (`CLEANED` or `FAILED`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use repro_core::plan::at_rest;
use repro_core::{DatasetName, FileState};
use repro_db::{DatasetSummary, ListFilter, NewFile, Register, Store};
use serde::Serialize;

use crate::backend::sim::SimBackend;
use crate::config::Config;
use crate::driver::{Driver, Op};
use crate::error::{Error, Result};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Number of datasets.
    pub datasets: u32,
    /// Raw files per dataset.
    pub files: u32,
    /// Seed of the simulation.
    pub seed: u64,
    /// Where the database, the simulated world and its journal go.
    pub dir: PathBuf,
    /// Datasets each tick works on at once.
    pub workers: usize,
    /// The database, empty or new (`None`: `repro.db`, SQLite, in `dir`).
    pub url: Option<String>,
    /// Whether the simulation fails now and then (its default rates: 5% of reco jobs,
    /// 2% of merge jobs, 1% of jobs lost), or never.
    pub failures: bool,
}

/// The campaign's closing numbers.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Datasets registered.
    pub datasets: usize,
    /// Datasets that reached `CLEANED`.
    pub cleaned: usize,
    /// Datasets that came to rest `FAILED`.
    pub failed: usize,
    /// Raw files registered.
    pub files: u64,
    /// Raw files cleaned up.
    pub files_cleaned: u64,
    /// Raw files that failed for good.
    pub files_failed_for_good: u64,
    /// Reco jobs, every attempt.
    pub reco_jobs: u64,
    /// Merge jobs, every attempt.
    pub merge_jobs: u64,
    /// Jobs that were retries.
    pub retries: u64,
    /// Ticks until every dataset was at rest.
    pub ticks: usize,
    /// Wall time, registration included.
    pub wall_time_s: f64,
    /// Wall time of the registration.
    pub registration_s: f64,
    /// Wall time of the ticks, from the first to the last.
    pub ticks_s: f64,
}

/// The campaign at its end.
#[derive(Debug)]
pub struct Finished {
    /// The closing numbers.
    pub summary: Summary,
    /// Every dataset as it ended.
    pub datasets: Vec<DatasetSummary>,
    /// The database URL, for looking further.
    pub url: String,
}

/// The demo's dataset names, `demo.p17.000` on.
fn dataset_name(d: u32) -> Result<DatasetName> {
    Ok(DatasetName::new(format!("demo.p17.{d:03}"))?)
}

/// Registers the campaign in `dir` and ticks it to rest. `progress(at_rest, ticks)` is
/// called before each tick.
pub async fn run(c: &Campaign, progress: impl FnMut(usize, usize)) -> Result<Finished> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&c.dir).map_err(|source| Error::Io {
        what: format!("cannot create {}", c.dir.display()),
        source,
    })?;
    let url = match &c.url {
        Some(url) => url.clone(),
        None => sqlite_url(&c.dir.join("repro.db")),
    };
    let store = Store::open(&url).await?;
    store.migrate().await?;
    register(c, &store).await?;
    let registration_s = t0.elapsed().as_secs_f64();
    let ticks = tick_to_rest(c, &store, progress).await?;
    let ticks_s = t0.elapsed().as_secs_f64() - registration_s;

    let datasets = store.list(&ListFilter::default()).await?;
    let mut s = Summary {
        datasets: datasets.len(),
        ticks,
        registration_s,
        ticks_s,
        ..Summary::default()
    };
    for d in &datasets {
        if d.status.state.is_cleaned() {
            s.cleaned += 1;
        } else {
            s.failed += 1;
        }
        s.files += d.files.total;
        s.files_cleaned += d.files.get(FileState::Cleaned);
        s.files_failed_for_good += d.files.failed_for_good();
    }
    let jobs = store.job_totals().await?;
    (s.reco_jobs, s.merge_jobs, s.retries) = (jobs.reco, jobs.merge, jobs.retries);
    s.wall_time_s = t0.elapsed().as_secs_f64();
    Ok(Finished {
        summary: s,
        datasets,
        url,
    })
}

/// Registers the campaign's datasets, unlocked, at the site `sim`.
async fn register(c: &Campaign, store: &Store) -> Result<()> {
    for d in 0..c.datasets {
        let name = dataset_name(d)?;
        let files: Vec<NewFile> = (0..c.files)
            .map(|f| NewFile {
                lfn: format!("/store/{name}/raw/run{:04}/file_{f:06}.raw", f / 100),
                size: 1_500_000_000 + u64::from(f % 997) * 1_000_003,
            })
            .collect();
        let opts = Register {
            unlock: true,
            site: Some("sim".into()),
            ..Register::default()
        };
        store.register(&name, &files, &opts, "demo").await?;
    }
    Ok(())
}

/// The demo's world: the sim backend with the campaign's seed, in its directory.
fn config(c: &Campaign) -> Config {
    let mut config = Config::default();
    let sim = &mut config.backend.sim;
    sim.seed = c.seed;
    sim.world = c.dir.join("sim-world");
    sim.journal = Some(c.dir.join("sim-journal.jsonl"));
    if !c.failures {
        (sim.stage_failure, sim.reco_failure, sim.merge_failure) = (0.0, 0.0, 0.0);
        (sim.declare_failure, sim.delete_failure, sim.lost_job) = (0.0, 0.0, 0.0);
    }
    config
}

/// Ticks every dataset not at rest until none is left; the ticks it took.
async fn tick_to_rest(
    c: &Campaign,
    store: &Store,
    mut progress: impl FnMut(usize, usize),
) -> Result<usize> {
    let config = config(c);
    let backend = SimBackend::new(config.backend.sim.clone(), 0.0);
    let mut ticks = 0;
    loop {
        let active: Vec<DatasetName> = store
            .list(&ListFilter::default())
            .await?
            .into_iter()
            .filter(|d| !at_rest(d.status.state))
            .map(|d| d.name)
            .collect();
        progress(c.datasets as usize - active.len(), ticks);
        if active.is_empty() {
            return Ok(ticks);
        }
        if ticks >= 500 {
            return Err(Error::Stalled(format!(
                "the demo campaign did not come to rest in {ticks} ticks"
            )));
        }
        let driver = Driver::new(store, &backend)
            .with_policy(config.policy())
            .with_actor("demo")
            .with_workers(c.workers);
        let mut run = driver.run_many(Op::Tick, &active, false).await;
        if let Some((_, e)) = run.errors.pop() {
            return Err(e);
        }
        if run
            .reports
            .iter()
            .all(|r| r.transitions.is_empty() && r.actions == 0 && r.outcomes == 0)
        {
            return Err(Error::Stalled(format!(
                "the demo campaign stalled after {ticks} ticks"
            )));
        }
        ticks += 1;
    }
}

/// The SQLite URL of a database file, created if missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}
