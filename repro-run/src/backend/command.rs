//! The `command` backend: every external step is a configured argv template, so a site
//! plugs in its own staging, batch and catalog tools (HTCondor, PBS, SAM, Rucio, dCache).
//!
//! A non-zero exit, a timeout or output that does not parse is that attempt's failure, with
//! the tool's stderr as the reason; never a crash, never a silent success.

use std::path::{Path, PathBuf};
use std::time::Duration;

use repro_core::job::{JobKey, JobSubject};
use repro_core::view::MergedFile;
use repro_core::{Action, DatasetName, FileId, GroupNo, Outcome, Poll, TmbFile};

mod bulk;

use super::process::{self, Ran, RunError};
use super::template::Step;
use super::{Backend, BackendError};
use crate::config::CommandConfig;
use repro_core::ErrorClass;

/// Where a backend that runs real jobs keeps its files.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The work directory.
    pub workdir: PathBuf,
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Layout {
    /// The TMB file a reco job writes: one per attempt, so a failed attempt's leftovers never
    /// count for another.
    /// `lfn` is the reco job's raw file (the file id names it when it is not known).
    pub fn tmb(&self, dataset: &DatasetName, job: &JobKey, lfn: Option<&str>) -> PathBuf {
        let base = match (job.subject, lfn) {
            (JobSubject::Reco(_), Some(lfn)) => safe(lfn.rsplit('/').next().unwrap_or(lfn)),
            (JobSubject::Reco(f), None) => f.to_string(),
            (JobSubject::Merge(g), _) => g.to_string(),
        };
        self.workdir
            .join("tmb")
            .join(dataset.as_str())
            .join(format!("{base}.a{}.tmb", job.attempt))
    }

    /// The merged file a merge job writes.
    pub fn merged(&self, dataset: &DatasetName, name: &str) -> PathBuf {
        self.workdir
            .join("merged")
            .join(dataset.as_str())
            .join(name)
    }

    /// The file listing a merge job's inputs.
    pub fn list(&self, job_name: &str) -> PathBuf {
        self.workdir.join("lists").join(format!("{job_name}.list"))
    }

    /// A job's script.
    pub fn script(&self, job_name: &str) -> PathBuf {
        self.workdir.join("jobs").join(format!("{job_name}.sh"))
    }

    /// A job's log.
    pub fn log(&self, job_name: &str) -> PathBuf {
        self.workdir.join("logs").join(format!("{job_name}.log"))
    }

    /// Writes a merge job's input list, one TMB path a line.
    pub fn write_list(&self, job_name: &str, inputs: &[TmbFile]) -> Result<PathBuf, String> {
        let path = self.list(job_name);
        let text: String = inputs.iter().map(|t| format!("{}\n", t.path)).collect();
        mkdir_for(&path)?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Makes a merge job's input list and output directory: the list's path and the output's.
    pub fn prepare_merge(
        &self,
        dataset: &DatasetName,
        job_name: &str,
        inputs: &[TmbFile],
        output: &str,
    ) -> Result<(PathBuf, PathBuf), String> {
        let list = self.write_list(job_name, inputs)?;
        let out = self.merged(dataset, output);
        mkdir_for(&out)?;
        Ok((list, out))
    }

    /// What a finished job produced, or why it counts as failed: its output must exist and
    /// be non-empty.
    pub fn finished(&self, dataset: &DatasetName, job: JobKey, lfn: Option<&str>) -> Outcome {
        let (path, merged_name) = match job.subject {
            JobSubject::Reco(_) => (self.tmb(dataset, &job, lfn), None),
            JobSubject::Merge(g) => {
                let name = MergedFile::name_for(dataset, g);
                (self.merged(dataset, &name), Some(name))
            }
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > 0 => match merged_name {
                None => Outcome::RecoDone {
                    job,
                    tmb: TmbFile {
                        path: path.display().to_string(),
                        size: m.len(),
                    },
                },
                Some(name) => Outcome::MergeDone {
                    job,
                    output: MergedFile {
                        name,
                        size: m.len(),
                    },
                },
            },
            Ok(_) => Outcome::JobFailed {
                job,
                exit_code: Some(0),
                reason: format!(
                    "the job finished but its output {} is empty",
                    path.display()
                ),
                class: ErrorClass::Unknown,
            },
            Err(_) => Outcome::JobFailed {
                job,
                exit_code: Some(0),
                reason: format!(
                    "the job finished but its output {} does not exist",
                    path.display()
                ),
                class: ErrorClass::Unknown,
            },
        }
    }
}

/// Creates the directory a file goes in.
pub fn mkdir_for(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display())),
        None => Ok(()),
    }
}

