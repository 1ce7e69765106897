//! `repro.toml`: which backend, how it behaves, and the policy.
//!
//! Unknown keys, wrong types and impossible values are errors naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use repro_core::retry::{Backoff, Backoffs};
use repro_core::{Phase, Policy};

use crate::backend::template::Step;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which backend reaches the outside world.
    #[serde(default)]
    pub backend: BackendConfig,
    /// Retry and grouping rules.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// How long a process may hold a dataset.
    #[serde(default)]
    pub lease: LeaseConfig,
    /// How one run works through its datasets.
    #[serde(default)]
    pub run: RunConfig,
    /// How much may be in flight per site.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[weights]`: each sample's weight against the other samples of the same priority
    /// when a limit holds work back (default 1); see [`repro_core::fair`].
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    /// `[alerts]`: who else hears of what needs a person.
    #[serde(default)]
    pub alerts: AlertsConfig,
}

/// `[alerts]`: a command run once for each new line that needs a person, besides the line
/// `repro -q tick` prints for cron's mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// The command and its arguments, run without a shell, with `REPRO_ALERT` (the line),
    /// `REPRO_DATASET` and `REPRO_CLASS` (`transient`, `permanent` or `unknown`: the class
    /// of the last error the line names) in its environment.
    pub command: Option<Vec<String>>,
    /// Seconds it may take before it is killed.
    pub timeout_s: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            command: None,
            timeout_s: 30,
        }
    }
}

/// `[limits]`: what may be in flight at each site (a site's own `[limits.site.NAME]`
/// replaces these for it), and `[limits.total]` over all sites together. Unset keys are
/// no limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Stage requests in flight.
    pub stage_requests: Option<u64>,
    /// Bytes of raw files of started datasets and of TMB files, until cleaned up; a
    /// dataset starts prestage when all its raw files fit.
    pub disk_bytes: Option<u64>,
    /// Reco jobs reserved, submitted or running.
    pub reco_jobs: Option<u64>,
    /// Merge jobs reserved, submitted or running.
    pub merge_jobs: Option<u64>,
    /// Job submissions in one run of one process.
    pub submissions: Option<u64>,
    /// Per site.
    pub site: std::collections::BTreeMap<String, repro_core::Limits>,
    /// Over all sites together (a tape system or batch system they share).
    pub total: repro_core::Limits,
}

/// `[backend]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `sim`, `command` or `slurm`.
    #[serde(default = "default_kind")]
    pub kind: BackendKind,
    /// `[backend.sim]`.
    #[serde(default)]
    pub sim: SimConfig,
    /// `[backend.command]`: site tools as argv templates.
    #[serde(default)]
    pub command: CommandConfig,
    /// `[backend.slurm]`.
    #[serde(default)]
    pub slurm: SlurmConfig,
}

fn default_kind() -> BackendKind {
    BackendKind::Sim
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::Sim,
            sim: SimConfig::default(),
            command: CommandConfig::default(),
            slurm: SlurmConfig::default(),
        }
    }
}

/// The backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The deterministic simulation.
    Sim,
    /// Configured command lines for every site tool.
    Command,
    /// A Slurm cluster for reco and merge jobs.
    Slurm,
}

/// `[backend.sim]`: the simulated world.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Where every external action is appended as one JSON line, if set.
    pub journal: Option<PathBuf>,
    /// The directory where the simulated world is kept between runs (a file per dataset).
    pub world: PathBuf,
    /// Probability that one staging attempt fails.
    pub stage_failure: f64,
    /// Probability that one reco job fails.
    pub reco_failure: f64,
    /// Probability that one merge job fails.
    pub merge_failure: f64,
    /// Probability that one declaration fails.
    pub declare_failure: f64,
    /// Probability that one deletion fails.
    pub delete_failure: f64,
    /// Probability that a submitted job vanishes.
    pub lost_job: f64,
    /// Seconds until a stage request or job finishes (0: by the next check), unless one
    /// of the durations below is set.
    pub duration_s: f64,
    /// Seconds a stage request takes once the tape system serves it (unset: `duration_s`).
    pub stage_duration_s: Option<f64>,
    /// Median seconds a reco job runs once it has a batch slot (unset: `duration_s`).
    pub reco_duration_s: Option<f64>,
    /// Median seconds a merge job runs once it has a batch slot (unset: `duration_s`).
    pub merge_duration_s: Option<f64>,
    /// Spread of the job durations: the sigma of a log-normal around the median (0: every
    /// job takes the median; 0.5: a tenth of the jobs take under 0.53 of it, a tenth over
    /// 1.9 times it). Each job's duration is drawn from its name, so it is reproducible.
    pub duration_spread: f64,
    /// Batch slots of every site (and of the datasets at none): a job submitted while they
    /// are all taken waits in the queue, first come first served. Unset: no limit.
    pub slots: Option<u64>,
    /// Raw files the storage system of every site stages per hour, one after the other.
    /// Unset: no limit.
    pub stage_rate: Option<f64>,
    /// `[backend.sim.site.NAME]`: one site's capacity, replacing `slots` and `stage_rate`
    /// for it (an unset key is no limit there).
    pub site: BTreeMap<String, SimSite>,
    /// `[[backend.sim.outages]]`: services of the simulated site that are down for a while,
    /// in hours of the sim's clock (for `repro simulate`, from its start).
    pub outages: Vec<Outage>,
}

