//! The `slurm` backend: reco and merge jobs are Slurm jobs.
//!
//! Each attempt is an `sbatch --parsable` of a script rendered from the site's reco or merge
//! command, under the job's deterministic name. Jobs are followed with `squeue`, then
//! `sacct -X -P` once they leave the queue (`scontrol show job` where accounting is off). A
//! job that was reserved but whose submission was never recorded is looked up by its name
//! before anything is submitted again. A reco job is done only when its TMB file exists and
//! is non-empty.
//!
//! Staging, declaring and deleting go through the `[backend.command]` steps, or the local
//! filesystem with `local_files = true`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use repro_core::job::JobKey;
use repro_core::{Action, DatasetName, ErrorClass, Outcome, Poll};

use super::command::{
    CommandBackend, Failed, Layout, mkdir_for, parse_batch_id, refused, submission,
};
use super::process::{self, shell_quote};
use super::template::Step;
use super::{Backend, BackendError};
use crate::config::{CommandConfig, SlurmConfig};

/// A job as Slurm reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    /// Slurm's state word (`COMPLETED`, `TIMEOUT`, `CANCELLED by 0`...).
    pub state: String,
    /// The exit code, from `N:S`.
    pub exit_code: Option<i32>,
    /// The signal, from `N:S`.
    pub signal: Option<i32>,
    /// Slurm's reason, if any.
    pub reason: String,
}

/// What a Slurm state means for the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// Queued or starting.
    Waiting,
    /// Running.
    Running,
    /// Completed: the output decides.
    Completed,
    /// Ended without success, with the reason to keep and whether trying again can help.
    Failed(String, ErrorClass),
}

/// Whether a job that ended in Slurm state `word` is worth trying again: a node that died,
/// a preemption, a node that did not boot or a cancellation (by an administrator) are the
/// site's trouble; a job that ran out of time or memory will do so again with the same
/// request; a plain failure is the job's own exit code, which nobody has classed.
fn class_of(word: &str) -> ErrorClass {
    match word {
        "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" | "CANCELLED" | "DEADLINE" => ErrorClass::Transient,
        "TIMEOUT" | "OUT_OF_MEMORY" => ErrorClass::Permanent,
        _ => ErrorClass::Unknown,
    }
}

/// Maps a Slurm job state to the lifecycle.
pub fn meaning(job: &SlurmJob) -> Meaning {
    let word = job.state.split_whitespace().next().unwrap_or("");
    match word {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "RESIZING" | "SUSPENDED" | "REQUEUE_HOLD"
        | "REQUEUE_FED" => Meaning::Waiting,
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => Meaning::Running,
        "COMPLETED" => Meaning::Completed,
        _ => {
            let mut why = format!("slurm: {}", job.state);
            if let Some(c) = job.exit_code {
                why.push_str(&format!(", exit code {c}"));
            }
            if let Some(s) = job.signal.filter(|s| *s != 0) {
                why.push_str(&format!(", signal {s}"));
            }
            if !job.reason.is_empty() && job.reason != "None" {
                why.push_str(&format!(" ({})", job.reason));
            }
            Meaning::Failed(why, class_of(word))
        }
    }
}

/// Parses `sacct -X -P -n --format=JobID,JobName,State,ExitCode,Reason` output by job id.
pub fn parse_sacct(stdout: &str) -> BTreeMap<String, (String, SlurmJob)> {
    let mut out = BTreeMap::new();
    for line in stdout.lines() {
        let cols: Vec<&str> = line.split('|').collect();
        if cols.len() < 4 || cols[0].is_empty() {
            continue;
        }
        let (code, signal) = match cols[3].split_once(':') {
            Some((c, s)) => (c.parse().ok(), s.parse().ok()),
            None => (cols[3].parse().ok(), None),
        };
        out.insert(
            cols[0].to_owned(),
            (
                cols[1].to_owned(),
                SlurmJob {
                    state: cols[2].to_owned(),
                    exit_code: code,
                    signal,
                    reason: cols.get(4).copied().unwrap_or("").to_owned(),
                },
            ),
        );
    }
    out
}