/// A batch id as tools print it: the first word of the first non-empty line, up to a `;`
/// (sbatch --parsable adds `;cluster`). It must hold a digit and nothing but letters,
/// digits and `._-`; anything else is garbage, not an id.
pub fn parse_batch_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let word = line.split_whitespace().next()?.split(';').next()?;
    let plausible = word.chars().any(|c| c.is_ascii_digit())
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    plausible.then(|| word.to_owned())
}

/// A cursor as a `cursor` tool prints it: one line, trimmed, not empty, printable, at most
/// 255 characters. Anything else (two lines, an empty line, control characters) is not a
/// token a tick can keep.
pub fn parse_cursor(stdout: &str) -> Option<String> {
    let token = stdout.trim();
    let fits =
        !token.is_empty() && token.chars().count() <= 255 && !token.chars().any(char::is_control);
    fits.then(|| token.to_owned())
}

/// A job's state as a `job_status` tool reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Queued.
    Pending,
    /// Running.
    Running,
    /// Finished; its output decides.
    Done,
    /// Failed, with exit code and reason if given.
    Failed(Option<i32>, String),
    /// The batch system does not know it.
    Lost,
}

/// Parses `STATE [EXIT [REASON...]]` from the first non-empty line.
pub fn parse_status(stdout: &str) -> Option<Reported> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut words = line.split_whitespace();
    let state = words.next()?.to_ascii_uppercase();
    Some(match state.as_str() {
        "PENDING" | "IDLE" | "QUEUED" => Reported::Pending,
        "RUNNING" => Reported::Running,
        "DONE" | "COMPLETED" => Reported::Done,
        "LOST" => Reported::Lost,
        "FAILED" => {
            let rest: Vec<&str> = words.collect();
            let (code, reason) = match rest.first().and_then(|w| w.parse::<i32>().ok()) {
                Some(c) => (Some(c), rest[1..].join(" ")),
                None => (None, rest.join(" ")),
            };
            Reported::Failed(code, reason)
        }
        _ => return None,
    })
}

/// An attempt that failed before its job could run (no script, no output directory).
pub fn refused(job: JobKey, failed: Failed) -> Outcome {
    Outcome::JobFailed {
        job,
        exit_code: None,
        reason: failed.reason,
        class: failed.class,
    }
}

/// Why a step failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// In the tool's words.
    pub reason: String,
    /// What the configuration (or the kind of failure) says of it.
    pub class: ErrorClass,
}

impl Failed {
    /// A failure nobody classed (this host's own, a directory it cannot write; a tool's
    /// answer no rule speaks of).
    pub fn unknown(reason: String) -> Self {
        Failed {
            reason,
            class: ErrorClass::Unknown,
        }
    }

    /// A tool that could not run (unknown) or did not answer in time (transient: a service
    /// that is slow or down).
    pub(crate) fn of_run(e: &RunError) -> Self {
        let class = match e {
            RunError::Timeout { .. } => ErrorClass::Transient,
            RunError::Spawn { .. } => ErrorClass::Unknown,
        };
        Failed {
            reason: e.to_string(),
            class,
        }
    }
}

