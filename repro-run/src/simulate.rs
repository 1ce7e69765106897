//! Capacity planning: a campaign played forward in simulated time with the real decisions.
//!
//! [`simulate`] takes a campaign (the datasets of a database as they stand, copied, or one
//! described in a file or on the command line), puts it in a fresh SQLite database of its
//! own, and ticks it the way cron would, every `interval` of simulated time, through the
//! real [`Driver`] (the core's plans, the configured limits and priorities, the store's
//! guarded writes) against the [`sim`](crate::backend::sim) backend with the configured
//! capacity of each site (batch slots, stage rate, job durations). The live database is
//! only read. Time is the sim's clock, so weeks pass in seconds; the same seed and
//! scenario give the same [`Prediction`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use repro_core::budget::Limit;
use repro_core::plan::at_rest;
use repro_core::{DatasetName, FileState, LockWord, Phase, SampleName, Usage};

use repro_db::{DatasetSummary, ListFilter, NewFile, Register, Store};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::backend::sim::SimBackend;
use crate::config::Config;
use crate::driver::{Driver, Op};
use crate::error::{Error, Result};

/// What to play forward.
#[derive(Debug, Clone)]
pub enum Campaign {
    /// The datasets of the database at this URL, as they stand (copied; never written).
    Database(String),
    /// Datasets described (a campaign file, or the command line's).
    Described(Vec<DatasetSpec>),
}

/// Datasets of a described campaign: one, or `count` alike ones named `NAME.000` on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// The dataset's name, or the prefix of `count` names.
    pub name: String,
    /// How many alike datasets (`NAME.000`, `NAME.001`, ...); unset: one, named `NAME`.
    #[serde(default)]
    pub count: Option<u32>,
    /// Raw files per dataset.
    pub files: u32,
    /// Bytes per raw file.
    #[serde(default = "default_size")]
    pub size: u64,
    /// The site.
    #[serde(default)]
    pub site: Option<String>,
    /// The sample.
    #[serde(default)]
    pub sample: Option<String>,
    /// The priority.
    #[serde(default)]
    pub priority: i32,
}

/// A raw file of 1.5 GB, about what a D0 raw file holds.
fn default_size() -> u64 {
    1_500_000_000
}

impl Default for DatasetSpec {
    /// One dataset `sim` of 100 raw files of 1.5 GB, at no site, in no sample.
    fn default() -> Self {
        DatasetSpec {
            name: "sim".into(),
            count: None,
            files: 100,
            size: default_size(),
            site: None,
            sample: None,
            priority: 0,
        }
    }
}

/// The campaign file: `[[dataset]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignFile {
    dataset: Vec<DatasetSpec>,
}

/// Reads a campaign file (TOML, `[[dataset]]` tables with `name`, `files` and optionally
/// `count`, `size`, `site`, `sample`, `priority`).
pub fn read_campaign(path: &Path) -> Result<Vec<DatasetSpec>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Campaign {
        path: path.display().to_string(),
        message: format!("cannot read it: {e}"),
    })?;
    parse_campaign(&text, path)
}

/// Parses a campaign file's `text` (read from `path`, for messages).
pub fn parse_campaign(text: &str, path: &Path) -> Result<Vec<DatasetSpec>> {
    let bad = |message: String| Error::Campaign {
        path: path.display().to_string(),
        message,
    };
    let file: CampaignFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if file.dataset.is_empty() {
        return Err(bad("it describes no dataset ([[dataset]] tables)".into()));
    }
    for d in &file.dataset {
        if d.files == 0 || d.count == Some(0) {
            return Err(bad(format!(
                "dataset {}: files and count are at least 1",
                d.name
            )));
        }
    }
    Ok(file.dataset)
}

/// A simulation to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The datasets.
    pub campaign: Campaign,
    /// Limits, policy and the simulated world's capacity (`[backend.sim]`, whatever the
    /// configured backend).
    pub config: Config,
    /// Seed of the simulation's draws (unset: `[backend.sim] seed`, so that a campaign
    /// then played against the sim backend draws the same fates and durations).
    pub seed: Option<u64>,
    /// Simulated seconds between two ticks (cron's interval).
    pub interval_s: u64,
    /// Simulated seconds after which it stops, finished or not.
    pub horizon_s: u64,
    /// Where its database and world go (emptied first).
    pub dir: PathBuf,
    /// What it plays against: `None` for the sim backend's world with `config`'s
    /// `[backend.sim]` capacity, or a backend of your own ([`Scenario::with_backend`]).
    pub backend: Option<BackendAt>,
}

/// Makes the backend a simulation plays against at a simulated second (seconds since
/// its start), for a world of your own instead of the sim backend's.
#[derive(Clone)]
pub struct BackendAt(pub std::sync::Arc<dyn Fn(f64) -> Box<dyn Backend> + Send + Sync>);