/// Parses `squeue -h -o %i|%T|%r` output by job id. A line without an id and a state is
/// skipped, as is any id that is not a batch id (see [`parse_batch_id`]).
pub fn parse_squeue(stdout: &str) -> HashMap<String, SlurmJob> {
    let mut out = HashMap::new();
    for line in stdout.lines() {
        let mut cols = line.trim().splitn(3, '|');
        let (Some(id), Some(state)) = (cols.next(), cols.next()) else {
            continue;
        };
        if state.is_empty() || parse_batch_id(id).as_deref() != Some(id) {
            continue;
        }
        let job = SlurmJob {
            state: state.to_owned(),
            exit_code: None,
            signal: None,
            reason: cols.next().unwrap_or("").to_owned(),
        };
        out.insert(id.to_owned(), job);
    }
    out
}

/// Parses one `scontrol show job -o` line.
pub fn parse_scontrol(stdout: &str) -> Option<SlurmJob> {
    let mut fields = BTreeMap::new();
    for word in stdout.split_whitespace() {
        if let Some((k, v)) = word.split_once('=') {
            fields.insert(k, v);
        }
    }
    let state = (*fields.get("JobState")?).to_owned();
    let (code, signal) = match fields.get("ExitCode").and_then(|e| e.split_once(':')) {
        Some((c, s)) => (c.parse().ok(), s.parse().ok()),
        None => (None, None),
    };
    Some(SlurmJob {
        state,
        exit_code: code,
        signal,
        reason: fields.get("Reason").copied().unwrap_or("").to_owned(),
    })
}

/// What Slurm's queue shows of one dataset's jobs: how many, and a hash of their ids and
/// states. Any job of the dataset queued, started, ended or forgotten changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueMark {
    /// Jobs of the dataset in the listing.
    pub jobs: u64,
    /// FNV-1a over their `id|state` lines, in job id order.
    pub hash: u64,
}

impl std::fmt::Display for QueueMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:016x}", self.jobs, self.hash)
    }
}

/// The dataset a repro job name belongs to: `DATASET` of `DATASET.reco.f12.a2` or
/// `DATASET.merge.g3.a1` ([`JobKey::name`]). `None` for any other name.
pub fn dataset_of_job(name: &str) -> Option<&str> {
    let numbered = |word: &str, letter: char| {
        word.strip_prefix(letter)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let (rest, attempt) = name.rsplit_once('.')?;
    let (rest, subject) = rest.rsplit_once('.')?;
    let (dataset, kind) = rest.rsplit_once('.')?;
    let ours = numbered(attempt, 'a')
        && match kind {
            "reco" => numbered(subject, 'f'),
            "merge" => numbered(subject, 'g'),
            _ => false,
        };
    (ours && !dataset.is_empty()).then_some(dataset)
}

/// Parses `squeue -h -t all -o '%i|%j|%T'` (every job that Slurm still holds, ended ones
/// included until it forgets them) into a [`QueueMark`] per dataset.
/// Jobs whose names are not repro's are left out. A line that is not `ID|NAME|STATE` is
/// garbage, and so is the whole listing: `Err` names the line.
pub fn parse_queue(stdout: &str) -> Result<HashMap<String, QueueMark>, String> {
    let mut jobs: Vec<(&str, u64, &str, &str)> = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parsed = line.split_once('|').and_then(|(id, rest)| {
            let (name, state) = rest.rsplit_once('|')?;
            // Any user's jobs are listed: array (`1234_[5-10]`) and heterogeneous
            // (`77+0`) ids too, which are not repro's but are not garbage either.
            let plausible = !id.is_empty()
                && !id.contains(char::is_whitespace)
                && !state.is_empty()
                && state.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            plausible.then_some((id, name, state))
        });
        let Some((id, name, state)) = parsed else {
            return Err(format!("squeue printed {line:?}, not ID|NAME|STATE"));
        };
        if let Some(dataset) = dataset_of_job(name) {
            // Numeric order where the ids are numbers (array and het jobs are not repro's).
            let n = id.parse().unwrap_or(u64::MAX);
            jobs.push((dataset, n, id, state));
        }
    }
    jobs.sort_unstable();
    let mut out: HashMap<String, QueueMark> = HashMap::new();
    for (dataset, _, id, state) in jobs {
        let m = match out.get_mut(dataset) {
            Some(m) => m,
            None => out.entry(dataset.to_owned()).or_insert(QueueMark {
                jobs: 0,
                hash: crate::FNV_OFFSET,
            }),
        };
        m.jobs += 1;
        let line = id.bytes().chain([b'|']).chain(state.bytes()).chain([b'\n']);
        m.hash = crate::fnv1a(m.hash, line);
    }
    Ok(out)
}