/// What a submitting tool said, as the attempt's outcome: the batch id it printed, or why the
/// attempt failed (its exit, its timeout, or output with no job id in it).
pub fn submission(job: JobKey, argv0: &str, said: Result<Ran, Failed>) -> Outcome {
    match said {
        Ok(ran) => match parse_batch_id(&ran.stdout) {
            Some(batch_id) => Outcome::Submitted { job, batch_id },
            None => refused(job, Failed::unknown(garbage(argv0, "job id", &ran))),
        },
        Err(failed) => refused(job, failed),
    }
}

/// The `command` backend.
#[derive(Debug)]
pub struct CommandBackend {
    cfg: CommandConfig,
    layout: Layout,
}

fn garbage(argv0: &str, what: &str, ran: &Ran) -> String {
    let out = ran.stdout.trim();
    let shown: String = out.chars().take(120).collect();
    format!(
        "{argv0} printed no {what} (stdout: {shown:?}){}",
        if ran.stderr.trim().is_empty() {
            String::new()
        } else {
            format!("; stderr: {}", ran.stderr.trim())
        }
    )
}

impl CommandBackend {
    /// A backend running the tools `cfg` names.
    pub fn new(cfg: CommandConfig) -> Self {
        let layout = Layout {
            workdir: cfg.workdir.clone(),
        };
        CommandBackend { cfg, layout }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_s)
    }

    /// Runs a step; `Err` is why the attempt failed, classed by the step's rules.
    fn step(&self, step: Step, template: &[String], vars: &[(&str, &str)]) -> Result<Ran, Failed> {
        let argv = step.render(template, vars);
        let argv0 = argv.first().cloned().unwrap_or_default();
        match process::run(&argv, self.timeout()) {
            Ok(r) if r.ok() => Ok(r),
            Ok(r) => {
                let said = format!("{}\n{}", r.stdout, r.stderr);
                Err(Failed {
                    reason: r.failure(&argv0),
                    class: self.class(step, r.code, &said),
                })
            }
            Err(e) => Err(Failed::of_run(&e)),
        }
    }

    /// What `[backend.command.errors]` says of a failure of `step` (its own rules first,
    /// then those for `all`): unknown when they say nothing.
    fn class(&self, step: Step, code: Option<i32>, said: &str) -> ErrorClass {
        [step.name(), "all"]
            .iter()
            .filter_map(|k| self.cfg.errors.get(*k))
            .find_map(|r| r.class(code, said))
            .unwrap_or_default()
    }

    fn submit(
        &self,
        step: Step,
        template: &[String],
        vars: &[(&str, &str)],
        job: JobKey,
    ) -> Outcome {
        let argv0 = template.first().cloned().unwrap_or_default();
        submission(job, &argv0, self.step(step, template, vars))
    }

    fn perform_one(&self, dataset: &DatasetName, action: &Action) -> Option<Outcome> {
        let ds = dataset.as_str();
        match action {
            Action::Stage { file, lfn, attempt } => self.stage(dataset, *file, lfn, *attempt),
            Action::SubmitReco { job, name, lfn } => {
                let t = self.cfg.reco_submit.as_deref().unwrap_or_default();
                let out = self.layout.tmb(dataset, job, Some(lfn));
                if let Err(reason) = mkdir_for(&out) {
                    return Some(refused(*job, Failed::unknown(reason)));
                }
                let (out, attempt) = (out.display().to_string(), job.attempt.to_string());
                Some(self.submit(
                    Step::RecoSubmit,
                    t,
                    &[
                        ("dataset", ds),
                        ("file", lfn),
                        ("output", &out),
                        ("job", name),
                        ("attempt", &attempt),
                    ],
                    *job,
                ))
            }
            Action::SubmitMerge {
                job,
                name,
                inputs,
                output,
            } => {
                let t = self.cfg.merge_submit.as_deref().unwrap_or_default();
                let (list, out) = match self.layout.prepare_merge(dataset, name, inputs, output) {
                    Ok(paths) => paths,
                    Err(reason) => return Some(refused(*job, Failed::unknown(reason))),
                };
                let (list, out, attempt) = (
                    list.display().to_string(),
                    out.display().to_string(),
                    job.attempt.to_string(),
                );
                Some(self.submit(
                    Step::MergeSubmit,
                    t,
                    &[
                        ("dataset", ds),
                        ("files", &list),
                        ("output", &out),
                        ("job", name),
                        ("attempt", &attempt),
                    ],
                    *job,
                ))
            }
            Action::Declare {
                group,
                merged,
                attempt,
            } => self.declare(dataset, *group, merged, *attempt),
            Action::Delete {
                file,
                lfn,
                tmb,
                attempt,
            } => self.delete(dataset, *file, lfn, tmb.as_ref(), *attempt),
        }
    }

    /// Asks for a raw file to be staged through the `stage` step (none: on disk already).
    fn stage(
        &self,
        dataset: &DatasetName,
        file: FileId,
        lfn: &str,
        attempt: u32,
    ) -> Option<Outcome> {
        let ds = dataset.as_str();
        let t = self.cfg.stage.as_ref()?;
        let attempt = attempt.to_string();
        match self.step(
            Step::Stage,
            t,
            &[("dataset", ds), ("file", lfn), ("attempt", &attempt)],
        ) {
            Ok(_) => None,
            Err(Failed { reason, class }) => Some(Outcome::StageFailed {
                file,
                reason,
                class,
            }),
        }
    }

    /// Whether a raw file is staged, through the `stage_status` step (none: it is).
    fn stage_state(&self, dataset: &DatasetName, file: FileId, lfn: &str) -> Option<Outcome> {
        let ds = dataset.as_str();
        let Some(t) = &self.cfg.stage_status else {
            return Some(Outcome::Staged { file });
        };
        let argv0 = t.first().cloned().unwrap_or_default();
        match self.step(Step::StageStatus, t, &[("dataset", ds), ("file", lfn)]) {
            Err(Failed { reason, class }) => Some(Outcome::StageFailed {
                file,
                reason,
                class,
            }),
            Ok(ran) => {
                let line = ran
                    .stdout
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("");
                let mut words = line.split_whitespace();
                match words.next().map(str::to_ascii_uppercase).as_deref() {
                    Some("STAGED") => Some(Outcome::Staged { file }),
                    Some("PENDING") => None,
                    Some("FAILED") => {
                        let why = words.collect::<Vec<_>>().join(" ");
                        Some(Outcome::StageFailed {
                            file,
                            class: self.class(Step::StageStatus, None, &why),
                            reason: format!("{argv0}: {why}"),
                        })
                    }
                    _ => Some(Outcome::StageFailed {
                        file,
                        reason: garbage(&argv0, "stage state", &ran),
                        class: ErrorClass::Unknown,
                    }),
                }
            }
        }
    }

    /// A submitted job's state through the `job_status` step.
    fn job_state(
        &self,
        dataset: &DatasetName,
        (job, name, batch_id): (JobKey, &str, &str),
        lfn: Option<&str>,
    ) -> Option<Outcome> {
        let ds = dataset.as_str();
        let t = self.cfg.job_status.as_deref().unwrap_or_default();
        let argv0 = t.first().cloned().unwrap_or_default();
        let ran = match self.step(
            Step::JobStatus,
            t,
            &[("dataset", ds), ("job", name), ("batch_id", batch_id)],
        ) {
            Ok(r) => r,
            Err(failed) => {
                return Some(refused(job, failed));
            }
        };
        match parse_status(&ran.stdout) {
            Some(Reported::Pending) => None,
            Some(Reported::Running) => Some(Outcome::Started { job }),
            Some(Reported::Done) => Some(self.layout.finished(dataset, job, lfn)),
            Some(Reported::Failed(exit_code, reason)) => Some(Outcome::JobFailed {
                job,
                exit_code,
                class: self.class(Step::JobStatus, exit_code, &reason),
                reason: if reason.is_empty() {
                    format!("{argv0} reports the job failed")
                } else {
                    reason
                },
            }),
            Some(Reported::Lost) => Some(Outcome::JobLost { job }),
            None => Some(refused(
                job,
                Failed::unknown(garbage(&argv0, "job state", &ran)),
            )),
        }
    }

    /// Declares a merged file through the `declare` step (none: declared).
    fn declare(
        &self,
        dataset: &DatasetName,
        group: GroupNo,
        merged: &MergedFile,
        attempt: u32,
    ) -> Option<Outcome> {
        let ds = dataset.as_str();
        let Some(t) = &self.cfg.declare else {
            return Some(Outcome::Declared { group });
        };
        let out = self
            .layout
            .merged(dataset, &merged.name)
            .display()
            .to_string();
        let attempt = attempt.to_string();
        Some(
            match self.step(
                Step::Declare,
                t,
                &[
                    ("dataset", ds),
                    ("file", &merged.name),
                    ("output", &out),
                    ("attempt", &attempt),
                ],
            ) {
                Ok(_) => Outcome::Declared { group },
                Err(Failed { reason, class }) => Outcome::DeclareFailed {
                    group,
                    reason,
                    class,
                },
            },
        )
    }

    /// Deletes a raw file's intermediates through the `delete` step (none: deleted).
    fn delete(
        &self,
        dataset: &DatasetName,
        file: FileId,
        lfn: &str,
        tmb: Option<&TmbFile>,
        attempt: u32,
    ) -> Option<Outcome> {
        let ds = dataset.as_str();
        let Some(t) = &self.cfg.delete else {
            return Some(Outcome::Deleted { file });
        };
        let tmb = tmb.map_or("", |t| t.path.as_str());
        let attempt = attempt.to_string();
        Some(
            match self.step(
                Step::Delete,
                t,
                &[
                    ("dataset", ds),
                    ("file", lfn),
                    ("tmb", tmb),
                    ("attempt", &attempt),
                ],
            ) {
                Ok(_) => Outcome::Deleted { file },
                Err(Failed { reason, class }) => Outcome::DeleteFailed {
                    file,
                    reason,
                    class,
                },
            },
        )
    }

    fn poll_one(&self, dataset: &DatasetName, poll: &Poll) -> Option<Outcome> {
        let ds = dataset.as_str();
        match poll {
            Poll::Stage { file, lfn } => self.stage_state(dataset, *file, lfn),
            Poll::Job {
                job,
                name,
                batch_id: None,
                ..
            } => {
                let Some(t) = &self.cfg.job_lookup else {
                    return Some(refused(*job, Failed::unknown(
                        "reserved but never recorded as submitted, and no job_lookup is configured to check".into(),
                    )));
                };
                Some(
                    match self.step(Step::JobLookup, t, &[("dataset", ds), ("job", name)]) {
                        Ok(ran) => match parse_batch_id(&ran.stdout) {
                            Some(batch_id) => Outcome::Submitted {
                                job: *job,
                                batch_id,
                            },
                            None => refused(
                                *job,
                                Failed::unknown("reserved but never submitted".into()),
                            ),
                        },
                        Err(failed) => refused(*job, failed),
                    },
                )
            }
            Poll::Job {
                job,
                name,
                batch_id: Some(batch_id),
                lfn,
            } => self.job_state(dataset, (*job, name, batch_id), lfn.as_deref()),
            // The outcome of an interrupted declaration or deletion is unknown here: the step
            // is tried again as a new attempt (catalogs and deletions are idempotent).
            Poll::Declaration { group, .. } => Some(Outcome::DeclareFailed {
                group: *group,
                reason: "interrupted before its outcome was recorded".into(),
                class: ErrorClass::Transient,
            }),
            Poll::Deletion { file, .. } => Some(Outcome::DeleteFailed {
                file: *file,
                reason: "interrupted before its outcome was recorded".into(),
                class: ErrorClass::Transient,
            }),
        }
    }
}