/// `[[backend.sim.outages]]`: one service of the simulated site down for a while.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// `tape` (stage requests are refused), `batch` (jobs are lost), `catalog`
    /// (declarations are refused: HTTP 503) or `storage` (deletions are refused).
    pub service: Service,
    /// When it starts, in hours of the sim's clock.
    pub from_h: f64,
    /// How long it lasts.
    pub hours: f64,
    /// For `batch`: the share of the jobs running during it that are lost (default all).
    #[serde(default = "all")]
    pub lose: f64,
}

fn all() -> f64 {
    1.0
}

/// A service of the simulated site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// The tape system: stage requests.
    Tape,
    /// The batch system: jobs.
    Batch,
    /// The catalog: declarations.
    Catalog,
    /// The storage system: deletions.
    Storage,
}

impl Outage {
    /// Whether it is on at `t` (seconds of the sim's clock).
    pub fn covers(&self, t: f64) -> bool {
        let from = self.from_h * 3600.0;
        (from..from + self.hours * 3600.0).contains(&t)
    }
}

/// `[backend.sim.site.NAME]`: the capacity of one simulated site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSite {
    /// Batch slots.
    pub slots: Option<u64>,
    /// Raw files staged per hour.
    pub stage_rate: Option<f64>,
}

impl SimConfig {
    /// Whether any site's batch slots or stage rate are limited.
    pub fn has_capacity(&self) -> bool {
        self.slots.is_some() || self.stage_rate.is_some() || !self.site.is_empty()
    }

    /// The capacity of `site` (`None`: the datasets at no site).
    pub fn capacity(&self, site: Option<&str>) -> SimSite {
        site.and_then(|s| self.site.get(s).copied())
            .unwrap_or(SimSite {
                slots: self.slots,
                stage_rate: self.stage_rate,
            })
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            journal: None,
            world: PathBuf::from("repro-sim-world"),
            stage_failure: 0.0,
            reco_failure: 0.05,
            merge_failure: 0.02,
            declare_failure: 0.0,
            delete_failure: 0.0,
            lost_job: 0.01,
            duration_s: 0.0,
            stage_duration_s: None,
            reco_duration_s: None,
            merge_duration_s: None,
            duration_spread: 0.0,
            slots: None,
            stage_rate: None,
            site: BTreeMap::new(),
            outages: Vec::new(),
        }
    }
}

/// `[backend.command]`: each external step as an argv template, run without a shell.
///
/// Placeholders: `{dataset}`, `{file}` (logical file name), `{files}` (path of a file
/// listing a merge job's inputs), `{output}` (the output file to write), `{tmb}` (a raw
/// file's TMB file), `{job}` (the job's deterministic name), `{attempt}`, `{batch_id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandConfig {
    /// Seconds a tool may run before it is killed and its attempt fails.
    pub timeout_s: u64,
    /// Tools run at once.
    pub parallel: usize,
    /// Where list files, outputs, scripts and logs go (relative to the config file).
    pub workdir: PathBuf,
    /// Ask for a raw file to be staged; exit 0 means the request is accepted. Unset: raw
    /// files are on disk already.
    pub stage: Option<Vec<String>>,
    /// Ask whether it is staged; stdout `STAGED`, `PENDING` or `FAILED [reason]`.
    pub stage_status: Option<Vec<String>>,
    /// Submit a reco job; stdout starts with the batch id.
    pub reco_submit: Option<Vec<String>>,
    /// Submit a merge job; stdout starts with the batch id.
    pub merge_submit: Option<Vec<String>>,
    /// A job's state; stdout `PENDING`, `RUNNING`, `DONE`, `FAILED [exit [reason]]` or `LOST`.
    pub job_status: Option<Vec<String>>,
    /// Look a job up by `{job}` name; stdout its batch id, or nothing if there is none.
    pub job_lookup: Option<Vec<String>>,
    /// Kill a job (`{batch_id}`, empty for a job reserved but not known to be submitted,
    /// and its `{job}` name), for `repro cancel`; exit 0 means it is gone or had ended.
    /// Unset: `repro cancel` refuses, and kills nothing.
    pub cancel: Option<Vec<String>>,
    /// Declare a merged file to the catalog. Unset: no catalog, declaring always succeeds.
    pub declare: Option<Vec<String>>,
    /// Delete a raw file's intermediates (`{file}` staged copy, `{tmb}`). Unset: nothing is deleted.
    pub delete: Option<Vec<String>>,
    /// Ask for many raw files to be staged in one call (a tape system's bulk request):
    /// `{files}` is a file listing them, one LFN a line. Exit 0 means the request is
    /// accepted; stdout may name files it refused, a line each: `LFN FAILED [reason]`.
    /// Set, it is used instead of `stage`, for up to `bulk_size` files a call.
    pub stage_bulk: Option<Vec<String>>,
    /// Ask whether many raw files are staged in one call (`{files}` as for `stage_bulk`):
    /// stdout a line per file, `LFN STAGED`, `LFN PENDING` or `LFN FAILED [reason]`; a
    /// file the answer leaves out is asked about again on the next poll.
    pub stage_status_bulk: Option<Vec<String>>,
    /// Delete many raw files' intermediates in one call: `{files}` lists them, a line
    /// each, the LFN and, after a space, its TMB file when it has one. Exit 0 means done;
    /// stdout may name files it could not delete: `LFN FAILED [reason]`.
    pub delete_bulk: Option<Vec<String>>,
    /// Files per call of a bulk step.
    pub bulk_size: usize,
    /// What the site's tools hold for `{dataset}`, as one token that changes whenever an
    /// answer of `stage_status` or `job_status` about it can (an event log's length, the
    /// time of its last change). Set, a tick leaves a dataset alone while the token and the
    /// dataset's rows stay the same; unset, every tick polls every dataset.
    pub cursor: Option<Vec<String>>,
    /// `[backend.command.errors.STEP]` (and `.all`, for every step): which failures are
    /// worth trying again, by exit code and by words in the tool's output.
    pub errors: BTreeMap<String, ErrorRules>,
}

