//! The drivers: each of the predecessor scripts' operations on one dataset, under a lease, as
//! load -> decide (core) -> write (store) -> act (backend) -> record.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use repro_core::outage::{self, Outage};
use repro_core::plan::polls;
use repro_core::retry;
use repro_core::{
    Change, DatasetName, DatasetView, ErrorClass, Outcome, Phase, Plan, Policy, RecoOutcome,
    StageKind, Transition, Usage,
};
use repro_db::{DbError, ListFilter, Revision, Stamp, Store};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::attention;
use crate::backend::Backend;
use crate::cache::ViewCache;
use crate::error::{Error, ErrorKind, Result};
use crate::ledger::{Ledger, Planned, Turn, Turns};
use repro_core::fair::{Claim, Weights};

/// One of the predecessor scripts' operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Stage raw files.
    Prestage,
    /// Submit reco jobs.
    Reconstruct,
    /// Submit merge jobs: for reco-COMPLETED datasets, or reco-PARTIAL ones with `partial`.
    Merge {
        /// The predecessor scripts' merge_partial.
        partial: bool,
    },
    /// Declare merged files.
    Dbup,
    /// Delete intermediate files.
    Cleanup,
    /// Poll and record, then retry and finish running phases.
    Check,
    /// Everything.
    Tick,
}

impl Op {
    /// Every operation, as the command line has them.
    pub const ALL: &'static [Op] = &[
        Op::Prestage,
        Op::Reconstruct,
        Op::Merge { partial: false },
        Op::Merge { partial: true },
        Op::Dbup,
        Op::Cleanup,
        Op::Check,
        Op::Tick,
    ];

    /// The stages this operation works at.
    pub fn works_at(self, kind: StageKind) -> bool {
        use StageKind as K;
        match self {
            Op::Prestage => matches!(kind, K::PrestageNotDone | K::PrestageRunning),
            Op::Reconstruct => matches!(kind, K::RecoNotDone | K::RecoRunning),
            Op::Merge { .. } => matches!(kind, K::MergeNotDone | K::MergeRunning),
            Op::Dbup => kind == K::MergeDone,
            Op::Cleanup => kind == K::CleanupNotDone,
            Op::Check => matches!(kind, K::PrestageRunning | K::RecoRunning | K::MergeRunning),
            Op::Tick => true,
        }
    }

    /// The operation as the command line names it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Prestage => "prestage",
            Op::Reconstruct => "reconstruct",
            Op::Merge { partial: false } => "merge",
            Op::Merge { partial: true } => "merge --partial",
            Op::Dbup => "dbup",
            Op::Cleanup => "cleanup",
            Op::Check => "check",
            Op::Tick => "tick",
        }
    }

    /// When this operation applies, in the predecessor scripts' words.
    pub fn when(self) -> &'static str {
        match self {
            Op::Prestage => "while prestage is NOT DONE or RUNNING",
            Op::Reconstruct => "when prestage is PRESTAGE and reco is NOT DONE or RUNNING",
            Op::Merge { partial: false } => {
                "when reco is COMPLETED and merge is NOT DONE or RUNNING"
            }
            Op::Merge { partial: true } => "when reco is PARTIAL and merge is NOT DONE or RUNNING",
            Op::Dbup => "when merge is MERGED or PARTIAL (merged files to declare)",
            Op::Cleanup => "when merge is MERGED_DBUP and cleanup is NOT DONE",
            Op::Check | Op::Tick => "on any unlocked dataset",
        }
    }

    /// Whether the operation has anything to do with a dataset at this state. A check
    /// polls whatever is out at any stage (declarations and deletions too), so it always
    /// applies; so does a tick.
    pub fn applies(self, view: &DatasetView) -> bool {
        matches!(self, Op::Check | Op::Tick)
            || (self.works_at(view.status.state.kind())
                && self.policy(&Policy::default(), view).is_some())
    }

    /// Whether this operation polls the outside world first.
    pub fn polls(self) -> bool {
        matches!(self, Op::Check | Op::Tick)
    }

    /// The policy as this operation applies it.
    pub fn policy(self, base: &Policy, view: &DatasetView) -> Option<Policy> {
        let mut p = base.clone();
        if let Op::Merge { partial } = self {
            let outcome = view.status.state.reco_outcome();
            if view.status.state.kind() == StageKind::MergeNotDone {
                // `merge` takes COMPLETED datasets, `merge --partial` PARTIAL ones.
                let wanted = if partial {
                    RecoOutcome::Partial
                } else {
                    RecoOutcome::Completed
                };
                if outcome != Some(wanted) {
                    return None;
                }
                p.merge_partial = true;
            }
        }
        Some(p)
    }
}

/// What an operation did to one dataset.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The dataset.
    pub name: String,
    /// Dataset transitions taken.
    pub transitions: Vec<Transition>,
    /// External actions performed.
    pub actions: usize,
    /// Outcomes recorded (from actions and polls).
    pub outcomes: usize,
    /// Why nothing was done, when it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Left alone without loading it: nothing was written to it and its backend's cursor
    /// did not move since a tick found nothing to do (see [`Backend::cursor`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub settled: bool,
    /// Work that waits for budget ("waiting: 1,200 files for stage requests").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// What newly needs a person after this run, each with the command that fixes it: a
    /// phase that went `FAILED`, files or merge groups that failed for good.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    /// Steps whose service this run found out (an outage opened or still on) or back, one
    /// line each: they wait as a whole, spending no attempts, and clear by themselves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<String>,
}