impl Backend for CommandBackend {
    /// The `cancel` step, once per job; the first that fails stops the cancel.
    fn cancel(&self, dataset: &DatasetName, jobs: &[Poll]) -> Result<(), BackendError> {
        let error = |message| BackendError {
            backend: "command",
            message,
        };
        let Some(t) = &self.cfg.cancel else {
            return Err(error(format!(
                "{dataset}: no `cancel` step is configured in [backend.command], so no job was killed"
            )));
        };
        for p in jobs {
            if let Poll::Job { name, batch_id, .. } = p {
                let b = batch_id.as_deref().unwrap_or("");
                let vars = [
                    ("dataset", dataset.as_str()),
                    ("job", name),
                    ("batch_id", b),
                ];
                self.step(Step::Cancel, t, &vars)
                    .map_err(|f| error(format!("{dataset}: cancel {name}: {}", f.reason)))?;
            }
        }
        Ok(())
    }

    fn perform(
        &self,
        dataset: &DatasetName,
        actions: &[Action],
    ) -> Result<Vec<Outcome>, BackendError> {
        let mut out = Vec::new();
        let mut one_by_one: Vec<&Action> = Vec::new();
        let (mut stage, mut delete) = (Vec::new(), Vec::new());
        for a in actions {
            match a {
                Action::Stage { file, lfn, .. } if self.cfg.stage_bulk.is_some() => {
                    stage.push(bulk::Item {
                        file: *file,
                        lfn,
                        tmb: None,
                    });
                }
                Action::Delete { file, lfn, tmb, .. } if self.cfg.delete_bulk.is_some() => {
                    delete.push(bulk::Item {
                        file: *file,
                        lfn,
                        tmb: tmb.as_ref(),
                    });
                }
                _ => one_by_one.push(a),
            }
        }
        if let Some(t) = &self.cfg.stage_bulk
            && !stage.is_empty()
        {
            out.extend(self.stage_bulk(t, dataset, &stage));
        }
        if let Some(t) = &self.cfg.delete_bulk
            && !delete.is_empty()
        {
            out.extend(self.delete_bulk(t, dataset, &delete));
        }
        let this = self;
        out.extend(
            process::bounded(&one_by_one, self.cfg.parallel, |a| {
                this.perform_one(dataset, a)
            })
            .into_iter()
            .flatten(),
        );
        Ok(out)
    }