/// How long one `squeue` listing answers [`Backend::cursor`] for every dataset: a tick
/// lists the queue once, not once per dataset. A listing is always older than the polls
/// that follow it, so one that is out of date can only make a dataset looked at again.
const QUEUE_LISTING_TTL: Duration = Duration::from_secs(5);

/// A listing of the queue, by dataset, and when it was taken.
type Listing = (
    std::time::Instant,
    std::sync::Arc<HashMap<String, QueueMark>>,
);

/// The `slurm` backend.
#[derive(Debug)]
pub struct SlurmBackend {
    cfg: SlurmConfig,
    layout: Layout,
    /// Staging, declaring and deleting through site tools, when not local.
    steps: Option<CommandBackend>,
    /// The last listing of the queue, for cursors.
    listing: std::sync::Mutex<Option<Listing>>,
}

impl SlurmBackend {
    /// A backend submitting to the Slurm cluster this machine's `sbatch` reaches.
    pub fn new(cfg: SlurmConfig, steps: CommandConfig) -> Self {
        let layout = Layout {
            workdir: cfg.workdir.clone(),
        };
        let steps = (!cfg.local_files).then(|| CommandBackend::new(steps));
        SlurmBackend {
            cfg,
            layout,
            steps,
            listing: std::sync::Mutex::new(None),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_s)
    }

    /// Runs a Slurm command; `Err` says why it did not succeed (a controller that does not
    /// answer in time is transient).
    fn run(&self, argv: &[String]) -> Result<process::Ran, Failed> {
        let argv0 = argv.first().cloned().unwrap_or_default();
        match process::run(argv, self.timeout()) {
            Ok(r) if r.ok() => Ok(r),
            Ok(r) => Err(Failed::unknown(r.failure(&argv0))),
            Err(e) => Err(Failed::of_run(&e)),
        }
    }

    /// Runs a Slurm command for its stdout.
    fn slurm(&self, argv: &[String]) -> Result<String, String> {
        self.run(argv).map(|r| r.stdout).map_err(|f| f.reason)
    }