/// Which failures of a step are worth trying again. A failure that matches none of them is
/// unknown, and retried under the policy like a transient one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRules {
    /// Exit codes that mean "try again later" (a tape system's busy code, `EX_TEMPFAIL` 75).
    pub transient_exit: Vec<i32>,
    /// Exit codes that mean "this will never work".
    pub permanent_exit: Vec<i32>,
    /// Words in the tool's output (or a failed job's reason) that mean "try again later"
    /// (`503`, `busy`).
    pub transient: Vec<String>,
    /// Words that mean "this will never work" (`No such file`).
    pub permanent: Vec<String>,
}

impl ErrorRules {
    /// What these rules say of a failure that exited `code` and said `said`: a permanent
    /// match first, then a transient one; `None` when none matches.
    pub fn class(&self, code: Option<i32>, said: &str) -> Option<repro_core::ErrorClass> {
        use repro_core::ErrorClass as C;
        let exit = |codes: &[i32]| code.is_some_and(|c| codes.contains(&c));
        let words = |words: &[String]| words.iter().any(|w| said.contains(w.as_str()));
        if exit(&self.permanent_exit) || words(&self.permanent) {
            Some(C::Permanent)
        } else if exit(&self.transient_exit) || words(&self.transient) {
            Some(C::Transient)
        } else {
            None
        }
    }
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            timeout_s: 120,
            parallel: 4,
            workdir: PathBuf::from("repro-work"),
            stage: None,
            stage_status: None,
            reco_submit: None,
            merge_submit: None,
            job_status: None,
            job_lookup: None,
            cancel: None,
            declare: None,
            delete: None,
            stage_bulk: None,
            stage_status_bulk: None,
            delete_bulk: None,
            bulk_size: 1000,
            cursor: None,
            errors: BTreeMap::new(),
        }
    }
}

/// `[backend.slurm]`: reco and merge jobs are Slurm jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// The site's reco command inside the job script: `{input}` (the staged raw file),
    /// `{output}` (the TMB file to write), `{dataset}`, `{file}`, `{attempt}`.
    pub reco_command: Vec<String>,
    /// The site's merge command: `{files}` (a file listing the TMB files), `{output}`.
    pub merge_command: Vec<String>,
    /// Where scripts, logs, TMB and merged files go (relative to the config file).
    pub workdir: PathBuf,
    /// `sbatch --partition`, if set.
    pub partition: Option<String>,
    /// `sbatch --time`, if set (e.g. `"2:00:00"`).
    pub time_limit: Option<String>,
    /// More `sbatch` arguments, as given.
    pub sbatch_args: Vec<String>,
    /// When raw files need no staging (`true`): staging checks that `{file}` exists,
    /// declaring appends to `catalog`, deleting removes TMB files. Otherwise the
    /// `[backend.command]` steps stage, declare and delete.
    pub local_files: bool,
    /// The local catalog of declared merged files, one name a line.
    pub catalog: PathBuf,
    /// Seconds a Slurm command may take.
    pub timeout_s: u64,
    /// Slurm commands run at once.
    pub parallel: usize,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            reco_command: Vec::new(),
            merge_command: Vec::new(),
            workdir: PathBuf::from("repro-work"),
            partition: None,
            time_limit: None,
            sbatch_args: Vec::new(),
            local_files: true,
            catalog: PathBuf::from("repro-work/catalog.txt"),
            timeout_s: 60,
            parallel: 4,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Attempts per step.
    pub max_attempts: u32,
    /// TMB files per merge group.
    pub merge_group_files: u32,
    /// TMB bytes per merge group.
    pub merge_group_bytes: Option<u64>,
    /// Merge reco-PARTIAL datasets automatically.
    pub merge_partial: bool,
    /// `[policy.retry]`: how failed attempts wait before they are tried again.
    pub retry: RetryConfig,
    /// `[policy.outage]`: when a step failing as a whole is an outage of its service.
    pub outage: OutageConfig,
}