impl std::fmt::Debug for BackendAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendAt(..)")
    }
}

impl Scenario {
    /// `campaign` played in `dir` under the default configuration (`[limits]` none, the
    /// `[backend.sim]` world), a tick an hour, for up to a year of simulated time.
    pub fn new(campaign: Campaign, dir: impl Into<PathBuf>) -> Scenario {
        Scenario {
            campaign,
            config: Config::default(),
            seed: None,
            interval_s: 3600,
            horizon_s: 365 * 86_400,
            dir: dir.into(),
            backend: None,
        }
    }

    /// Plays against `at(t)` at each simulated second `t` instead of the sim backend's
    /// world. Its answers decide when things end; its [`Backend::now`] should give the
    /// simulated time (`t`) so that retries wait in simulated time. The jobs in flight
    /// in a database played forward are its to answer for (the sim backend takes them
    /// as started at the first tick).
    pub fn with_backend(
        mut self,
        at: impl Fn(f64) -> Box<dyn Backend> + Send + Sync + 'static,
    ) -> Scenario {
        self.backend = Some(BackendAt(std::sync::Arc::new(at)));
        self
    }
}

/// What the simulation predicts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Prediction {
    /// Simulated hours until every unlocked dataset was at rest; `None` if not within
    /// the horizon.
    pub end_h: Option<f64>,
    /// Ticks played.
    pub ticks: usize,
    /// Cron's interval, in simulated seconds.
    pub interval_s: u64,
    /// Each dataset, in the order it came to rest.
    pub datasets: Vec<DatasetEnd>,
    /// Each sample, in the order it came to rest.
    pub samples: Vec<SampleEnd>,
    /// The most each site had in flight at once, and its limits.
    pub peaks: Vec<SitePeak>,
    /// The most all sites together had in flight at once, beside `[limits.total]` (only
    /// when that is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<TotalPeak>,
    /// File-hours spent in each phase: where the campaign's files waited.
    pub phase_hours: BTreeMap<String, f64>,
    /// The phase with the most file-hours.
    pub bottleneck: Option<String>,
    /// Dataset-ticks that waited for each limit.
    pub waits: BTreeMap<String, u64>,
    /// The campaign at each step (an hour, or the interval when longer).
    pub chart: Vec<ChartRow>,
    /// Real seconds the simulation took.
    pub wall_s: f64,
    /// What the world was calibrated from, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// When one dataset came to rest.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetEnd {
    /// The dataset.
    pub name: String,
    /// Its sample.
    pub sample: Option<String>,
    /// Its site.
    pub site: Option<String>,
    /// Simulated hours until it was at rest; `None` if it was not (or is locked).
    pub at_rest_h: Option<f64>,
    /// Its state at the end: the prestage, reco, merge and cleanup columns in the predecessor scripts'
    /// words (`LOCK` first when locked).
    pub state: String,
}

/// When one sample came to rest.
#[derive(Debug, Clone, Serialize)]
pub struct SampleEnd {
    /// The sample (`None`: the datasets in none).
    pub sample: Option<String>,
    /// Its datasets.
    pub datasets: usize,
    /// Simulated hours until all were at rest.
    pub at_rest_h: Option<f64>,
}

/// The most one site had in flight at once (after any tick), beside its limits.
#[derive(Debug, Clone, Serialize)]
pub struct SitePeak {
    /// The site (`None`: the datasets at none).
    pub site: Option<String>,
    /// Peaks.
    pub peak: Usage,
    /// The configured limits.
    pub limits: repro_core::Limits,
}

/// The most all sites together had in flight at once, beside the total limits.
#[derive(Debug, Clone, Serialize)]
pub struct TotalPeak {
    /// Peaks.
    pub peak: Usage,
    /// The configured total.
    pub limits: repro_core::Limits,
}

/// The campaign at one moment: files per phase, jobs in flight, disk held.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChartRow {
    /// Simulated hours since the start.
    pub hour: f64,
    /// Raw files not yet staged (or to be staged again).
    pub to_stage: u64,
    /// Raw files staging.
    pub staging: u64,
    /// Staged raw files waiting for a reco job.
    pub to_reco: u64,
    /// Raw files whose reco job is in flight.
    pub in_reco: u64,
    /// Reconstructed files not yet merged.
    pub to_merge: u64,
    /// Merged raw files not yet cleaned up.
    pub merged: u64,
    /// Raw files cleaned up.
    pub cleaned: u64,
    /// Raw files failed for good.
    pub failed: u64,
    /// Reco jobs in flight, every site.
    pub reco_jobs: u64,
    /// Merge jobs in flight, every site.
    pub merge_jobs: u64,
    /// Bytes of disk held (raw files of started datasets and TMB files), every site.
    pub disk_bytes: u64,
}