    /// Writes the job script: the site's command with its placeholders filled, quoted for sh.
    fn script(
        &self,
        name: &str,
        (step, command): (Step, &[String]),
        vars: &[(&str, &str)],
        output: &Path,
    ) -> Result<std::path::PathBuf, String> {
        let path = self.layout.script(name);
        mkdir_for(&path)?;
        mkdir_for(output)?;
        mkdir_for(&self.layout.log(name))?;
        let argv = step.render(command, vars);
        let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let text = format!(
            "#!/bin/sh\n# repro job {name}\nset -e\nexec {}\n",
            line.join(" ")
        );
        let mut f = std::fs::File::create(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    fn sbatch(&self, job: JobKey, name: &str, script: &Path) -> Outcome {
        let mut argv = vec![
            "sbatch".to_owned(),
            "--parsable".to_owned(),
            format!("--job-name={name}"),
            format!("--output={}", self.layout.log(name).display()),
        ];
        if let Some(p) = &self.cfg.partition {
            argv.push(format!("--partition={p}"));
        }
        if let Some(t) = &self.cfg.time_limit {
            argv.push(format!("--time={t}"));
        }
        argv.extend(self.cfg.sbatch_args.iter().cloned());
        argv.push(script.display().to_string());
        submission(job, "sbatch", self.run(&argv))
    }

    fn submit(&self, dataset: &DatasetName, action: &Action) -> Option<Outcome> {
        let ds = dataset.as_str();
        match action {
            Action::SubmitReco { job, name, lfn } => {
                let out = self.layout.tmb(dataset, job, Some(lfn));
                let (o, a) = (out.display().to_string(), job.attempt.to_string());
                let vars = [
                    ("input", lfn.as_str()),
                    ("output", o.as_str()),
                    ("dataset", ds),
                    ("file", lfn.as_str()),
                    ("attempt", a.as_str()),
                ];
                Some(
                    match self.script(name, (Step::SlurmReco, &self.cfg.reco_command), &vars, &out)
                    {
                        Ok(script) => self.sbatch(*job, name, &script),
                        Err(reason) => refused(*job, Failed::unknown(reason)),
                    },
                )
            }
            Action::SubmitMerge {
                job,
                name,
                inputs,
                output,
            } => {
                let (list, out) = match self.layout.prepare_merge(dataset, name, inputs, output) {
                    Ok(paths) => paths,
                    Err(reason) => return Some(refused(*job, Failed::unknown(reason))),
                };
                let (o, l, a) = (
                    out.display().to_string(),
                    list.display().to_string(),
                    job.attempt.to_string(),
                );
                let vars = [
                    ("files", l.as_str()),
                    ("output", o.as_str()),
                    ("dataset", ds),
                    ("attempt", a.as_str()),
                ];
                Some(
                    match self.script(
                        name,
                        (Step::SlurmMerge, &self.cfg.merge_command),
                        &vars,
                        &out,
                    ) {
                        Ok(script) => self.sbatch(*job, name, &script),
                        Err(reason) => refused(*job, Failed::unknown(reason)),
                    },
                )
            }
            _ => None,
        }
    }

    /// Files without staging: the raw file is where its name says.
    fn local(&self, action: &Action) -> Option<Outcome> {
        match action {
            Action::Stage { .. } => None, // answered by the poll, which looks at the file
            Action::Declare { group, merged, .. } => {
                Some(match self.declare_locally(&merged.name) {
                    Ok(()) => Outcome::Declared { group: *group },
                    Err(reason) => Outcome::DeclareFailed {
                        group: *group,
                        reason,
                        class: ErrorClass::Unknown,
                    },
                })
            }
            Action::Delete { file, tmb, .. } => {
                // The raw file is the input itself here: only the TMB file is intermediate.
                let r = match tmb {
                    Some(t) => match std::fs::remove_file(&t.path) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(format!("cannot delete {}: {e}", t.path)),
                    },
                    None => Ok(()),
                };
                Some(match r {
                    Ok(()) => Outcome::Deleted { file: *file },
                    Err(reason) => Outcome::DeleteFailed {
                        file: *file,
                        reason,
                        class: ErrorClass::Unknown,
                    },
                })
            }
            _ => None,
        }
    }

    /// Polls answered by the local filesystem.
    fn local_poll(&self, poll: &Poll) -> Option<Outcome> {
        Some(match poll {
            Poll::Stage { file, lfn } => {
                if Path::new(lfn).is_file() {
                    Outcome::Staged { file: *file }
                } else {
                    Outcome::StageFailed {
                        file: *file,
                        reason: format!("raw file {lfn} does not exist"),
                        class: ErrorClass::Unknown,
                    }
                }
            }
            Poll::Declaration { group, merged } => match self.declare_locally(&merged.name) {
                Ok(()) => Outcome::Declared { group: *group },
                Err(reason) => Outcome::DeclareFailed {
                    group: *group,
                    reason,
                    class: ErrorClass::Unknown,
                },
            },
            Poll::Deletion { file, tmb, .. } => {
                if tmb.as_ref().is_none_or(|t| !Path::new(&t.path).exists()) {
                    Outcome::Deleted { file: *file }
                } else {
                    Outcome::DeleteFailed {
                        file: *file,
                        reason: "interrupted; the TMB file is still there".into(),
                        class: ErrorClass::Unknown,
                    }
                }
            }
            Poll::Job { .. } => return None,
        })
    }

    fn declare_locally(&self, name: &str) -> Result<(), String> {
        let path = &self.cfg.catalog;
        mkdir_for(path)?;
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        if existing.lines().any(|l| l == name) {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open catalog {}: {e}", path.display()))?;
        writeln!(f, "{name}").map_err(|e| format!("cannot write catalog {}: {e}", path.display()))
    }

    /// Looks a job up by name: its batch id, if Slurm knows it.
    fn lookup(&self, name: &str) -> Result<Option<String>, String> {
        let q = self.slurm(&[
            "squeue".into(),
            "-h".into(),
            "-n".into(),
            name.into(),
            "-o".into(),
            "%i".into(),
        ])?;
        if let Some(id) = parse_batch_id(&q) {
            return Ok(Some(id));
        }
        let a = self.slurm(&[
            "sacct".into(),
            "-X".into(),
            "-P".into(),
            "-n".into(),
            "-S".into(),
            "2000-01-01".into(),
            format!("--name={name}"),
            "--format=JobID,JobName,State,ExitCode,Reason".into(),
        ]);
        match a {
            Ok(out) => Ok(parse_sacct(&out)
                .into_iter()
                .find(|(_, (n, _))| n == name)
                .map(|(id, _)| id)),
            // Without accounting, squeue was the only place to look.
            Err(_) => Ok(None),
        }
    }

    /// Where Slurm has each job, in three statements for any number of jobs: `squeue` for
    /// jobs it still holds, `sacct` for the exit codes of the finished ones, and
    /// `scontrol show job` only for jobs neither knows (accounting off). Absent from the
    /// map: Slurm knows nothing of it.
    fn statuses(&self, ids: &[&str]) -> Result<HashMap<String, SlurmJob>, String> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let list = chunk.join(",");
            let q = self.slurm(&[
                "squeue".into(),
                "-h".into(),
                "-t".into(),
                "all".into(),
                "-j".into(),
                list.clone(),
                "-o".into(),
                "%i|%T|%r".into(),
            ]);
            // squeue refuses the whole list when every id in it is unknown.
            out.extend(parse_squeue(&q.unwrap_or_default()));
            let settled: Vec<&str> = chunk
                .iter()
                .copied()
                .filter(|id| {
                    out.get(*id).is_none_or(|j| {
                        matches!(meaning(j), Meaning::Completed | Meaning::Failed(..))
                    })
                })
                .collect();
            if settled.is_empty() {
                continue;
            }
            let a = self.slurm(&[
                "sacct".into(),
                "-X".into(),
                "-P".into(),
                "-n".into(),
                "-j".into(),
                settled.join(","),
                "--format=JobID,JobName,State,ExitCode,Reason".into(),
            ]);
            match a {
                Ok(text) => {
                    for (id, (_, job)) in parse_sacct(&text) {
                        out.insert(id, job);
                    }
                }
                Err(e) => tracing::debug!("sacct failed ({e}); asking scontrol"),
            }
            for id in settled {
                if out.get(id).is_none_or(|j| j.exit_code.is_none())
                    && let Ok(text) = self.slurm(&[
                        "scontrol".into(),
                        "show".into(),
                        "job".into(),
                        "-o".into(),
                        id.into(),
                    ])
                    && let Some(job) = parse_scontrol(&text)
                {
                    out.insert(id.to_owned(), job);
                }
            }
        }
        Ok(out)
    }