/// `[policy.outage]`: a step whose every outcome in one run failed transiently, at least
/// `failures` times, waits as a whole, spending no attempts: `first_delay_s`, doubling at
/// each failed try up to `max_delay_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutageConfig {
    /// Transient failures of one step in one run, with no success, that make an outage;
    /// 0: never.
    pub failures: u32,
    /// Seconds from the outage's first sight to its next try.
    pub first_delay_s: u64,
    /// The longest wait between tries.
    pub max_delay_s: u64,
}

impl Default for OutageConfig {
    fn default() -> Self {
        let b = repro_core::outage::Breaker::default();
        OutageConfig {
            failures: b.failures,
            first_delay_s: b.first_delay_s,
            max_delay_s: b.max_delay_s,
        }
    }
}

/// `[policy.retry]`: the backoff of every phase, and `[policy.retry.PHASE]` tables with a
/// phase's own values (any key left out is the one above).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Seconds from a step's first failure to its next attempt (0: the next run).
    pub first_delay_s: Option<u64>,
    /// Each further failure multiplies the delay by this.
    pub factor: Option<u32>,
    /// The longest delay.
    pub max_delay_s: Option<u64>,
    /// Each delay is this many percent longer or shorter, spread over files.
    pub jitter_percent: Option<u32>,
    /// Seconds a failing step is retried after its first failure, even with its
    /// attempts spent (0: the attempts alone decide).
    pub window_s: Option<u64>,
    /// Prestage's own values.
    pub prestage: BackoffConfig,
    /// Reco's own values.
    pub reco: BackoffConfig,
    /// Merging's and declaring's own values.
    pub merge: BackoffConfig,
    /// Cleanup's own values.
    pub cleanup: BackoffConfig,
}

/// `[policy.retry.PHASE]`: a phase's own backoff values; unset keys are `[policy.retry]`'s.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// Attempts per step of this phase (else `[policy] max_attempts`).
    pub attempts: Option<u32>,
    /// As in `[policy.retry]`.
    pub first_delay_s: Option<u64>,
    /// As in `[policy.retry]`.
    pub factor: Option<u32>,
    /// As in `[policy.retry]`.
    pub max_delay_s: Option<u64>,
    /// As in `[policy.retry]`.
    pub jitter_percent: Option<u32>,
    /// As in `[policy.retry]`.
    pub window_s: Option<u64>,
}

impl BackoffConfig {
    /// These values over `base`.
    fn over(&self, base: Backoff) -> Backoff {
        Backoff {
            attempts: self.attempts.or(base.attempts),
            first_delay_s: self.first_delay_s.unwrap_or(base.first_delay_s),
            factor: self.factor.unwrap_or(base.factor),
            max_delay_s: self.max_delay_s.unwrap_or(base.max_delay_s),
            jitter_percent: self.jitter_percent.unwrap_or(base.jitter_percent),
            window_s: self.window_s.unwrap_or(base.window_s),
        }
    }

    fn is_empty(&self) -> bool {
        self.attempts.is_none()
            && self.first_delay_s.is_none()
            && self.factor.is_none()
            && self.max_delay_s.is_none()
            && self.jitter_percent.is_none()
            && self.window_s.is_none()
    }
}

impl RetryConfig {
    /// The backoffs these tables give.
    fn backoffs(&self) -> Backoffs {
        let all = BackoffConfig {
            attempts: None,
            first_delay_s: self.first_delay_s,
            factor: self.factor,
            max_delay_s: self.max_delay_s,
            jitter_percent: self.jitter_percent,
            window_s: self.window_s,
        }
        .over(Backoff::default());
        let section = |p: Phase| match p {
            Phase::Prestage => &self.prestage,
            Phase::Reco => &self.reco,
            Phase::Merge => &self.merge,
            Phase::Cleanup => &self.cleanup,
        };
        let phase = Phase::ALL
            .iter()
            .map(|p| (*p, section(*p)))
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, c)| (p, c.over(all)))
            .collect();
        Backoffs { all, phase }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let p = Policy::default();
        PolicyConfig {
            max_attempts: p.max_attempts,
            merge_group_files: p.merge_group_files,
            merge_group_bytes: p.merge_group_bytes,
            merge_partial: p.merge_partial,
            retry: RetryConfig::default(),
            outage: OutageConfig::default(),
        }
    }
}