impl ChartRow {
    fn add_files(&mut self, counts: &repro_db::FileCounts) {
        use FileState as F;
        for (state, n) in &counts.by_state {
            let slot = match state {
                F::Registered | F::StageFailed => &mut self.to_stage,
                F::Staging => &mut self.staging,
                F::Staged | F::RecoFailed => &mut self.to_reco,
                F::RecoSubmitted => &mut self.in_reco,
                F::Reconstructed => &mut self.to_merge,
                F::Merged | F::Deleting => &mut self.merged,
                F::Cleaned => &mut self.cleaned,
                F::StageFailedForGood | F::RecoFailedForGood => &mut self.failed,
            };
            *slot += n;
        }
    }

    /// Every raw file: each is in exactly one of the counts.
    pub fn files(&self) -> u64 {
        self.to_stage
            + self.staging
            + self.to_reco
            + self.in_reco
            + self.to_merge
            + self.merged
            + self.cleaned
            + self.failed
    }

    /// Files waiting or in progress in `phase`.
    fn in_phase(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Prestage => self.to_stage + self.staging,
            Phase::Reco => self.to_reco + self.in_reco,
            Phase::Merge => self.to_merge,
            Phase::Cleanup => self.merged,
        }
    }
}

/// Plays `s` forward to rest or to its horizon. `progress(hours, at_rest, datasets)` is
/// called after each tick.
pub async fn simulate(
    s: &Scenario,
    mut progress: impl FnMut(f64, usize, usize),
) -> Result<Prediction> {
    let t0 = Instant::now();
    if s.interval_s == 0 {
        return Err(Error::Stalled(
            "the interval between ticks must be at least a second".into(),
        ));
    }
    let store = prepare(s).await?;
    let world = adopt(s, &store).await?;
    let p = play(s, &store, world, &mut progress).await;
    // Closed before the copy is left behind: another simulation in the same directory
    // removes and recreates its files, which this pool's late checkpoint would corrupt.
    store.close().await?;
    let mut p = p?;
    p.wall_s = t0.elapsed().as_secs_f64();
    Ok(p)
}

/// The world of the simulation: its sites' capacity and what the campaign has in flight.
struct World {
    sim: crate::config::SimConfig,
    sites: BTreeMap<String, String>,
    memory: std::sync::Arc<crate::backend::sim::SimMemory>,
}

impl World {
    /// The sim backend at simulated second `t`.
    fn at(&self, t: f64) -> SimBackend {
        SimBackend::new(self.sim.clone(), t)
            .with_sites(self.sites.clone())
            .with_memory(self.memory.clone())
    }
}

/// The simulated world for the campaign in `store`, told what the copied datasets have
/// in flight.
async fn adopt(s: &Scenario, store: &Store) -> Result<World> {
    let mut sim = s.config.backend.sim.clone();
    if let Some(seed) = s.seed {
        sim.seed = seed;
    }
    sim.world = s.dir.join("sim-world");
    sim.journal = None;
    let world = World {
        sim,
        sites: store.dataset_sites().await?,
        // The world is this simulation's alone: kept in memory, not in files.
        memory: crate::backend::sim::SimMemory::new(),
    };
    if matches!(s.campaign, Campaign::Database(_)) && s.backend.is_none() {
        adopt_in_flight(store, &world.at(0.0)).await?;
    }
    Ok(world)
}

/// Every dataset's row with its counts: by priority as a tick takes them, or by name.
async fn rows(store: &Store, by_priority: bool) -> Result<Vec<DatasetSummary>> {
    Ok(store
        .list(&ListFilter {
            by_priority,
            ..ListFilter::default()
        })
        .await?)
}

/// What a simulation gathers while it plays, before it becomes a [`Prediction`].
#[derive(Default)]
struct Tally {
    p: Prediction,
    /// When each dataset was first seen at rest.
    rest_at: BTreeMap<String, f64>,
    /// The most each site (`None`: no site) had in flight.
    peaks: BTreeMap<Option<String>, Usage>,
    /// The most all sites together had in flight.
    total_peak: Usage,
}

/// Raises each of `peak`'s figures to `u`'s where that is higher (disk counts TMB files).
fn raise(peak: &mut Usage, u: Usage) {
    peak.stage_requests = peak.stage_requests.max(u.stage_requests);
    peak.disk_bytes = peak.disk_bytes.max(u.disk_bytes + u.tmb_bytes);
    peak.reco_jobs = peak.reco_jobs.max(u.reco_jobs);
    peak.merge_jobs = peak.merge_jobs.max(u.merge_jobs);
}

/// The campaign before one tick: how many unlocked datasets are at rest, of how many.
struct Census {
    list: Vec<DatasetSummary>,
    resting: usize,
    unlocked: usize,
}