    /// What the queue shows of each dataset's jobs, listed at most every
    /// [`QUEUE_LISTING_TTL`]. `Ok(None)` when Slurm does not answer.
    fn queue(&self) -> Result<Option<std::sync::Arc<HashMap<String, QueueMark>>>, String> {
        let mut kept = self
            .listing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, listing)) = kept.as_ref()
            && at.elapsed() < QUEUE_LISTING_TTL
        {
            return Ok(Some(listing.clone()));
        }
        let at = std::time::Instant::now();
        // Every user's jobs, not `--me`: a job submitted by an operator's own tick is the
        // dataset's as much as cron's.
        let argv: Vec<String> = ["squeue", "-h", "-t", "all", "-o", "%i|%j|%T"]
            .map(String::from)
            .to_vec();
        let stdout = match self.slurm(&argv) {
            Ok(out) => out,
            Err(e) => {
                // Slurm not answering is no dataset's news: the tick polls as before.
                tracing::warn!("cannot list Slurm's queue for cursors: {e}");
                return Ok(None);
            }
        };
        let listing = std::sync::Arc::new(parse_queue(&stdout)?);
        *kept = Some((at, listing.clone()));
        Ok(Some(listing))
    }

    fn poll_job(
        &self,
        dataset: &DatasetName,
        (job, name, lfn): (JobKey, &str, Option<&str>),
        known: Option<&SlurmJob>,
    ) -> Option<Outcome> {
        match known {
            None => Some(Outcome::JobLost { job }),
            Some(sj) => match meaning(sj) {
                Meaning::Waiting => None,
                Meaning::Running => Some(Outcome::Started { job }),
                Meaning::Completed => Some(self.layout.finished(dataset, job, lfn)),
                Meaning::Failed(reason, class) => {
                    tracing::debug!(job = name, "{reason}");
                    Some(Outcome::JobFailed {
                        job,
                        exit_code: sj.exit_code,
                        reason,
                        class,
                    })
                }
            },
        }
    }

    /// A job reserved but never recorded as submitted: look it up by name first.
    fn adopt(&self, job: JobKey, name: &str) -> Option<Outcome> {
        match self.lookup(name) {
            Ok(Some(batch_id)) => Some(Outcome::Submitted { job, batch_id }),
            Ok(None) => Some(refused(
                job,
                Failed::unknown(
                    "reserved but never submitted (Slurm knows no job of that name)".into(),
                ),
            )),
            Err(e) => {
                tracing::warn!(job = name, "cannot look the job up: {e}");
                None
            }
        }
    }
}