    fn poll(&self, dataset: &DatasetName, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        let mut out = Vec::new();
        let mut one_by_one: Vec<&Poll> = polls.iter().collect();
        if let Some(t) = &self.cfg.stage_status_bulk {
            let stage: Vec<bulk::Item<'_>> = polls
                .iter()
                .filter_map(|p| match p {
                    Poll::Stage { file, lfn } => Some(bulk::Item {
                        file: *file,
                        lfn,
                        tmb: None,
                    }),
                    _ => None,
                })
                .collect();
            if !stage.is_empty() {
                out.extend(self.stage_status_bulk(t, dataset, &stage));
            }
            one_by_one.retain(|p| !matches!(p, Poll::Stage { .. }));
        }
        let this = self;
        out.extend(
            process::bounded(&one_by_one, self.cfg.parallel, |p| {
                this.poll_one(dataset, p)
            })
            .into_iter()
            .flatten(),
        );
        Ok(out)
    }

    /// The `cursor` tool's token, if one is configured. A tool that fails or prints no
    /// token is an error for the dataset (never a token that might not move).
    fn cursor(&self, dataset: &DatasetName) -> Result<Option<String>, BackendError> {
        let Some(t) = &self.cfg.cursor else {
            return Ok(None);
        };
        let argv0 = t.first().cloned().unwrap_or_default();
        let fail = |message| BackendError {
            backend: "command",
            message,
        };
        let ran = self
            .step(Step::Cursor, t, &[("dataset", dataset.as_str())])
            .map_err(|f| fail(format!("cursor for {dataset}: {}", f.reason)))?;
        parse_cursor(&ran.stdout).map(Some).ok_or_else(|| {
            fail(format!(
                "cursor for {dataset}: {}",
                garbage(
                    &argv0,
                    "cursor (one line of at most 255 printable characters)",
                    &ran
                )
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tools_failure_is_classed_by_the_steps_rules_then_all_rules() {
        use crate::config::ErrorRules;
        use repro_core::FileId;
        let sh = |script: &str| Some(vec!["sh".into(), "-c".into(), script.into()]);
        let rules = |t: &[i32], p: &[i32], tw: &[&str], pw: &[&str]| ErrorRules {
            transient_exit: t.to_vec(),
            permanent_exit: p.to_vec(),
            transient: tw.iter().map(|w| w.to_string()).collect(),
            permanent: pw.iter().map(|w| w.to_string()).collect(),
        };
        let class_of = |script: &str| {
            let mut cfg = CommandConfig {
                stage: sh(script),
                ..CommandConfig::default()
            };
            cfg.errors
                .insert("stage".into(), rules(&[75], &[2], &[], &[]));
            cfg.errors
                .insert("all".into(), rules(&[], &[], &["503"], &["No such file"]));
            let b = CommandBackend::new(cfg);
            let stage = Action::Stage {
                file: FileId(1),
                lfn: "/store/raw1".into(),
                attempt: 1,
            };
            let out = b
                .perform(&DatasetName::new("ds").unwrap(), &[stage])
                .unwrap();
            match &out[..] {
                [Outcome::StageFailed { class, .. }] => *class,
                other => panic!("{script}: {other:?}"),
            }
        };
        assert_eq!(class_of("exit 75"), ErrorClass::Transient);
        assert_eq!(class_of("exit 2"), ErrorClass::Permanent);
        assert_eq!(
            class_of("echo 'HTTP 503' >&2; exit 1"),
            ErrorClass::Transient
        );
        assert_eq!(
            class_of("echo 'No such file' >&2; exit 1"),
            ErrorClass::Permanent
        );
        assert_eq!(class_of("exit 1"), ErrorClass::Unknown);
    }

    #[test]
    fn cursors_from_real_tools_and_garbage() {
        assert_eq!(parse_cursor("4711\n").as_deref(), Some("4711"));
        assert_eq!(
            parse_cursor("  2026-12-03T17:00:00 events=42 \n").as_deref(),
            Some("2026-12-03T17:00:00 events=42")
        );
        for garbage in ["", "\n\n", "a\nb\n", "tab\there", &"x".repeat(256)] {
            assert_eq!(parse_cursor(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn batch_ids_from_real_tools_and_garbage() {
        assert_eq!(parse_batch_id("4242\n").as_deref(), Some("4242"));
        assert_eq!(parse_batch_id("4242;ci\n").as_deref(), Some("4242"));
        assert_eq!(
            parse_batch_id("\n123.0 - 123.0\n").as_deref(),
            Some("123.0")
        );
        assert_eq!(parse_batch_id(""), None);
        assert_eq!(parse_batch_id("Submitted batch job 42\n"), None);
        assert_eq!(parse_batch_id("<html>\n"), None);
    }

    #[test]
    fn statuses() {
        assert_eq!(parse_status("RUNNING\n"), Some(Reported::Running));
        assert_eq!(parse_status("done"), Some(Reported::Done));
        assert_eq!(
            parse_status("FAILED 137 out of memory"),
            Some(Reported::Failed(Some(137), "out of memory".into()))
        );
        assert_eq!(
            parse_status("FAILED"),
            Some(Reported::Failed(None, String::new()))
        );
        assert_eq!(parse_status("¯\\_(ツ)_/¯"), None);
    }
}