impl Tally {
    /// Reads the campaign as it stands at `hour` (in the order a tick gives work) and
    /// notes its chart row, peaks and file-hours.
    async fn observe(
        &mut self,
        s: &Scenario,
        store: &Store,
        sites: &BTreeSet<Option<String>>,
        hour: f64,
    ) -> Result<(Census, ChartRow)> {
        let list = rows(store, true).await?;
        let mut row = ChartRow {
            hour,
            ..ChartRow::default()
        };
        let (mut resting, mut unlocked) = (0, 0);
        for d in &list {
            row.add_files(&d.files);
            if d.status.lock == LockWord::Lock {
                continue;
            }
            unlocked += 1;
            if at_rest(d.status.state) {
                resting += 1;
                self.rest_at.entry(d.name.to_string()).or_insert(hour);
            }
        }
        let mut all = Usage::default();
        for site in sites {
            let u = store.usage(site.as_deref()).await?;
            all = all.plus(u);
            row.reco_jobs += u.reco_jobs;
            row.merge_jobs += u.merge_jobs;
            row.disk_bytes += u.disk_bytes + u.tmb_bytes;
            raise(self.peaks.entry(site.clone()).or_default(), u);
        }
        raise(&mut self.total_peak, all);
        if self.p.ticks > 0 {
            for &phase in Phase::ALL {
                *self
                    .p
                    .phase_hours
                    .entry(phase.as_str().to_owned())
                    .or_default() += row.in_phase(phase) as f64 * s.interval_s as f64 / 3600.0;
            }
        }
        let census = Census {
            list,
            resting,
            unlocked,
        };
        Ok((census, row))
    }

    /// Counts the limits the run's datasets waited for.
    fn waited(&mut self, run: &crate::Run) {
        for w in run.reports.iter().filter_map(|r| r.waiting.as_deref()) {
            for limit in Limit::ALL.iter().filter(|l| w.contains(l.as_str())) {
                *self.p.waits.entry(limit.as_str().to_owned()).or_default() += 1;
            }
        }
    }
}

/// Ticks the campaign in `store` until it is at rest or the horizon is reached.
async fn play(
    s: &Scenario,
    store: &Store,
    world: World,
    progress: &mut impl FnMut(f64, usize, usize),
) -> Result<Prediction> {
    let mut sites: BTreeSet<Option<String>> = world.sites.values().cloned().map(Some).collect();
    sites.insert(None);
    let mut tally = Tally {
        p: Prediction {
            interval_s: s.interval_s,
            ..Prediction::default()
        },
        ..Tally::default()
    };
    let step_h = (s.interval_s as f64 / 3600.0).max(1.0);
    // The copy is this process's alone: every dataset's view is kept from one tick to the
    // next instead of loaded again.
    let views = crate::ViewCache::new(usize::MAX);
    let mut t = 0u64;
    loop {
        let hour = t as f64 / 3600.0;
        let (census, row) = tally.observe(s, store, &sites, hour).await?;
        if census.unlocked == 0 {
            return Err(Error::Campaign {
                path: match &s.campaign {
                    Campaign::Database(url) => repro_db::redact(url),
                    Campaign::Described(_) => "described".into(),
                },
                message:
                    "nothing to simulate: no dataset is unlocked (LOCKed ones stay where they are)"
                        .into(),
            });
        }
        progress(hour, census.resting, census.unlocked);
        let done = census.resting == census.unlocked;
        let last = done || t >= s.horizon_s;
        // A row per step, and always the last one.
        let chart = &mut tally.p.chart;
        if last
            || chart
                .last()
                .is_none_or(|prev| hour >= prev.hour + step_h - 1e-9)
        {
            chart.push(row);
        }
        if done {
            tally.p.end_h = Some(hour);
        }
        if last {
            break;
        }
        // Nothing asks about a CLEANED dataset again: its part of the world goes.
        for d in &census.list {
            if d.status.state.is_cleaned() {
                world.memory.forget(d.name.as_str());
            }
        }
        let run = tick(s, store, &world, &views, &census.list, t).await;
        if let Some((name, e)) = run
            .errors
            .iter()
            .find(|(_, e)| e.kind() != crate::ErrorKind::Conflict)
        {
            return Err(Error::Stalled(format!(
                "the simulation stopped at hour {hour:.1}: {name}: {e}"
            )));
        }
        tally.waited(&run);
        tally.p.ticks += 1;
        t += s.interval_s;
    }
    finish(s, store, tally).await
}

/// One tick at simulated second `t` over the datasets `targets` would read again: the
/// unlocked ones of `list` not CLEANED, in the order a tick takes them.
async fn tick(
    s: &Scenario,
    store: &Store,
    world: &World,
    views: &crate::ViewCache,
    list: &[DatasetSummary],
    t: u64,
) -> crate::Run {
    let active: Vec<DatasetSummary> = list
        .iter()
        .filter(|d| d.status.lock == LockWord::Unlock && !d.status.state.is_cleaned())
        .cloned()
        .collect();
    let names: Vec<DatasetName> = crate::run_order(&active, &s.config.weights());
    let backend: Box<dyn Backend> = match &s.backend {
        Some(BackendAt(at)) => at(t as f64),
        None => Box::new(world.at(t as f64)),
    };
    Driver::new(store, backend.as_ref())
        .with_policy(s.config.policy())
        .with_actor("simulate")
        .with_lease_ttl(Duration::from_secs(3600))
        .with_workers(s.config.run.workers)
        .with_view_cache(views)
        .run_many(Op::Tick, &names, true)
        .await
}