impl Backend for SlurmBackend {
    /// `scancel` with every batch id in one call, and `scancel --name` for a job reserved
    /// but not known to be submitted. Slurm takes a job that has ended without complaint.
    fn cancel(&self, _: &DatasetName, jobs: &[Poll]) -> Result<(), BackendError> {
        let mut ids = vec!["scancel".to_owned()];
        let mut calls = Vec::new();
        for p in jobs {
            match p {
                Poll::Job {
                    batch_id: Some(b), ..
                } => ids.push(b.clone()),
                Poll::Job { name, .. } => {
                    calls.push(vec!["scancel".into(), format!("--name={name}")])
                }
                _ => {}
            }
        }
        if ids.len() > 1 {
            calls.push(ids);
        }
        for argv in calls {
            self.slurm(&argv).map_err(|message| BackendError {
                backend: "slurm",
                message,
            })?;
        }
        Ok(())
    }

    fn perform(
        &self,
        dataset: &DatasetName,
        actions: &[Action],
    ) -> Result<Vec<Outcome>, BackendError> {
        let (jobs, files): (Vec<&Action>, Vec<&Action>) = actions
            .iter()
            .partition(|a| matches!(a, Action::SubmitReco { .. } | Action::SubmitMerge { .. }));
        let mut out = Vec::new();
        let files: Vec<Action> = files.into_iter().cloned().collect();
        match &self.steps {
            Some(steps) => out.extend(steps.perform(dataset, &files)?),
            None => out.extend(files.iter().filter_map(|a| self.local(a))),
        }
        let this = self;
        out.extend(
            process::bounded(&jobs, self.cfg.parallel, |a| this.submit(dataset, a))
                .into_iter()
                .flatten(),
        );
        Ok(out)
    }