/// What in `changes`, just written to `view`, newly needs a person: a phase that failed
/// (with the error that made it fail), raw files and merge groups that failed for good.
fn alerts(view: &DatasetView, changes: &[Change]) -> Vec<Alert> {
    use repro_core::file::FileEvent;
    use repro_core::view::GroupEvent;
    let name = &view.name;
    let mut out = Vec::new();
    let failed = changes.iter().find_map(|c| match c {
        Change::Dataset(m) if m.to().state.kind().is_failed() => Some(m.to().state.phase()),
        _ => None,
    });
    if failed.is_some() {
        let line = attention::needs_a_person(view, u64::MAX).into_iter().next();
        out.extend(line.map(|l| Alert::new(name, l)));
    }
    let given_up = changes.iter().filter_map(|c| match c {
        Change::File {
            id,
            event: FileEvent::GiveUp,
            ..
        } => view.files.get(id),
        _ => None,
    });
    // A failed prestage or reco phase's line names its files already.
    if !matches!(failed, Some(Phase::Prestage | Phase::Reco))
        && let Some(what) = attention::lost_files(given_up)
    {
        out.push(Alert::new(
            name,
            format!("{what}; {}", attention::lost_answer(name)),
        ));
    }
    let groups = changes
        .iter()
        .filter(|c| {
            matches!(
                c,
                Change::Group {
                    event: GroupEvent::GiveUp,
                    ..
                }
            )
        })
        .count();
    if groups > 0 && failed.is_none() {
        out.push(Alert::new(
            name,
            format!(
                "{} failed for good; `repro retry {name}` gives them fresh attempts",
                repro_core::words::count(groups as u64, "merge group")
            ),
        ));
    }
    out
}

/// Something that newly needs a person, with the command that answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The dataset.
    pub dataset: String,
    /// What needs a person, and the command that answers it.
    pub text: String,
    /// The class of the last error it names (`unknown` when none is named).
    pub class: ErrorClass,
}

impl Alert {
    fn new(dataset: &DatasetName, text: String) -> Self {
        // Every line names its last error as `(last: ERROR)`, ERROR as stored.
        let class = text
            .split_once("(last: ")
            .map(|(_, last)| ErrorClass::of_stored(last))
            .unwrap_or_default();
        Alert {
            dataset: dataset.to_string(),
            text,
            class,
        }
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.dataset, self.text)
    }
}

/// Runs operations on datasets of one store through one backend.
///
/// ```no_run
/// # async fn f(store: repro_db::Store, backend: &dyn repro_run::Backend) -> repro_run::Result<()> {
/// use repro_run::{Driver, Op};
/// let names = repro_run::targets(&store, &repro_run::Scope::default()).await?;
/// let run = Driver::new(&store, backend).run_many(Op::Tick, &names, true).await;
/// for (name, e) in &run.errors {
///     eprintln!("{name}: {e}");
/// }
/// # Ok(()) }
/// ```
pub struct Driver<'a> {
    /// The database (for `repro simulate`, its scratch copy).
    pub store: &'a Store,
    /// The outside world.
    pub backend: &'a dyn Backend,
    /// Retry and grouping rules.
    pub policy: Policy,
    /// Who acts, for the history.
    pub actor: String,
    /// Who holds leases: host and process.
    pub owner: String,
    /// How long a lease lasts.
    pub lease_ttl: Duration,
    /// Datasets [`Driver::run_many`] works on at once.
    pub workers: usize,
    /// What is left of each site's budget and of the total in this run, taken by the
    /// datasets in the order they are planned.
    ledger: Ledger,
    /// Views kept between runs, if this process keeps them.
    cache: Option<&'a ViewCache>,
}

/// The run from each dataset's result. With `tolerant` (`--all`, cron), a dataset held
/// by another process, locked by an operator, at a stage the operation does not serve or
/// lost to a race is skipped with a report saying so, not an error.
fn collect(results: Vec<(&DatasetName, Result<Report>)>, tolerant: bool) -> Run {
    let mut run = Run::default();
    for (n, result) in results {
        let skip = |e: &Error| Report {
            name: n.to_string(),
            skipped: Some(e.to_string()),
            ..Report::default()
        };
        match result {
            Ok(r) => run.reports.push(r),
            Err(e @ (Error::NotNow { .. } | Error::Locked { .. })) if tolerant => {
                debug!(dataset = %n, "skipped: {e}");
                run.reports.push(skip(&e));
            }
            Err(e) if tolerant && e.kind() == ErrorKind::Conflict => {
                info!(dataset = %n, "skipped: {e}");
                run.reports.push(skip(&e));
            }
            Err(e) => run.errors.push((n.clone(), e)),
        }
    }
    run
}

/// What [`Driver::run_many`] did: a report per dataset it worked on, an error per dataset
/// it could not.
#[derive(Debug, Default)]
#[must_use = "a run's errors are in it: look at `errors` or `worst()`"]
pub struct Run {
    /// Datasets worked on (or skipped, with the reason).
    pub reports: Vec<Report>,
    /// Datasets that failed, with why.
    pub errors: Vec<(DatasetName, Error)>,
}

impl Run {
    /// The error that matters most for an exit status: anything else before bad input,
    /// before a refusal, before a lost race.
    pub fn worst(&self) -> Option<&Error> {
        let rank = |e: &Error| match e.kind() {
            ErrorKind::Other => 4,
            ErrorKind::Input => 3,
            ErrorKind::Refused => 2,
            ErrorKind::Conflict => 1,
        };
        self.errors.iter().map(|(_, e)| e).max_by_key(|e| rank(e))
    }
}