/// The prediction from what was gathered and the campaign as it ended.
async fn finish(s: &Scenario, store: &Store, tally: Tally) -> Result<Prediction> {
    let Tally {
        mut p,
        rest_at,
        peaks,
        total_peak,
    } = tally;
    let mut samples: BTreeMap<Option<String>, (usize, Option<f64>)> = BTreeMap::new();
    for d in &rows(store, false).await? {
        let at = rest_at.get(d.name.as_str()).copied();
        let sample = d.sample.as_ref().map(ToString::to_string);
        let e = samples.entry(sample.clone()).or_insert((0, Some(0.0)));
        e.0 += 1;
        e.1 = match (e.1, at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        let c = d.status.columns();
        let lock = if c.lock == LockWord::Lock {
            "LOCK "
        } else {
            ""
        };
        p.datasets.push(DatasetEnd {
            name: d.name.to_string(),
            sample,
            site: d.site.clone(),
            at_rest_h: at,
            state: format!("{lock}{}", c.words().skip(1).collect::<Vec<_>>().join(" ")),
        });
    }
    p.datasets
        .sort_by(|a, b| rest_order(a.at_rest_h, b.at_rest_h).then_with(|| a.name.cmp(&b.name)));
    p.samples = samples
        .into_iter()
        .map(|(sample, (datasets, at_rest_h))| SampleEnd {
            sample,
            datasets,
            at_rest_h,
        })
        .collect();
    p.samples
        .sort_by(|a, b| rest_order(a.at_rest_h, b.at_rest_h).then_with(|| a.sample.cmp(&b.sample)));
    let limits = s.config.limits();
    p.total = (!limits.total.is_none()).then_some(TotalPeak {
        peak: total_peak,
        limits: limits.total,
    });
    p.peaks = peaks
        .into_iter()
        .map(|(site, peak)| SitePeak {
            limits: limits.of(site.as_deref()),
            site,
            peak,
        })
        .filter(|sp| sp.peak != Usage::default() || sp.site.is_some())
        .collect();
    p.bottleneck = p
        .phase_hours
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .filter(|(_, h)| **h > 0.0)
        .map(|(phase, _)| phase.clone());
    Ok(p)
}

/// Earliest at rest first; never at rest last.
fn rest_order(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    let key = |h: Option<f64>| h.unwrap_or(f64::INFINITY);
    key(a).total_cmp(&key(b))
}

/// A fresh database in the scenario's directory, with its campaign in it.
async fn prepare(s: &Scenario) -> Result<Store> {
    let io = |what: String| move |source| Error::Io { what, source };
    for sub in ["simulate.db", "sim-world"] {
        let p = s.dir.join(sub);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(io(format!("cannot empty {}", p.display())))?;
        }
    }
    std::fs::create_dir_all(&s.dir).map_err(io(format!("cannot create {}", s.dir.display())))?;
    for name in ["simulate.db", "simulate.db-wal", "simulate.db-shm"] {
        let p = s.dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io(format!("cannot remove {}", p.display())))?;
        }
    }
    let store = Store::open_scratch(&s.dir.join("simulate.db")).await?;
    store.migrate().await?;
    match &s.campaign {
        Campaign::Database(url) => {
            let live = Store::open(url).await?;
            live.check_schema().await?;
            live.copy_campaign_into(&store).await?;
        }
        Campaign::Described(specs) => register(&store, specs).await?,
    }
    Ok(store.with_limits(s.config.limits()))
}

/// Registers a described campaign, unlocked.
async fn register(store: &Store, specs: &[DatasetSpec]) -> Result<()> {
    for spec in specs {
        let names: Vec<String> = match spec.count {
            None => vec![spec.name.clone()],
            Some(n) => (0..n).map(|i| format!("{}.{i:03}", spec.name)).collect(),
        };
        let sample = spec.sample.clone().map(SampleName::new).transpose()?;
        for name in names {
            let name = DatasetName::new(name)?;
            let files: Vec<NewFile> = (0..spec.files)
                .map(|f| NewFile::new(format!("/store/{name}/raw/file_{f:06}.raw"), spec.size))
                .collect();
            let opts = Register {
                unlock: true,
                site: spec.site.clone(),
                sample: sample.clone(),
                priority: spec.priority,
            };
            store.register(&name, &files, &opts, "simulate").await?;
        }
    }
    Ok(())
}