/// Seconds a lease lasts unless renewed: well under any cron interval, since a live holder
/// renews it every third of that while it works.
pub const DEFAULT_LEASE_TTL_S: u64 = 120;

/// `[lease]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseConfig {
    /// Seconds a claim on a dataset lasts unless its holder renews it (every third of it,
    /// while it works). A holder on this host that died is taken over at once; one on
    /// another host, after this long.
    pub ttl_s: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl_s: DEFAULT_LEASE_TTL_S,
        }
    }
}

/// Datasets one run works on at once, unless configured: one per core this process may
/// use, at least 2 and at most 4. Each worker holds one dataset's view and its backend
/// call's data at a time, so more workers than cores only add memory: on a 2-core machine
/// the 1,000,000-file demo took 296 s with 4 workers and 298 s with 2, at 468 and 312 MiB
/// (bench/LOG.md).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

/// `[run]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Datasets one `repro` run works on at once, each under its own lease and in its own
    /// transactions (1: one after the other). On SQLite the writes still take turns; the
    /// deciding, polling and reading overlap.
    pub workers: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            workers: default_workers(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A value out of range.
    #[error("config {path}: key `{key}` = {value}: {why}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key, dotted.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
}

/// Values out of range in the file at a path, named by their key.
struct Bad<'a>(&'a Path);

impl Bad<'_> {
    fn at(&self, key: &str, value: String, why: &str) -> ConfigError {
        ConfigError::Value {
            path: self.0.to_owned(),
            key: key.to_owned(),
            value,
            why: why.to_owned(),
        }
    }
}