    fn poll(&self, dataset: &DatasetName, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        let (jobs, files): (Vec<&Poll>, Vec<&Poll>) =
            polls.iter().partition(|p| matches!(p, Poll::Job { .. }));
        let mut out = Vec::new();
        let files: Vec<Poll> = files.into_iter().cloned().collect();
        match &self.steps {
            Some(steps) => out.extend(steps.poll(dataset, &files)?),
            None => out.extend(files.iter().filter_map(|p| self.local_poll(p))),
        }
        let ids: Vec<&str> = jobs
            .iter()
            .filter_map(|p| match p {
                Poll::Job {
                    batch_id: Some(b), ..
                } => Some(b.as_str()),
                _ => None,
            })
            .collect();
        let known = match self.statuses(&ids) {
            Ok(k) => k,
            Err(e) => {
                // Slurm not answering is no job's failure: ask again next time.
                tracing::warn!("cannot ask Slurm about {} jobs: {e}", ids.len());
                return Ok(out);
            }
        };
        let this = self;
        out.extend(
            process::bounded(&jobs, self.cfg.parallel, |p| match p {
                Poll::Job {
                    job,
                    name,
                    batch_id: Some(b),
                    lfn,
                } => this.poll_job(dataset, (*job, name, lfn.as_deref()), known.get(b.as_str())),
                Poll::Job {
                    job,
                    name,
                    batch_id: None,
                    ..
                } => this.adopt(*job, name),
                _ => None,
            })
            .into_iter()
            .flatten(),
        );
        Ok(out)
    }