/// Gives the simulated world what the copied datasets have in flight (stage requests,
/// submitted jobs), as started when the simulation starts.
async fn adopt_in_flight(store: &Store, backend: &SimBackend) -> Result<()> {
    for d in store.list(&ListFilter::default()).await? {
        if d.status.lock == LockWord::Lock || at_rest(d.status.state) {
            continue;
        }
        let view = store.load(&d.name).await?;
        let polls = repro_core::plan::polls(&view);
        if !polls.is_empty() {
            backend.adopt(&d.name, &polls)?;
        }
    }
    Ok(())
}

/// A series of the chart: its name, colour and value in a row.
type Series = (&'static str, &'static str, fn(&ChartRow) -> u64);

/// One panel of the chart: its title, its series and whether they are stacked.
struct Panel {
    title: &'static str,
    series: Vec<Series>,
    stacked: bool,
}

/// The chart's panels, top to bottom.
fn panels() -> [Panel; 3] {
    [
        Panel {
            title: "raw files per phase (stacked)",
            series: vec![
                ("cleaned", "#9ca3af", |r| r.cleaned),
                ("merged", "#d97706", |r| r.merged),
                ("to merge", "#16a34a", |r| r.to_merge),
                ("in reco", "#2563eb", |r| r.in_reco),
                ("to reco", "#93c5fd", |r| r.to_reco),
                ("staging", "#7c3aed", |r| r.staging),
                ("to stage", "#c4b5fd", |r| r.to_stage),
                ("failed", "#dc2626", |r| r.failed),
            ],
            stacked: true,
        },
        Panel {
            title: "jobs in flight (reserved, queued or running)",
            series: vec![
                ("reco jobs", "#2563eb", |r| r.reco_jobs),
                ("merge jobs", "#16a34a", |r| r.merge_jobs),
            ],
            stacked: false,
        },
        Panel {
            title: "disk held: raw files of started datasets and TMB files",
            series: vec![("bytes", "#d97706", |r| r.disk_bytes)],
            stacked: false,
        },
    ]
}

/// The chart's geometry: width, a panel's height, the gap below it, the left margin.
const SVG_W: f64 = 760.0;
const SVG_PANEL: f64 = 130.0;
const SVG_GAP: f64 = 70.0;
const SVG_LEFT: f64 = 60.0;

impl Prediction {
    /// The chart as an SVG image: files per phase (stacked), jobs in flight and disk held,
    /// over simulated time.
    pub fn chart_svg(&self) -> String {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="{}" font-family="sans-serif" font-size="11">"#,
            3.0 * (SVG_PANEL + SVG_GAP)
        );
        for (i, panel) in panels().iter().enumerate() {
            draw(
                &mut svg,
                &self.chart,
                panel,
                20.0 + i as f64 * (SVG_PANEL + SVG_GAP),
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// Draws `panel` of the chart of `rows` with its top at `top`: title, axes, the series
/// (bands when stacked, lines otherwise) and their legend.
fn draw(svg: &mut String, rows: &[ChartRow], panel: &Panel, top: f64) {
    let (left, series) = (SVG_LEFT, &panel.series);
    let end = rows.last().map_or(1.0, |r| r.hour).max(1.0);
    let x = |h: f64| left + (SVG_W - left - 10.0) * h / end;
    let bottom = top + SVG_PANEL;
    let total = |r: &ChartRow| -> u64 {
        let values = series.iter().map(|(_, _, f)| f(r));
        if panel.stacked {
            values.sum()
        } else {
            values.max().unwrap_or(0)
        }
    };
    let max = rows.iter().map(total).max().unwrap_or(0).max(1) as f64;
    let y = |v: u64| bottom - SVG_PANEL * v as f64 / max;
    let _ = write!(
        svg,
        r##"<text x="{left}" y="{}" font-weight="bold">{}</text><line x1="{left}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#999"/><text x="{}" y="{}" text-anchor="end" fill="#666">{}</text><text x="{}" y="{bottom}" text-anchor="end" fill="#666">0</text>"##,
        top - 6.0,
        panel.title,
        SVG_W - 10.0,
        left - 4.0,
        top + 8.0,
        human(max),
        left - 4.0,
    );
    for k in 0..=4 {
        let h = end * f64::from(k) / 4.0;
        let anchor = ["start", "middle", "middle", "middle", "end"][k as usize];
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="{anchor}" fill="#666">{h:.0} h</text>"##,
            x(h),
            bottom + 13.0
        );
    }
    let mut base = vec![0u64; rows.len()];
    for (k, (name, colour, get)) in series.iter().enumerate() {
        let top_line: Vec<(f64, u64)> = rows
            .iter()
            .zip(&base)
            .map(|(r, b)| (r.hour, get(r) + if panel.stacked { *b } else { 0 }))
            .collect();
        let mut points = String::new();
        for (h, v) in &top_line {
            let _ = write!(points, "{:.1},{:.1} ", x(*h), y(*v));
        }
        if panel.stacked {
            // A band from the layers below up to this one.
            for (r, b) in rows.iter().zip(&base).rev() {
                let _ = write!(points, "{:.1},{:.1} ", x(r.hour), y(*b));
            }
            let _ = write!(
                svg,
                r#"<polygon points="{points}" fill="{colour}" stroke="none"><title>{name}</title></polygon>"#
            );
            base = top_line.iter().map(|(_, v)| *v).collect();
        } else {
            let _ = write!(
                svg,
                r#"<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{name}</title></polyline>"#
            );
        }
        let lx = left + 86.0 * k as f64;
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" fill="#444">{name}</text>"##,
            bottom + 22.0,
            lx + 13.0,
            bottom + 31.0,
        );
    }
}

/// `1234567` as `1.2M`.
fn human(v: f64) -> String {
    match v {
        v if v >= 1e12 => format!("{:.1}T", v / 1e12),
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// What a campaign's history says about its world: job run times and failure rates, how
/// long staging took, and per site the most jobs that ran at once and the most files
/// staged in an hour. [`Calibration::apply`] sets a simulated world from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Calibration {
    /// Reco jobs.
    pub reco: JobStats,
    /// Merge jobs.
    pub merge: JobStats,
    /// Stage requests.
    pub stage: StageStats,
    /// Per site (`""`: the datasets at none): the most jobs running at once, the most
    /// files staged in one hour.
    pub sites: BTreeMap<String, SiteStats>,
}

/// Finished attempts of one kind of job.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobStats {
    /// Attempts that finished well.
    pub done: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Attempts the batch system lost.
    pub lost: u64,
    /// Median seconds from running (or, where no start was recorded, from submission)
    /// to done.
    pub median_s: Option<f64>,
    /// The sigma of the log of those times: the sim's `duration_spread`.
    pub spread: Option<f64>,
}

/// Stage requests that came back.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageStats {
    /// Requests that staged the file.
    pub staged: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Median seconds from the request to the file on disk.
    pub median_s: Option<f64>,
}