impl Config {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (read from `path`, for messages) and checks every value.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = Bad(path);
        self.check_sim(&bad)?;
        self.check_templates(path)?;
        self.check_backend(&bad)?;
        self.check_run(&bad)?;
        self.check_limits(&bad)
    }

    /// `[backend.sim]`: probabilities, durations, spread, outages, sites' capacity.
    fn check_sim(&self, b: &Bad<'_>) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| b.at(key, value, why);
        let s = &self.backend.sim;
        for (key, p) in [
            ("backend.sim.stage_failure", s.stage_failure),
            ("backend.sim.reco_failure", s.reco_failure),
            ("backend.sim.merge_failure", s.merge_failure),
            ("backend.sim.declare_failure", s.declare_failure),
            ("backend.sim.delete_failure", s.delete_failure),
            ("backend.sim.lost_job", s.lost_job),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(key, p.to_string(), "a probability is between 0 and 1"));
            }
        }
        for (key, d) in [
            ("backend.sim.duration_s", Some(s.duration_s)),
            ("backend.sim.stage_duration_s", s.stage_duration_s),
            ("backend.sim.reco_duration_s", s.reco_duration_s),
            ("backend.sim.merge_duration_s", s.merge_duration_s),
        ] {
            if let Some(d) = d
                && !(d.is_finite() && d >= 0.0)
            {
                return Err(bad(key, d.to_string(), "a duration is at least 0 seconds"));
            }
        }
        if !(0.0..=3.0).contains(&s.duration_spread) {
            return Err(bad(
                "backend.sim.duration_spread",
                s.duration_spread.to_string(),
                "a spread is between 0 (none) and 3",
            ));
        }
        let sites = std::iter::once(("backend.sim".to_owned(), s.capacity(None))).chain(
            s.site
                .iter()
                .map(|(name, c)| (format!("backend.sim.site.{name}"), *c)),
        );
        self.check_outages(b)?;
        for (table, c) in sites {
            if c.slots == Some(0) {
                return Err(bad(
                    &format!("{table}.slots"),
                    "0".into(),
                    "a site needs at least one batch slot (leave it unset for no limit)",
                ));
            }
            if let Some(r) = c.stage_rate
                && !(r.is_finite() && r > 0.0)
            {
                return Err(bad(
                    &format!("{table}.stage_rate"),
                    r.to_string(),
                    "a stage rate is more than 0 files an hour (leave it unset for no limit)",
                ));
            }
        }
        Ok(())
    }

    /// `[[backend.sim.outages]]`: on the sim's clock, lasting, a share.
    fn check_outages(&self, b: &Bad<'_>) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| b.at(key, value, why);
        for (i, o) in self.backend.sim.outages.iter().enumerate() {
            let key = |k: &str| format!("backend.sim.outages[{i}].{k}");
            if !(o.from_h.is_finite() && o.from_h >= 0.0) {
                return Err(bad(
                    &key("from_h"),
                    o.from_h.to_string(),
                    "an hour of the sim's clock, at least 0",
                ));
            }
            if !(o.hours.is_finite() && o.hours > 0.0) {
                return Err(bad(
                    &key("hours"),
                    o.hours.to_string(),
                    "an outage lasts more than 0 hours",
                ));
            }
            if !(0.0..=1.0).contains(&o.lose) {
                return Err(bad(
                    &key("lose"),
                    o.lose.to_string(),
                    "a share is between 0 and 1",
                ));
            }
        }
        Ok(())
    }

    /// `[backend.command]`: the steps it needs, and no empty one.
    fn check_command(&self, b: &Bad<'_>) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| b.at(key, value, why);
        let c = &self.backend.command;
        for (key, v) in [
            ("backend.command.reco_submit", &c.reco_submit),
            ("backend.command.merge_submit", &c.merge_submit),
            ("backend.command.job_status", &c.job_status),
        ] {
            if v.as_ref().is_none_or(Vec::is_empty) {
                return Err(bad(
                    key,
                    "unset".into(),
                    "the command backend needs this step",
                ));
            }
        }
        for (key, v) in [
            ("backend.command.stage", &c.stage),
            ("backend.command.stage_status", &c.stage_status),
            ("backend.command.job_lookup", &c.job_lookup),
            ("backend.command.cancel", &c.cancel),
            ("backend.command.declare", &c.declare),
            ("backend.command.delete", &c.delete),
            ("backend.command.stage_bulk", &c.stage_bulk),
            ("backend.command.stage_status_bulk", &c.stage_status_bulk),
            ("backend.command.delete_bulk", &c.delete_bulk),
            ("backend.command.cursor", &c.cursor),
        ] {
            if v.as_ref().is_some_and(Vec::is_empty) {
                return Err(bad(
                    key,
                    "[]".into(),
                    "a step is a command and its arguments (leave it unset for none)",
                ));
            }
        }
        let stages = c.stage.is_some() || c.stage_bulk.is_some();
        if stages != (c.stage_status.is_some() || c.stage_status_bulk.is_some()) {
            return Err(bad(
                "backend.command.stage_status",
                "unset".into(),
                "stage (or stage_bulk) and stage_status (or stage_status_bulk) go together",
            ));
        }
        if c.bulk_size == 0 {
            return Err(bad(
                "backend.command.bulk_size",
                "0".into(),
                "a bulk call is for at least one file",
            ));
        }
        Ok(())
    }

    /// The chosen backend's steps, and every backend's timeouts and parallelism.
    fn check_backend(&self, b: &Bad<'_>) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| b.at(key, value, why);
        match self.backend.kind {
            BackendKind::Command => self.check_command(b)?,
            BackendKind::Slurm => {
                let s = &self.backend.slurm;
                if s.reco_command.is_empty() {
                    return Err(bad(
                        "backend.slurm.reco_command",
                        "[]".into(),
                        "the site's reco command is needed",
                    ));
                }
                if s.merge_command.is_empty() {
                    return Err(bad(
                        "backend.slurm.merge_command",
                        "[]".into(),
                        "the site's merge command is needed",
                    ));
                }
            }
            BackendKind::Sim => {}
        }
        for (key, t, p) in [
            (
                "backend.command",
                self.backend.command.timeout_s,
                self.backend.command.parallel,
            ),
            (
                "backend.slurm",
                self.backend.slurm.timeout_s,
                self.backend.slurm.parallel,
            ),
        ] {
            if t == 0 {
                return Err(bad(
                    &format!("{key}.timeout_s"),
                    "0".into(),
                    "a tool needs at least a second",
                ));
            }
            if p == 0 {
                return Err(bad(
                    &format!("{key}.parallel"),
                    "0".into(),
                    "at least one tool must run at a time",
                ));
            }
        }
        Ok(())
    }

    /// Alerts, workers, leases, weights and the policy.
    fn check_run(&self, b: &Bad<'_>) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| b.at(key, value, why);
        if self.alerts.command.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad(
                "alerts.command",
                "[]".into(),
                "a command and its arguments (leave it unset for none)",
            ));
        }
        if self.alerts.timeout_s == 0 {
            return Err(bad(
                "alerts.timeout_s",
                "0".into(),
                "a command needs at least a second",
            ));
        }
        if !(1..=64).contains(&self.run.workers) {
            return Err(bad(
                "run.workers",
                self.run.workers.to_string(),
                "between 1 and 64 datasets at once",
            ));
        }
        if self.lease.ttl_s == 0 {
            return Err(bad(
                "lease.ttl_s",
                "0".into(),
                "a lease must last at least a second",
            ));
        }
        for (name, w) in &self.weights {
            if let Err(e) = repro_core::SampleName::new(name) {
                return Err(bad(
                    &format!("weights.{name}"),
                    w.to_string(),
                    &e.to_string(),
                ));
            }
            if *w == 0 {
                return Err(bad(
                    &format!("weights.{name}"),
                    "0".into(),
                    "a weight is at least 1 (lock the sample's datasets to pause them)",
                ));
            }
        }
        self.policy()
            .validate()
            .map_err(|e| bad(&format!("policy.{}", e.key), e.value, e.why))?;
        Ok(())
    }

    /// No limit of 0: it would stop its work for good.
    fn check_limits(&self, b: &Bad<'_>) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| b.at(key, value, why);
        let limits = self.limits();
        let tables = std::iter::once(("limits".to_owned(), limits.default)).chain(
            limits
                .sites
                .iter()
                .map(|(s, l)| (format!("limits.site.{s}"), *l))
                .chain(std::iter::once(("limits.total".to_owned(), limits.total))),
        );
        for (table, l) in tables {
            for (key, v) in [
                ("stage_requests", l.stage_requests),
                ("disk_bytes", l.disk_bytes),
                ("reco_jobs", l.reco_jobs),
                ("merge_jobs", l.merge_jobs),
                ("submissions", l.submissions),
            ] {
                if v == Some(0) {
                    return Err(bad(
                        &format!("{table}.{key}"),
                        "0".into(),
                        "0 would stop that work for good; leave the key out for no limit, or lock the datasets to pause them",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every configured step's template asks only for placeholders its step fills, and
    /// error rules are for `all` or a step of the command backend.
    fn check_templates(&self, path: &Path) -> Result<(), ConfigError> {
        let steps: Vec<&str> = Step::ALL
            .iter()
            .filter(|s| s.key().starts_with("backend.command."))
            .map(|s| s.name())
            .collect();
        for (name, rules) in &self.backend.command.errors {
            if name != "all" && !steps.contains(&name.as_str()) {
                return Err(ConfigError::Value {
                    path: path.to_owned(),
                    key: format!("backend.command.errors.{name}"),
                    value: format!("{rules:?}"),
                    why: format!(
                        "not a step; rules are for `all` or one of {}",
                        steps.join(", ")
                    ),
                });
            }
        }
        let (command, slurm) = (&self.backend.command, &self.backend.slurm);
        for &step in Step::ALL {
            let Some(t) = step.template(command, slurm) else {
                continue;
            };
            if let Some((value, why)) = step.unfilled(t) {
                return Err(ConfigError::Value {
                    path: path.to_owned(),
                    key: step.key().to_owned(),
                    value,
                    why,
                });
            }
        }
        Ok(())
    }

    /// The samples' weights (names are checked when the file is read).
    pub fn weights(&self) -> repro_core::fair::Weights {
        self.weights
            .iter()
            .filter_map(|(n, w)| Some((repro_core::SampleName::new(n).ok()?, *w)))
            .collect()
    }

    /// The limits per site.
    pub fn limits(&self) -> repro_core::SiteLimits {
        let l = &self.limits;
        repro_core::SiteLimits {
            default: repro_core::Limits {
                stage_requests: l.stage_requests,
                disk_bytes: l.disk_bytes,
                reco_jobs: l.reco_jobs,
                merge_jobs: l.merge_jobs,
                submissions: l.submissions,
            },
            sites: l.site.clone(),
            total: l.total,
        }
    }

    /// The core's policy.
    pub fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.policy.max_attempts,
            merge_group_files: self.policy.merge_group_files,
            merge_group_bytes: self.policy.merge_group_bytes,
            merge_partial: self.policy.merge_partial,
            retry: self.policy.retry.backoffs(),
            outage: repro_core::outage::Breaker {
                failures: self.policy.outage.failures,
                first_delay_s: self.policy.outage.first_delay_s,
                max_delay_s: self.policy.outage.max_delay_s,
            },
        }
    }

    /// Makes relative paths in the file relative to the directory it is in.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.backend.command.workdir,
            &mut self.backend.slurm.workdir,
            &mut self.backend.slurm.catalog,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let s = &mut self.backend.sim;
        if s.world.is_relative() {
            s.world = base.join(&s.world);
        }
        if let Some(j) = &mut s.journal
            && j.is_relative()
        {
            *j = base.join(&*j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("repro.toml"))
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(
            r#"
[backend]
kind = "sim"
[backend.sim]
seed = 42
journal = "sim-journal.jsonl"
stage_failure = 0.0
reco_failure = 0.05
merge_failure = 0.02
declare_failure = 0.0
delete_failure = 0.0
lost_job = 0.01
duration_s = 0
[policy]
max_attempts = 3
merge_group_files = 50
"#,
        )
        .unwrap();
        assert_eq!(c.backend.sim.reco_failure, 0.05);
        assert_eq!(c.policy().merge_group_files, 50);
    }

    #[test]
    fn unknown_keys_wrong_types_and_impossible_values_name_the_key() {
        let e = parse("[backend.sim]\nreco_failur = 0.1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `reco_failur`"), "{e}");
        let e = parse("[policy]\nmax_attempts = \"three\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_attempts") && e.contains("line 2"), "{e}");
        let e = parse("[backend.sim]\nreco_failure = 1.5\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "config repro.toml: key `backend.sim.reco_failure` = 1.5: a probability is between 0 and 1"
        );
        let e = parse("[policy]\nmax_attempts = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `policy.max_attempts` = 0"), "{e}");
        let e = parse("[backend]\nkind = \"condor\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `condor`"), "{e}");
    }

    #[test]
    fn bulk_steps_are_checked_like_the_others() {
        let command = "[backend]\nkind = \"command\"\n[backend.command]\n\
                       reco_submit = [\"s\"]\nmerge_submit = [\"s\"]\njob_status = [\"q\"]\n";
        let ok = parse(&format!(
            "{command}stage_bulk = [\"bring\", \"{{files}}\"]\nstage_status_bulk = [\"ask\", \"{{files}}\"]\n"
        ))
        .unwrap();
        assert_eq!(ok.backend.command.bulk_size, 1000);
        let e = parse(&format!(
            "{command}stage_bulk = [\"bring\", \"{{files}}\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("stage_status") && e.contains("go together"),
            "{e}"
        );
        let e = parse(&format!("{command}delete_bulk = [\"rm\", \"{{file}}\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("backend.command.delete_bulk") && e.contains("{file}"),
            "{e}"
        );
        let e = parse(&format!("{command}bulk_size = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `backend.command.bulk_size` = 0"), "{e}");
    }

    #[test]
    fn retry_backoffs_are_per_phase_over_one_for_all() {
        let c = parse(
            "[policy]\nmax_attempts = 4\n[policy.retry]\nfirst_delay_s = 60\nwindow_s = 3600\n\
             [policy.retry.merge]\nattempts = 6\nwindow_s = 7200\n",
        )
        .unwrap();
        let p = c.policy();
        let (reco, merge) = (p.retry.of(Phase::Reco), p.retry.of(Phase::Merge));
        assert_eq!((reco.first_delay_s, reco.window_s), (60, 3600));
        assert_eq!(
            (merge.first_delay_s, merge.window_s),
            (60, 7200),
            "the rest inherited"
        );
        assert_eq!((p.attempts(Phase::Reco), p.attempts(Phase::Merge)), (4, 6));
        let e = parse("[policy.retry.reco]\njitter_percent = 150\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `policy.retry.reco.jitter_percent` = 150"),
            "{e}"
        );
        let e = parse("[policy.retry.tape]\nwindow_s = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `tape`"), "{e}");
        let e = parse("[[backend.sim.outages]]\nservice = \"tape\"\nfrom_h = 1\nhours = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `backend.sim.outages[0].hours` = 0"), "{e}");
        let e = parse("[[backend.sim.outages]]\nservice = \"dns\"\nfrom_h = 1\nhours = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `dns`"), "{e}");
    }

    #[test]
    fn a_placeholder_a_step_does_not_fill_is_refused_naming_key_and_placeholder() {
        let e = parse(
            "[backend]\nkind = \"command\"\n[backend.command]\n\
             reco_submit = [\"sub\", \"{file}\", \"{ouptut}\"]\n\
             merge_submit = [\"sub\", \"{files}\"]\njob_status = [\"st\", \"{batch_id}\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("config repro.toml: key `backend.command.reco_submit` = {ouptut}: "),
            "{e}"
        );
        assert!(
            e.contains("{output}"),
            "the message lists what the step has: {e}"
        );
        // A Slurm template is checked too, whichever backend is chosen.
        let e = parse("[backend.slurm]\nmerge_command = [\"hadd\", \"{input}\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`backend.slurm.merge_command` = {input}"), "{e}");
    }

    #[test]
    fn a_simulated_site_needs_a_slot_a_positive_rate_and_a_sane_spread() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            err("[backend.sim]\nslots = 0\n"),
            "config repro.toml: key `backend.sim.slots` = 0: a site needs at least one batch slot (leave it unset for no limit)"
        );
        let e = err("[backend.sim.site.fnal]\nstage_rate = -3.0\n");
        assert!(
            e.contains("key `backend.sim.site.fnal.stage_rate` = -3"),
            "{e}"
        );
        let e = err("[backend.sim]\nduration_spread = 5.0\n");
        assert!(e.contains("`backend.sim.duration_spread` = 5"), "{e}");
        let e = err("[backend.sim]\nreco_duration_s = -1.0\n");
        assert!(e.contains("`backend.sim.reco_duration_s` = -1"), "{e}");
        let e = err("[backend.sim.site.fnal]\nslot = 3\n");
        assert!(e.contains("unknown field `slot`"), "{e}");
        let c = parse("[backend.sim]\nslots = 10\n[backend.sim.site.fnal]\nstage_rate = 50.0\n")
            .unwrap();
        let sim = &c.backend.sim;
        assert!(sim.has_capacity());
        assert_eq!(
            (sim.capacity(None).slots, sim.capacity(Some("cern")).slots),
            (Some(10), Some(10))
        );
        // A site's own table replaces the defaults: its unset slots are no limit.
        assert_eq!(
            sim.capacity(Some("fnal")),
            SimSite {
                slots: None,
                stage_rate: Some(50.0)
            }
        );
        assert!(!SimConfig::default().has_capacity());
    }
}