/// Whether the runtime this runs on has worker threads (`block_in_place` needs them).
fn multi_threaded() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// The actor recorded in the history: `REPRO_ACTOR`, else the login name, else `repro`.
pub fn default_actor() -> String {
    ["REPRO_ACTOR", "USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "repro".into())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`, field 22), or
/// `None` if there is no such process.
fn started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after its last `)`
    // start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The lease owner of this process: `HOST:PID:START`, where START tells this process from a
/// later one that reuses its PID.
pub fn default_owner() -> String {
    let pid = std::process::id();
    let start = started(pid).unwrap_or(0);
    format!("{}:{pid}:{start}", hostname())
}

/// Whether the lease holder `holder` (as [`default_owner`] names it) is provably gone: a
/// process of this host that no longer exists, or whose PID now belongs to a process that
/// started later. A holder on another host, or named some other way, is never provably
/// gone: its lease is waited out.
pub fn holder_is_gone(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(start), Ok(pid)) = (start.parse::<u64>(), pid.parse::<u32>()) else {
        return false;
    };
    if host != hostname() || pid == std::process::id() {
        return false;
    }
    started(pid) != Some(start)
}

/// Which datasets an `--all` operation works on: every one, or those of a site, a sample
/// or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only datasets of this site.
    pub site: Option<String>,
    /// Only datasets of this sample.
    pub sample: Option<repro_core::SampleName>,
}

/// The datasets an `--all` operation works on: every one of `scope` not at rest, in the
/// order in which a run gives them work ([`run_order`], every sample weighing 1).
pub async fn targets(store: &Store, scope: &Scope) -> Result<Vec<DatasetName>> {
    targets_weighted(store, scope, &Weights::new()).await
}

/// [`targets`], with the samples weighted by `weights` (`[weights]` in the configuration).
pub async fn targets_weighted(
    store: &Store,
    scope: &Scope,
    weights: &Weights,
) -> Result<Vec<DatasetName>> {
    let list = store
        .list(&ListFilter {
            active_only: true,
            site: scope.site.clone(),
            sample: scope.sample.clone(),
            by_priority: true,
            ..ListFilter::default()
        })
        .await?;
    Ok(run_order(&list, weights))
}

/// The names of `list` (as [`Store::list`] gives them `by_priority`: highest priority
/// first, then the oldest) in the order a run gives them work: highest priority first;
/// within a priority, the sample with the fewest files in flight (staging or in a reco
/// job) per unit of weight first, so that one big sample does not starve the others; then
/// the oldest. See [`repro_core::fair`].
pub fn run_order(list: &[repro_db::DatasetSummary], weights: &Weights) -> Vec<DatasetName> {
    use repro_core::FileState;
    let claims: Vec<Claim<'_>> = list
        .iter()
        .map(|d| Claim {
            priority: d.priority,
            sample: d.sample.as_ref(),
            in_flight: d.files.get(FileState::Staging) + d.files.get(FileState::RecoSubmitted),
        })
        .collect();
    repro_core::fair::run_order(&claims, weights)
        .into_iter()
        .map(|i| list[i].name.clone())
        .collect()
}

fn is_failure(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::StageFailed { .. }
            | Outcome::JobFailed { .. }
            | Outcome::JobLost { .. }
            | Outcome::DeclareFailed { .. }
            | Outcome::DeleteFailed { .. }
    )
}

impl<'a> Driver<'a> {
    /// A driver with the default policy, actor ([`default_actor`]), lease owner
    /// ([`default_owner`]), a lease of two minutes (renewed while it works) and
    /// [`default_workers`](crate::config::default_workers) datasets at once.
    pub fn new(store: &'a Store, backend: &'a dyn Backend) -> Self {
        Driver {
            store,
            backend,
            policy: Policy::default(),
            actor: default_actor(),
            owner: default_owner(),
            lease_ttl: Duration::from_secs(crate::config::DEFAULT_LEASE_TTL_S),
            workers: crate::config::default_workers(),
            ledger: Ledger::new(),
            cache: None,
        }
    }