/// What one site showed it can do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SiteStats {
    /// The most jobs running at once.
    pub peak_running: u64,
    /// The most files staged in one hour.
    pub peak_staged_per_hour: u64,
}

impl JobStats {
    fn from_times(mut times: Vec<f64>, done: u64, failed: u64, lost: u64) -> JobStats {
        times.retain(|t| *t > 0.0);
        times.sort_by(f64::total_cmp);
        let median_s = (!times.is_empty()).then(|| times[times.len() / 2]);
        let spread = (times.len() >= 2).then(|| {
            let logs: Vec<f64> = times.iter().map(|t| t.ln()).collect();
            let mean = logs.iter().sum::<f64>() / logs.len() as f64;
            (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (logs.len() - 1) as f64).sqrt()
        });
        JobStats {
            done,
            failed,
            lost,
            median_s,
            spread,
        }
    }

    fn attempts(&self) -> u64 {
        self.done + self.failed + self.lost
    }
}

/// One job as its history tells it.
#[derive(Default)]
struct JobHistory {
    site: String,
    submitted: Option<NaiveDateTime>,
    running: Option<NaiveDateTime>,
    end: Option<(NaiveDateTime, String)>,
}

/// What [`calibrate`] gathers from the history, row by row.
#[derive(Default)]
struct Reading {
    c: Calibration,
    /// Each job by (is it reco, its id).
    jobs: BTreeMap<(bool, i64), JobHistory>,
    /// When each file still staging started.
    staging: BTreeMap<i64, NaiveDateTime>,
    stage_times: Vec<f64>,
    /// Files staged per site and hour since the epoch.
    staged_per_hour: BTreeMap<(String, i64), u64>,
}

impl Reading {
    /// Notes one history row: `entity` `id` moved `to` at `at`, at `site`.
    fn note(&mut self, site: String, entity: &str, id: i64, to: String, at: NaiveDateTime) {
        if entity != "file" {
            let job = self.jobs.entry((entity == "reco_job", id)).or_default();
            job.site = site;
            match to.as_str() {
                "submitted" => job.submitted = Some(at),
                "running" => job.running = job.running.or(Some(at)),
                "done" | "failed" | "lost" => job.end = Some((at, to)),
                _ => {}
            }
            return;
        }
        match to.as_str() {
            "staging" => {
                self.staging.insert(id, at);
            }
            "staged" => {
                self.c.stage.staged += 1;
                if let Some(from) = self.staging.remove(&id) {
                    self.stage_times.push((at - from).as_seconds_f64());
                }
                *self
                    .staged_per_hour
                    .entry((site, at.and_utc().timestamp() / 3600))
                    .or_default() += 1;
            }
            "stage_failed" => {
                self.c.stage.failed += 1;
                self.staging.remove(&id);
            }
            _ => {}
        }
    }