    /// What Slurm's queue shows of the dataset's jobs ([`QueueMark`]), with the site
    /// tools' cursor when staging, declaring and deleting go through them (`None` if they
    /// have none). Files on the local filesystem need no cursor of their own: their polls
    /// always answer, so a dataset settles with none of them outstanding.
    fn cursor(&self, dataset: &DatasetName) -> Result<Option<String>, BackendError> {
        let steps = match &self.steps {
            Some(steps) => match steps.cursor(dataset)? {
                Some(c) => Some(c),
                None => return Ok(None),
            },
            None => None,
        };
        let queue = self.queue().map_err(|message| BackendError {
            backend: "slurm",
            message,
        })?;
        let Some(queue) = queue else {
            return Ok(None);
        };
        let mark = queue.get(dataset.as_str()).copied().unwrap_or_default();
        Ok(Some(match steps {
            Some(c) => format!("slurm {mark} steps {c}"),
            None => format!("slurm {mark}"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, code: Option<i32>) -> SlurmJob {
        SlurmJob {
            state: state.into(),
            exit_code: code,
            signal: Some(0),
            reason: "None".into(),
        }
    }

    #[test]
    fn slurm_states_map_to_the_lifecycle_keeping_the_reason() {
        assert_eq!(meaning(&job("PENDING", None)), Meaning::Waiting);
        assert_eq!(meaning(&job("RUNNING", None)), Meaning::Running);
        assert_eq!(meaning(&job("COMPLETED", Some(0))), Meaning::Completed);
        use ErrorClass::*;
        for (s, want) in [
            ("FAILED", Unknown),
            ("TIMEOUT", Permanent),
            ("NODE_FAIL", Transient),
            ("OUT_OF_MEMORY", Permanent),
            ("PREEMPTED", Transient),
            ("BOOT_FAIL", Transient),
            ("CANCELLED by 0", Transient),
        ] {
            match meaning(&job(s, Some(1))) {
                Meaning::Failed(why, class) => {
                    assert!(
                        why.starts_with(&format!("slurm: {s}, exit code 1")),
                        "{why}"
                    );
                    assert_eq!(class, want, "{s}");
                }
                other => panic!("{s} -> {other:?}"),
            }
        }
    }

    #[test]
    fn sacct_and_scontrol_output_parse() {
        let out =
            "12|ds.reco.f1.a1|COMPLETED|0:0|None\n13|ds.reco.f2.a1|TIMEOUT|0:15|TimeLimit\n\n";
        let m = parse_sacct(out);
        assert_eq!(m["12"].0, "ds.reco.f1.a1");
        assert_eq!(
            m["13"].1,
            SlurmJob {
                state: "TIMEOUT".into(),
                exit_code: Some(0),
                signal: Some(15),
                reason: "TimeLimit".into()
            }
        );
        let s = parse_scontrol("JobId=7 JobName=x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0\n").unwrap();
        assert_eq!(
            (s.state.as_str(), s.exit_code, s.reason.as_str()),
            ("FAILED", Some(3), "NonZeroExitCode")
        );
        assert!(parse_scontrol("slurm_load_jobs error: Invalid job id specified").is_none());
    }

    #[test]
    fn job_names_name_their_dataset() {
        assert_eq!(dataset_of_job("p17.wz.reco.f12.a2"), Some("p17.wz"));
        assert_eq!(dataset_of_job("a.merge.g3.a1"), Some("a"));
        assert_eq!(dataset_of_job("a.reco.reco.f1.a1"), Some("a.reco"));
        for not_ours in [
            "interactive",
            "x.reco.g1.a1",
            "x.merge.f1.a1",
            "x.reco.f.a1",
            "x.reco.f1.a",
            "x.reco.f1.b1",
            ".reco.f1.a1",
            "reco.f1.a1",
        ] {
            assert_eq!(dataset_of_job(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn the_queue_marks_each_datasets_jobs_and_moves_with_any_of_them() {
        let q = "12|a.reco.f1.a1|RUNNING\n13|a.reco.f2.a1|PENDING\n\n14|b.c.merge.g1.a1|COMPLETED\n15|my notebook|RUNNING\n16|x|y|RUNNING\n1234_[5-10]|sweep|PENDING\n77+0|het|RUNNING\n";
        let m = parse_queue(q).unwrap();
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!((m["a"].jobs, m["b.c"].jobs), (2, 1));
        // The order squeue prints in does not matter; any state, job or forgotten job does.
        let reordered = "13|a.reco.f2.a1|PENDING\n12|a.reco.f1.a1|RUNNING\n";
        assert_eq!(parse_queue(reordered).unwrap()["a"], m["a"]);
        for changed in [
            "12|a.reco.f1.a1|COMPLETED\n13|a.reco.f2.a1|PENDING\n",
            "12|a.reco.f1.a1|RUNNING\n13|a.reco.f2.a1|RUNNING\n",
            "13|a.reco.f2.a1|PENDING\n",
            "12|a.reco.f1.a1|RUNNING\n13|a.reco.f2.a1|PENDING\n17|a.reco.f1.a2|PENDING\n",
        ] {
            assert_ne!(parse_queue(changed).unwrap()["a"], m["a"], "{changed}");
        }
        // A dataset with no job in the queue is an empty mark, not an error.
        assert_eq!(
            parse_queue("")
                .unwrap()
                .get("a")
                .copied()
                .unwrap_or_default(),
            QueueMark::default()
        );
        for garbage in [
            "squeue: error: Invalid user",
            "12 a.reco.f1.a1 RUNNING",
            "1 2|a.reco.f1.a1|RUNNING",
            "12|a.reco.f1.a1|",
            "|a.reco.f1.a1|RUNNING",
            "12|a.reco.f1.a1|running",
        ] {
            let e = parse_queue(garbage).unwrap_err();
            assert!(e.contains(garbage.trim()), "{e}");
        }
    }

    #[test]
    fn squeue_output_parses_and_skips_what_is_not_a_job() {
        let out = "  41|RUNNING|None\n42|PENDING|Priority|extra\nslurm_load_jobs error: Invalid job id\n|RUNNING|x\n43|\n";
        let m = parse_squeue(out);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(meaning(&m["41"]), Meaning::Running);
        assert_eq!(m["42"].reason, "Priority|extra");
        assert_eq!(meaning(&m["42"]), Meaning::Waiting);
    }
}