    /// The same driver, keeping each dataset's view in `cache` when a run ends and using it
    /// in the next run instead of loading the dataset, as long as nobody else wrote to it
    /// (see [`ViewCache`]). For a process that runs again and again on the same datasets;
    /// the cache may outlive the driver and serve the next one.
    pub fn with_view_cache(mut self, cache: &'a ViewCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The same driver, working on up to `n` datasets at once (at least one).
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The same driver under `policy`.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The same driver with leases of `ttl`.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The same driver, recording `actor` in the history.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Runs `op` on `names`, up to [`Driver::workers`] datasets at once, each under its own
    /// lease and in its own transactions; the reports come in the order of `names`. With
    /// `tolerant` (`--all`, cron), a dataset another process holds is skipped with a report
    /// saying so; other errors are collected and the rest go on. An error that stops the
    /// run (the disk is full, the database is gone) starts no further dataset.
    pub async fn run_many(&self, op: Op, names: &[DatasetName], tolerant: bool) -> Run {
        // Each run has the budget that is free when it starts, and what its datasets free
        // before the first plans (`Ledger::credit`).
        self.ledger.clear();
        // Workers need a runtime with threads of its own (`#[tokio::main]`'s default); on
        // a current-thread runtime the datasets go one after the other.
        let mut workers = if multi_threaded() {
            self.workers.max(1).min(names.len())
        } else {
            1
        };
        // With limits, the datasets take their sites' budgets in turns, in the order given
        // (highest priority first), so none gets budget before one ahead of it; the
        // budgets are read before any dataset starts, so what each gets is the same
        // whichever worker got further first, and with any number of workers.
        let turns = (!self.store.limits().is_none()).then(Turns::new);
        if turns.is_some()
            && let Err(e) = self.read_budgets(names).await
        {
            // Each dataset then reads its site's budget when it first plans, one after
            // the other.
            warn!("cannot read the budgets before the run, planning one dataset at a time: {e}");
            workers = 1;
        }
        let ticket = |i: usize| turns.as_ref().map(|t| t.ticket(i));
        let mut results = Vec::with_capacity(names.len());
        if workers <= 1 {
            for (i, n) in names.iter().enumerate() {
                let result = self.run_turn(op, n, ticket(i)).await;
                let fatal = result.as_ref().is_err_and(Error::stops_the_run);
                results.push((n, result));
                if fatal {
                    break;
                }
            }
        } else {
            results.extend(self.run_parallel(op, names, workers, &ticket));
        }
        collect(results, tolerant)
    }

    /// Runs `op` on `names` on `workers` threads of this run's own, each driving one
    /// dataset at a time on the runtime (its database calls are the runtime's; its
    /// deciding and its backend calls are its own), so the cores work on different
    /// datasets at once; the results in the order of `names`.
    fn run_parallel<'n, 't>(
        &self,
        op: Op,
        names: &'n [DatasetName],
        workers: usize,
        ticket: &(dyn Fn(usize) -> Option<Turn<'t>> + Sync),
    ) -> Vec<(&'n DatasetName, Result<Report>)> {
        let handle = tokio::runtime::Handle::current();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let done = Mutex::new(Vec::with_capacity(names.len()));
        tokio::task::block_in_place(|| {
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| {
                        while !stop.load(Ordering::SeqCst) {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(n) = names.get(i) else { break };
                            let result = handle.block_on(self.run_turn(op, n, ticket(i)));
                            if result.as_ref().is_err_and(Error::stops_the_run) {
                                stop.store(true, Ordering::SeqCst);
                            }
                            done.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, result));
                        }
                    });
                }
            });
        });
        let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(i, r)| (&names[i], r)).collect()
    }

    /// Runs `op` on one dataset under its lease. A lease held by another live process is
    /// an error of kind [`ErrorKind::Conflict`]; one whose holder is provably gone (a
    /// process of this host that died) is taken over at once. The lease is renewed while
    /// the work goes on, so it can be short and a holder that died elsewhere is taken over
    /// soon after.
    pub async fn run(&self, op: Op, name: &DatasetName) -> Result<Report> {
        self.run_turn(op, name, None).await
    }

    /// The budgets of the sites of `names` (and the total), read into the run's ledger.
    async fn read_budgets(&self, names: &[DatasetName]) -> Result<()> {
        let of = self.store.dataset_sites().await?;
        let sites: BTreeSet<Option<String>> =
            names.iter().map(|n| of.get(n.as_str()).cloned()).collect();
        self.ledger.read(self.store, sites).await
    }

    /// [`Driver::run`], planning in `turn` if the run has one.
    async fn run_turn(&self, op: Op, name: &DatasetName, turn: Option<Turn<'_>>) -> Result<Report> {
        // Read once, before anything is polled: whatever changes out there after this
        // moves the cursor on, so the run's own finding may be settled under it too.
        let token = self.settle_token(op, name)?;
        if let Some(token) = &token
            && let Some(marker) = self.store.settled_token(name).await?
            && marker.strip_prefix(token.as_str()).is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix('@')
                        .is_some_and(|due| still_waiting(due, self.backend.now()))
            })
        {
            // Nothing written to it, nothing new out there: a tick would find what the
            // last one found, nothing to do. No lease is needed to know that.
            debug!(dataset = %name, "settled");
            return Ok(Report {
                name: name.to_string(),
                settled: true,
                ..Report::default()
            });
        }
        let now = repro_db::now();
        let lease = self
            .store
            .claim_or_take_over(name, &self.owner, self.lease_ttl, now, holder_is_gone)
            .await?;
        let renewal = {
            let (store, name, owner, ttl) = (
                self.store.clone(),
                name.clone(),
                self.owner.clone(),
                self.lease_ttl,
            );
            tokio::spawn(async move {
                let mut every = tokio::time::interval((ttl / 3).max(Duration::from_millis(100)));
                every.tick().await;
                loop {
                    every.tick().await;
                    if let Err(e) = store.claim(&name, &owner, ttl, repro_db::now()).await {
                        warn!(dataset = %name, "cannot renew the lease: {e}");
                        break;
                    }
                }
            })
        };
        let result = self
            .work(op, name, lease.site.as_deref(), token, turn)
            .await;
        renewal.abort();
        // With the disk full or the server gone, releasing cannot work either: the lease of
        // a process that exits is taken over at once on this host, on another when it
        // expires. A run that worked records with the release what waited for budget, for
        // `dataset show` and the page (nothing, in a run without limits).
        let waiting = result.as_ref().ok().map(|r| r.waiting.as_deref());
        if !result.as_ref().is_err_and(Error::stops_the_run)
            && let Err(e) = self.store.release_noting(&lease, waiting).await
        {
            warn!(dataset = %name, "cannot release lease: {e}");
        }
        result
    }

    async fn work(
        &self,
        op: Op,
        name: &DatasetName,
        site: Option<&str>,
        token: Option<String>,
        turn: Option<Turn<'_>>,
    ) -> Result<Report> {
        let mut report = Report {
            name: name.to_string(),
            ..Report::default()
        };
        let (mut view, stamp) = self.view_of(name).await?;
        let revision = stamp.revision;
        // The revision this run's own writes lead to; `None` once another's came between.
        let mut at = Some(revision);
        self.may_work(op, &view).await?;
        // The budgets are the site's (the claim read it), when there are limits.
        let site = if self.store.limits().is_none() {
            None
        } else {
            site.map(str::to_owned)
        };
        let freed = if op.polls() {
            let turns = turn.is_some();
            self.poll_and_record(&mut view, &mut at, &mut report, turns, site.as_deref())
                .await?
        } else {
            None
        };
        if let Some(turn) = &turn {
            turn.wait().await;
            if let Some(freed) = &freed {
                self.ledger.credit(site.as_deref(), freed);
            }
        }
        let done = self
            .act(op, &mut view, site.as_deref(), &mut at, &mut report)
            .await?;
        // Done taking budget: the next dataset's turn.
        drop(turn);
        // Nothing left to do, nothing waiting for budget and nobody else's write since the
        // load: the dataset settles, under the cursor read before the poll whose answers
        // it stands on. A run that acted has moved the world: the next tick looks again.
        if let (Some(token), Some(at)) = (token, at.as_mut())
            && done
            && report.waiting.is_none()
            && report.actions == 0
        {
            self.settle(op, &mut view, token, revision, at, &mut report)
                .await?;
        }
        // The view is the dataset as this run's last write left it, unless someone else
        // wrote in between.
        if let (Some(cache), Some(at)) = (self.cache, at) {
            cache.put(
                Stamp {
                    id: stamp.id,
                    revision: at,
                },
                view,
            );
        }
        Ok(report)
    }

    /// Refuses `op` on a locked dataset, or one not at a stage `op` works on.
    async fn may_work(&self, op: Op, view: &DatasetView) -> Result<()> {
        if view.status.lock == repro_core::LockWord::Lock {
            return Err(Error::Locked {
                dataset: view.name.to_string(),
                by: self.locked_by(&view.name).await,
            });
        }
        if !op.applies(view) {
            return Err(Error::NotNow {
                op: op.name(),
                dataset: view.name.to_string(),
                found: view.status.columns().to_string(),
                when: op.when(),
            });
        }
        Ok(())
    }

    /// Asks the backend about what is out and records the answers. What they freed (a job
    /// ended, a file staged or deleted), when the run plans in `turns` and nobody has
    /// planned at `site` yet, to be given back at this dataset's turn
    /// (`Ledger::credit`).
    async fn poll_and_record(
        &self,
        view: &mut DatasetView,
        at: &mut Option<Revision>,
        report: &mut Report,
        turns: bool,
        site: Option<&str>,
    ) -> Result<Option<Usage>> {
        // The questions are dropped before the answers are recorded (at 50,000 files each
        // is a tenth of what a tick holds).
        let outcomes = {
            let due = polls(view);
            if due.is_empty() {
                return Ok(None);
            }
            debug!(dataset = %view.name, polls = due.len(), "polling");
            self.call(|b| b.poll(&view.name, &due))?
        };
        let before = (turns && !outcomes.is_empty() && self.ledger.may_credit(site))
            .then(|| Usage::of(view));
        let n = self.record(view, outcomes, at, report).await?;
        report.outcomes += n;
        Ok(before.map(|b| b.freed_by(Usage::of(view))))
    }

    /// Plans, writes and performs what is due, round after round, while work completes
    /// (a declaration done lets the phase end at once). Whether the run ended because
    /// nothing is left to do, not because of a failure the next run retries (a refusing
    /// tool is not hammered), a lost race for budget or the round limit.
    async fn act(
        &self,
        op: Op,
        view: &mut DatasetView,
        site: Option<&str>,
        at: &mut Option<Revision>,
        report: &mut Report,
    ) -> Result<bool> {
        let name = view.name.clone();
        let mut conflicts = 0;
        for _ in 0..64 {
            let Some(policy) = op.policy(&self.policy, view) else {
                return Ok(false);
            };
            let planned = self.plan(view, site, &policy, op).await?;
            if planned.waiting.is_some() {
                report.waiting = planned.waiting;
            }
            let plan = planned.plan;
            if plan.is_empty() {
                return Ok(true);
            }
            let moves: Vec<Transition> = plan.transitions().collect();
            let Plan {
                changes, actions, ..
            } = plan;
            match self.store.apply_revised(&name, &changes, &self.actor).await {
                Ok(written) => follow(at, written),
                Err(e @ DbError::OverBudget { .. }) => {
                    // Another process took the budget first: what is left waits.
                    info!(dataset = %name, "{e}");
                    report.waiting = Some(e.to_string());
                    return Ok(false);
                }
                Err(DbError::Conflict(c)) if conflicts < 3 => {
                    // Someone (an operator, most likely) moved it: decide again from what is there.
                    conflicts += 1;
                    info!(dataset = %name, "conflict, re-reading: {c}");
                    *view = self.store.load(&name).await?;
                    // What the other writer did may wait for a poll this run did not
                    // make (a reservation whose holder then died): no settling on it.
                    *at = None;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            view.apply(&changes).map_err(|source| Error::Diverged {
                dataset: name.to_string(),
                source: Box::new(source),
            })?;
            report.alerts.extend(alerts(view, &changes));
            drop(changes);
            if !moves.is_empty() {
                let via: Vec<&str> = moves.iter().map(|t| t.as_str()).collect();
                info!(dataset = %name, via = %via.join(" -> "), now = %view.status.columns(), "moved");
                report.transitions.extend(moves);
            }
            if !actions.is_empty() {
                debug!(dataset = %name, actions = actions.len(), "acting");
                report.actions += actions.len();
                let outcomes = self.call(|b| b.perform(&name, &actions))?;
                drop(actions);
                let failed = outcomes.iter().any(is_failure);
                let n = self.record(view, outcomes, at, report).await?;
                report.outcomes += n;
                if failed {
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    /// Records that a run found nothing to do, under `token` and the revision `at` its
    /// writes led to. If it wrote (its revision is no longer `revision`), what it recorded
    /// changed the questions (a job now has its batch id, a file is staged): it asks once
    /// more, and settles only if nothing new comes back, under the cursor read before
    /// this poll. What waits to be retried wakes the dataset when it is due.
    async fn settle(
        &self,
        op: Op,
        view: &mut DatasetView,
        mut token: String,
        revision: Revision,
        at: &mut Revision,
        report: &mut Report,
    ) -> Result<()> {
        let name = view.name.clone();
        let mut settles = true;
        if *at != revision {
            token = self.settle_token(op, &name)?.unwrap_or_default();
            settles = !token.is_empty();
            let due = polls(view);
            if !due.is_empty() {
                let outcomes = self.call(|b| b.poll(&name, &due))?;
                drop(due);
                let mut after = Some(*at);
                let n = self.record(view, outcomes, &mut after, report).await?;
                report.outcomes += n;
                settles &= n == 0;
                *at = after.unwrap_or(*at);
            }
        }
        if let Some((_, due)) = retry::waiting(view, self.backend.now()) {
            token = format!("{token}@{due}");
        }
        // The work is done and recorded; a marker that cannot be written only means the
        // next tick looks again.
        if settles {
            match self.store.settle(&name, *at, &token).await {
                Ok(true) => debug!(dataset = %name, "settled"),
                Ok(false) => {}
                Err(e) => warn!(dataset = %name, "cannot record that it settled: {e}"),
            }
        }
        Ok(())
    }

    /// The dataset's view and the stamp it is at: the one kept in the cache if the dataset
    /// is still at its stamp, else loaded.
    async fn view_of(&self, name: &DatasetName) -> Result<(DatasetView, Stamp)> {
        if let Some(cache) = self.cache {
            if let Some((stamp, view)) = cache.take(name) {
                let now = self.store.stamp(name).await?;
                if now == stamp {
                    cache.count(true);
                    return Ok((view, stamp));
                }
                debug!(dataset = %name, kept = ?stamp, now = ?now, "the view kept is stale");
            }
            cache.count(false);
        }
        Ok(self.store.load_stamped(name).await?)
    }

    /// What a tick finding nothing to do for `name` depends on besides the dataset's rows:
    /// the policy it plans under and the backend's cursor ([`Backend::cursor`]). `None`
    /// when the operation is not a tick or the backend has no cursor: then the dataset is
    /// always looked at.
    fn settle_token(&self, op: Op, name: &DatasetName) -> Result<Option<String>> {
        if op != Op::Tick {
            return Ok(None);
        }
        let Some(cursor) = self.call(|b| b.cursor(name))? else {
            return Ok(None);
        };
        // The row keeps 255 characters: a long cursor is kept as its hash.
        let cursor = if cursor.len() > 64 {
            format!("#{}", fnv(&cursor))
        } else {
            cursor
        };
        Ok(Some(format!("{}|{cursor}", policy_token(&self.policy))))
    }

    /// What is due for `view` within what is left of its site's budget in this run (all
    /// of it when the store has no limits).
    async fn plan(
        &self,
        view: &DatasetView,
        site: Option<&str>,
        policy: &Policy,
        op: Op,
    ) -> Result<Planned> {
        self.ledger
            .plan(self.store, view, site, policy, self.backend.now(), |k| {
                op.works_at(k)
            })
            .await
    }

    /// Makes one backend call. A backend blocks, so the runtime is told (a backend of its
    /// own may then enter the runtime again, to call an async client).
    fn call<T>(&self, f: impl FnOnce(&dyn Backend) -> T) -> T {
        if multi_threaded() {
            tokio::task::block_in_place(|| f(self.backend))
        } else {
            // A current-thread runtime cannot be told; its one thread simply waits.
            f(self.backend)
        }
    }

    /// Who locked `name`, when and why, for the error a run on a locked dataset gives
    /// (` by alice at 2026-12-01 10:00:00 UTC (why)`); empty when the history cannot say.
    async fn locked_by(&self, name: &DatasetName) -> String {
        let Ok(history) = self.store.history(name, Some("dataset")).await else {
            return String::new();
        };
        let Some(h) = history
            .iter()
            .rev()
            .find(|h| h.via == "lock" || h.via == "register")
        else {
            return String::new();
        };
        let since = if h.via == "register" {
            " since it was registered"
        } else {
            ""
        };
        let why = h
            .reason
            .as_deref()
            .filter(|r| h.via == "lock" && !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        format!(
            "{since} by {} at {} UTC{why}",
            h.actor,
            h.at.format("%Y-%m-%d %H:%M:%S")
        )
    }

    /// Records what the world said, all in one transaction, with what it tells of the
    /// steps' services (an outage, [`outage::trip`]) noted in `report`; follows the
    /// revision in `at`.
    pub(crate) async fn record(
        &self,
        view: &mut DatasetView,
        outcomes: Vec<Outcome>,
        at: &mut Option<Revision>,
        report: &mut Report,
    ) -> Result<usize> {
        // Each outcome is decided on the view the ones before it left, so it is applied
        // to `view` as it goes (no copy of a dataset's view per run). If the store then
        // refuses the batch, the error ends this dataset's run and `view` with it.
        let mut all = Vec::new();
        let mut n = 0;
        for o in &outcomes {
            match repro_core::outcome::record(view, o) {
                // Nothing new (a job still running): not an outcome worth counting.
                Ok(changes) if changes.is_empty() => {}
                Ok(mut changes) => {
                    // A failure waits its turn before it is tried again.
                    retry::schedule(view, &mut changes, &self.policy.retry, self.backend.now());
                    view.apply(&changes).map_err(|source| Error::Diverged {
                        dataset: view.name.to_string(),
                        source: Box::new(source),
                    })?;
                    all.extend(changes);
                    n += 1;
                }
                Err(stale) => warn!(dataset = %view.name, "skipping {stale}"),
            }
        }
        drop(outcomes);
        let now = self.backend.now();
        let tripped = outage::trip(view, &all, &self.policy.outage, now);
        if !tripped.is_empty() {
            let before = view.outages.clone();
            view.apply(&tripped).map_err(|source| Error::Diverged {
                dataset: view.name.to_string(),
                source: Box::new(source),
            })?;
            report
                .outages
                .extend(outage_lines(&before, &view.outages, now));
            all.extend(tripped);
        }
        // Changes from different outcomes touch different rows; the store writes each
        // run of alike ones as one statement.
        Change::batch_order(&mut all);
        follow(
            at,
            self.store
                .apply_revised(&view.name, &all, &self.actor)
                .await?,
        );
        Ok(n)
    }
}

/// What changed from the outages `before` to those `after` at `now`: one line for each
/// opened or renewed, one for each over.
fn outage_lines(before: &[Outage], after: &[Outage], now: i64) -> Vec<String> {
    let news = after
        .iter()
        .filter(|o| !before.contains(o))
        .map(attention::outage_line);
    let over = before
        .iter()
        .filter(|b| !after.iter().any(|a| a.step == b.step))
        .map(|b| {
            let mins = (now - b.since).max(0) / 60;
            format!("{} ({}) is back after {mins} min", b.step.service(), b.step)
        });
    news.chain(over).collect()
}

/// Follows a dataset's revision through one run's own write (`written`: the revision after
/// it): `at` stays known only if nobody else wrote in between.
fn follow(at: &mut Option<Revision>, written: Option<Revision>) {
    if let Some(w) = written {
        *at = at.filter(|a| a.0 + 1 == w.0).map(|_| w);
    }
}

/// The policy as a settled dataset records it: FNV-1a of its words, stable across runs
/// and builds of one version.
/// Whether a settled marker's `@DUE` (`due`, without its `@`) has not come yet at `now`:
/// something waits to be retried until then. A marker ends in one only then.
fn still_waiting(due: &str, now: i64) -> bool {
    due.parse::<i64>().is_ok_and(|due| now < due)
}

fn policy_token(policy: &Policy) -> String {
    fnv(&format!("{policy:?}"))
}

/// FNV-1a of `s`, in hex.
fn fnv(s: &str) -> String {
    format!("{:x}", crate::fnv1a(crate::FNV_OFFSET, s.bytes()))
}

/// What a tick would do now to `name` under `policy`, without doing it, taking from
/// `ledger` the budget it would take (what `repro plan` shows). A dataset a tick settled
/// under this policy, with nothing written to it since, has nothing due: its preview is
/// read from its row and four counts, without loading its files.
pub async fn preview_dataset(
    store: &Store,
    ledger: &Ledger,
    name: &DatasetName,
    policy: &Policy,
    now: i64,
) -> Result<Preview> {
    let prefix = format!("{}|", policy_token(policy));
    let marker = store.settled_token(name).await?;
    let due = marker
        .as_deref()
        .and_then(|t| t.rsplit_once('@'))
        .map(|(_, d)| d);
    let settled = marker
        .as_deref()
        .is_some_and(|t| t.starts_with(&prefix) && due.is_none_or(|d| still_waiting(d, now)));
    if settled {
        let summary = store.summary(name).await?;
        let polls = store.polls_due(name).await?;
        let first = due.and_then(|d| d.parse::<i64>().ok());
        return Ok(Preview {
            name: name.to_string(),
            state: summary.status.columns(),
            transitions: Vec::new(),
            actions: Vec::new(),
            polls: usize::try_from(polls).unwrap_or(usize::MAX),
            waiting: None,
            retrying: first.map(attention::next_retry),
        });
    }
    let view = store.load(name).await?;
    let site = if store.limits().is_none() {
        None
    } else {
        store.site_of(name).await?
    };
    let planned = ledger
        .plan(store, &view, site.as_deref(), policy, now, |_| true)
        .await?;
    Ok(Preview {
        retrying: retry::waiting(&view, now).map(|(_, first)| attention::next_retry(first)),
        ..Preview::of(&view, planned)
    })
}

/// What `plan` shows for one dataset.
#[derive(Debug, Serialize)]
pub struct Preview {
    /// The dataset.
    pub name: String,
    /// Its state now: the five columns, as `dataset list --json` gives them.
    #[serde(flatten)]
    pub state: repro_core::Columns,
    /// Transitions a tick would take.
    pub transitions: Vec<Transition>,
    /// Actions a tick would perform, before any outcome is known.
    pub actions: Vec<repro_core::Action>,
    /// Things a tick would poll.
    pub polls: usize,
    /// Work that would wait for budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// What waits to be tried again after a failure, and when the first is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrying: Option<String>,
}

/// What a tick would do now to `view`, without doing it.
/// What a tick would do to `view` once every retry's wait is over (see [`repro_core::plan()`]).
pub fn preview(view: &DatasetView, policy: &Policy) -> Preview {
    preview_within(view, policy, i64::MAX, &mut repro_core::Budget::default())
}

/// What a tick would do now to `view` within `budget`, taking from it what the tick would
/// take, without doing it.
pub fn preview_within(
    view: &DatasetView,
    policy: &Policy,
    now: i64,
    budget: &mut (impl repro_core::Draw + ?Sized),
) -> Preview {
    Preview::new(
        view,
        repro_core::plan::plan_within(view, policy, now, |_| true, budget),
    )
}

impl Preview {
    /// What a tick would do to `view` with `plan` (from [`Ledger::plan`](crate::ledger::Ledger::plan),
    /// say), without doing it.
    pub fn new(view: &DatasetView, plan: Plan) -> Preview {
        let waiting = repro_core::budget::describe(&plan.waiting);
        Preview::of(view, Planned { plan, waiting })
    }

    /// [`Preview::new`] with where the work waits, as the ledger said.
    pub fn of(view: &DatasetView, planned: Planned) -> Preview {
        Preview {
            name: view.name.to_string(),
            state: view.status.columns(),
            transitions: planned.plan.transitions().collect(),
            actions: planned.plan.actions,
            polls: polls(view).len(),
            waiting: planned.waiting,
            retrying: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage the core declares, and automation is not done with, has an operation of
    /// its own besides `check` and `tick`: a new stage cannot be left without a command.
    #[test]
    fn every_stage_automation_works_at_has_an_operation_of_its_own() {
        for &kind in StageKind::ALL {
            let ops: Vec<&str> = Op::ALL
                .iter()
                .filter(|op| !matches!(op, Op::Check | Op::Tick) && op.works_at(kind))
                .map(|op| op.name())
                .collect();
            assert_eq!(
                ops.is_empty(),
                kind.at_rest(),
                "{kind}: worked at by {ops:?}"
            );
        }
    }

    #[test]
    fn a_lease_holder_is_gone_only_when_its_process_on_this_host_is_provably_gone() {
        let me = default_owner();
        assert!(!holder_is_gone(&me), "this process is alive");
        // A live process (the test harness's parent) under its own start time is alive...
        let parent = std::os::unix::process::parent_id();
        let start = started(parent).expect("the parent process exists");
        let host = hostname();
        assert!(!holder_is_gone(&format!("{host}:{parent}:{start}")));
        // ...and under another start time its PID was reused: the holder is gone.
        assert!(holder_is_gone(&format!("{host}:{parent}:{}", start + 1)));
        // A process that exited is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(holder_is_gone(&format!("{host}:{pid}:1")));
        // Another host's holders, and names not of this form, are never provably gone.
        assert!(!holder_is_gone(&format!("elsewhere.{host}:{pid}:1")));
        assert!(!holder_is_gone("other-host:99"));
        assert!(!holder_is_gone("nonsense"));
    }

    #[test]
    fn a_revision_is_followed_only_through_ones_own_writes() {
        let mut at = Some(Revision(3));
        follow(&mut at, None);
        assert_eq!(at, Some(Revision(3)), "nothing written");
        follow(&mut at, Some(Revision(4)));
        assert_eq!(at, Some(Revision(4)));
        // Someone else wrote 5: what this run saw is not what is stored.
        follow(&mut at, Some(Revision(6)));
        assert_eq!(at, None);
        follow(&mut at, Some(Revision(7)));
        assert_eq!(at, None, "and it stays unknown");
    }

    #[tokio::test]
    async fn an_all_run_takes_its_scope_highest_priority_first_then_the_oldest() {
        let store = Store::open_memory().await.unwrap();
        store.migrate().await.unwrap();
        let wz = repro_core::SampleName::new("wz").unwrap();
        for (n, priority, sample, unlock) in [
            ("a.first", 0, None, true),
            ("b.urgent", 3, Some(&wz), true),
            ("c.held", 9, Some(&wz), false),
            ("d.second", 0, Some(&wz), true),
        ] {
            let opts = repro_db::Register {
                unlock,
                priority,
                sample: sample.cloned(),
                ..repro_db::Register::default()
            };
            let files = [repro_db::NewFile::new("f", 1)];
            let name = DatasetName::new(n).unwrap();
            store.register(&name, &files, &opts, "t").await.unwrap();
        }
        let names = |v: Vec<DatasetName>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let all = targets(&store, &Scope::default()).await.unwrap();
        assert_eq!(names(all), ["b.urgent", "a.first", "d.second"]);
        let scope = Scope {
            sample: Some(wz),
            ..Scope::default()
        };
        let some = targets(&store, &scope).await.unwrap();
        assert_eq!(names(some), ["b.urgent", "d.second"]);
    }
}