    /// The reco (`reco`) or merge jobs' figures, each run's start and end added to
    /// `edges` (+1, -1) by site.
    fn job_stats(
        &self,
        reco: bool,
        edges: &mut BTreeMap<String, Vec<(NaiveDateTime, i64)>>,
    ) -> JobStats {
        let (mut times, mut done, mut failed, mut lost) = (Vec::new(), 0, 0, 0);
        for j in self
            .jobs
            .range((reco, i64::MIN)..=(reco, i64::MAX))
            .map(|(_, j)| j)
        {
            let Some((end, state)) = &j.end else { continue };
            let start = j.running.or(j.submitted);
            match state.as_str() {
                "done" => {
                    done += 1;
                    if let Some(s) = start {
                        times.push((*end - s).as_seconds_f64());
                    }
                }
                "failed" => failed += 1,
                _ => lost += 1,
            }
            if let Some(s) = start {
                let e = edges.entry(j.site.clone()).or_default();
                e.push((s, 1));
                e.push((*end, -1));
            }
        }
        JobStats::from_times(times, done, failed, lost)
    }

    /// The calibration: medians and rates, and per site the most jobs running at once
    /// and files staged in an hour.
    fn sum_up(mut self) -> Calibration {
        let mut c = std::mem::take(&mut self.c);
        self.stage_times.sort_by(f64::total_cmp);
        let times = &self.stage_times;
        c.stage.median_s = (!times.is_empty()).then(|| times[times.len() / 2]);
        let mut edges = BTreeMap::new();
        c.reco = self.job_stats(true, &mut edges);
        c.merge = self.job_stats(false, &mut edges);
        for (site, mut e) in edges {
            e.sort();
            let (mut now, mut peak) = (0i64, 0i64);
            for (_, d) in e {
                now += d;
                peak = peak.max(now);
            }
            c.sites.entry(site).or_default().peak_running = peak as u64;
        }
        for ((site, _), n) in self.staged_per_hour {
            let s = c.sites.entry(site).or_default();
            s.peak_staged_per_hour = s.peak_staged_per_hour.max(n);
        }
        c
    }
}

/// Reads the whole history of the campaign at `url` (only reading) and sums it up.
pub async fn calibrate(url: &str) -> Result<Calibration> {
    let store = Store::open(url).await?;
    store.check_schema().await?;
    let site_of: BTreeMap<i64, String> = store
        .list(&ListFilter::default())
        .await?
        .into_iter()
        .map(|d| (d.id, d.site.unwrap_or_default()))
        .collect();
    let mut reading = Reading::default();
    let mut after = i64::MIN;
    loop {
        let page = store
            .history_page(&["file", "reco_job", "merge_job"], after, 50_000)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (_, dataset, entity, id, to, at) in page {
            let site = site_of.get(&dataset).cloned().unwrap_or_default();
            reading.note(site, &entity, id, to, at);
        }
    }
    Ok(reading.sum_up())
}

impl Calibration {
    /// Sets `sim` from what was measured; what the history has no data for is left as
    /// configured.
    pub fn apply(&self, sim: &mut crate::config::SimConfig) {
        let rate = |failed: u64, of: u64| (of > 0).then(|| failed as f64 / of as f64);
        if let Some(m) = self.reco.median_s {
            sim.reco_duration_s = Some(m);
        }
        if let Some(m) = self.merge.median_s {
            sim.merge_duration_s = Some(m);
        }
        if let Some(m) = self.stage.median_s {
            sim.stage_duration_s = Some(m);
        }
        if let Some(s) = self.reco.spread.or(self.merge.spread) {
            sim.duration_spread = s.min(3.0);
        }
        if let Some(r) = rate(self.reco.failed, self.reco.attempts()) {
            sim.reco_failure = r;
        }
        if let Some(r) = rate(self.merge.failed, self.merge.attempts()) {
            sim.merge_failure = r;
        }
        if let Some(r) = rate(
            self.reco.lost + self.merge.lost,
            self.reco.attempts() + self.merge.attempts(),
        ) {
            sim.lost_job = r;
        }
        if let Some(r) = rate(self.stage.failed, self.stage.staged + self.stage.failed) {
            sim.stage_failure = r;
        }
        for (site, s) in &self.sites {
            let capacity = crate::config::SimSite {
                slots: (s.peak_running > 0).then_some(s.peak_running),
                stage_rate: (s.peak_staged_per_hour > 0).then_some(s.peak_staged_per_hour as f64),
            };
            if site.is_empty() {
                sim.slots = capacity.slots;
                sim.stage_rate = capacity.stage_rate;
            } else {
                sim.site.insert(site.clone(), capacity);
            }
        }
    }
}
