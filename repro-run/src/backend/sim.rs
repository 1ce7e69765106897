//! The `sim` backend: a deterministic, seeded simulation of the storage system, the batch
//! system and the catalog.
//!
//! Its world is a directory of JSON files, one per dataset, that outlives the process, as a
//! real batch system does, so that separate cron runs (and concurrent ones: a file is locked
//! while it is used) see one world. Every random choice is a hash of the seed and the
//! action's identity (dataset, file, attempt), so the same campaign fails the same way
//! however runs interleave. Every
//! external action can be appended to a journal, one JSON object a line.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use repro_core::job::JobSubject;
use repro_core::view::MergedFile;
use repro_core::{Action, DatasetName, Outcome, Poll, TmbFile};
use serde::{Deserialize, Serialize};

use super::{Backend, BackendError};
use crate::config::SimConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Fate {
    Done,
    Failed,
    Lost,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageRequest {
    ready_at: f64,
    fate: Fate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimJob {
    batch_id: String,
    ready_at: f64,
    fate: Fate,
}

/// Everything the simulated world holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct World {
    next_batch_id: u64,
    /// Stage requests by `dataset/lfn`.
    stage: BTreeMap<String, StageRequest>,
    /// Jobs the batch system knows, by name.
    jobs: BTreeMap<String, SimJob>,
    /// Merged files in the catalog.
    catalog: BTreeSet<String>,
    /// `dataset/lfn` whose intermediate files were deleted.
    deleted: BTreeSet<String>,
}

/// One journal line.
#[derive(Debug, Serialize)]
struct JournalEntry<'a> {
    action: &'static str,
    dataset: &'a str,
    file: &'a str,
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<&'a str>,
}

/// The simulation.
#[derive(Debug)]
pub struct SimBackend {
    config: SimConfig,
    /// Seconds since the epoch, read by the driver.
    now: f64,
}

fn err(message: impl ToString) -> BackendError {
    BackendError {
        backend: "sim",
        message: message.to_string(),
    }
}

/// A stable 64-bit hash (FNV-1a with a final mix): the same on every machine and version.
fn hash(seed: u64, key: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

impl SimBackend {
    /// A simulation configured by `config`, at time `now` (seconds since the epoch).
    pub fn new(config: SimConfig, now: f64) -> Self {
        SimBackend { config, now }
    }

    fn chance(&self, p: f64, key: &str) -> bool {
        p > 0.0 && (hash(self.config.seed, key) as f64 / u64::MAX as f64) < p
    }

    fn fate(&self, failure: f64, key: &str) -> Fate {
        if self.chance(self.config.lost_job, &format!("lost/{key}")) {
            Fate::Lost
        } else if self.chance(failure, &format!("fail/{key}")) {
            Fate::Failed
        } else {
            Fate::Done
        }
    }

    /// Submits one job to the simulated batch system: journal it, give it a batch id and a
    /// fate drawn from its name.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        w: &mut World,
        journal: &mut Journal,
        (dataset, file): (&str, &str),
        action: &'static str,
        job: repro_core::JobKey,
        name: &str,
        failure: f64,
        ready_at: f64,
    ) -> Outcome {
        journal.log(&JournalEntry {
            action,
            dataset,
            file,
            attempt: job.attempt,
            job: Some(name),
        });
        w.next_batch_id += 1;
        let batch_id = w.next_batch_id.to_string();
        let fate = self.fate(failure, name);
        w.jobs.insert(
            name.to_owned(),
            SimJob {
                batch_id: batch_id.clone(),
                ready_at,
                fate,
            },
        );
        Outcome::Submitted { job, batch_id }
    }

    /// Runs `f` on one dataset's part of the world with its file locked, writing it back
    /// afterwards. Each dataset has a file of its own (datasets share nothing outside), so a
    /// call costs what that dataset holds, not the whole campaign.
    fn with_world<T>(
        &self,
        dataset: &str,
        f: impl FnOnce(&mut World, &mut Journal) -> T,
    ) -> Result<T, BackendError> {
        let dir = &self.config.world;
        std::fs::create_dir_all(dir).map_err(|e| {
            err(format!(
                "cannot create the world directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = &dir.join(format!("{dataset}.json"));
        let lock_path = dir.join(format!("{dataset}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err(format!("cannot open {}: {e}", lock_path.display())))?;
        lock.lock()
            .map_err(|e| err(format!("cannot lock {}: {e}", lock_path.display())))?;
        let mut world: World = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| err(format!("world file {} is corrupt: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => World::default(),
            Err(e) => return Err(err(format!("cannot read {}: {e}", path.display()))),
        };
        let mut journal = Journal::open(self.config.journal.as_deref())?;
        let out = f(&mut world, &mut journal);
        journal.flush()?;
        write_atomically(path, &serde_json::to_vec(&world).map_err(err)?)?;
        drop(lock);
        Ok(out)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BackendError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot replace {}: {e}", path.display())))
}

/// The journal, buffered while the world is locked.
struct Journal {
    file: Option<(PathBuf, File)>,
    buf: Vec<u8>,
}

impl Journal {
    fn open(path: Option<&Path>) -> Result<Journal, BackendError> {
        let file = match path {
            None => None,
            Some(p) => Some((
                p.to_owned(),
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| err(format!("cannot open journal {}: {e}", p.display())))?,
            )),
        };
        Ok(Journal {
            file,
            buf: Vec::new(),
        })
    }

    fn log(&mut self, entry: &JournalEntry<'_>) {
        if self.file.is_some() {
            // Serialising these plain fields cannot fail.
            let _ = serde_json::to_writer(&mut self.buf, entry);
            self.buf.push(b'\n');
        }
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        if let Some((path, f)) = &mut self.file {
            f.write_all(&self.buf)
                .map_err(|e| err(format!("cannot append to journal {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

impl Backend for SimBackend {
    fn perform(
        &self,
        dataset: &DatasetName,
        actions: &[Action],
    ) -> Result<Vec<Outcome>, BackendError> {
        let ds = dataset.as_str();
        let ready_at = self.now + self.config.duration_s;
        self.with_world(ds, |w, journal| {
            let mut out = Vec::new();
            for a in actions {
                match a {
                    Action::Stage { lfn, attempt, .. } => {
                        journal.log(&JournalEntry {
                            action: "stage",
                            dataset: ds,
                            file: lfn,
                            attempt: *attempt,
                            job: None,
                        });
                        let key = format!("{ds}/{lfn}/{attempt}");
                        let fate =
                            if self.chance(self.config.stage_failure, &format!("stage/{key}")) {
                                Fate::Failed
                            } else {
                                Fate::Done
                            };
                        w.stage
                            .insert(format!("{ds}/{lfn}"), StageRequest { ready_at, fate });
                    }
                    Action::SubmitReco { job, name, lfn } => {
                        let (kind, p) = ("reco_submit", self.config.reco_failure);
                        out.push(self.submit(w, journal, (ds, lfn), kind, *job, name, p, ready_at));
                    }
                    Action::SubmitMerge {
                        job, name, output, ..
                    } => {
                        let (kind, p) = ("merge_submit", self.config.merge_failure);
                        out.push(self.submit(
                            w,
                            journal,
                            (ds, output),
                            kind,
                            *job,
                            name,
                            p,
                            ready_at,
                        ));
                    }
                    Action::Declare {
                        group,
                        merged,
                        attempt,
                    } => {
                        journal.log(&JournalEntry {
                            action: "declare",
                            dataset: ds,
                            file: &merged.name,
                            attempt: *attempt,
                            job: None,
                        });
                        if self.chance(
                            self.config.declare_failure,
                            &format!("declare/{ds}/{}/{attempt}", merged.name),
                        ) {
                            out.push(Outcome::DeclareFailed {
                                group: *group,
                                reason: "sim: catalog refused the declaration".into(),
                            });
                        } else {
                            w.catalog.insert(merged.name.clone());
                            out.push(Outcome::Declared { group: *group });
                        }
                    }
                    Action::Delete {
                        file, lfn, attempt, ..
                    } => {
                        journal.log(&JournalEntry {
                            action: "delete",
                            dataset: ds,
                            file: lfn,
                            attempt: *attempt,
                            job: None,
                        });
                        if self.chance(
                            self.config.delete_failure,
                            &format!("delete/{ds}/{lfn}/{attempt}"),
                        ) {
                            out.push(Outcome::DeleteFailed {
                                file: *file,
                                reason: "sim: permission denied".into(),
                            });
                        } else {
                            w.deleted.insert(format!("{ds}/{lfn}"));
                            out.push(Outcome::Deleted { file: *file });
                        }
                    }
                }
            }
            out
        })
    }

    fn poll(&self, dataset: &DatasetName, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        let ds = dataset.as_str();
        let now = self.now;
        self.with_world(ds, |w, _| {
            let mut out = Vec::new();
            for p in polls {
                match p {
                    Poll::Stage { file, lfn } => {
                        let key = format!("{ds}/{lfn}");
                        match w.stage.get(&key) {
                            None => out.push(Outcome::StageFailed {
                                file: *file,
                                reason:
                                    "sim: the storage system knows no stage request for this file"
                                        .into(),
                            }),
                            Some(r) if r.ready_at > now => {}
                            Some(r) => {
                                out.push(match r.fate {
                                    Fate::Done => Outcome::Staged { file: *file },
                                    _ => Outcome::StageFailed {
                                        file: *file,
                                        reason: "sim: tape read error".into(),
                                    },
                                });
                            }
                        }
                    }
                    Poll::Job {
                        job,
                        name,
                        batch_id,
                        lfn,
                    } => {
                        let Some(sj) = w.jobs.get_mut(name) else {
                            out.push(if batch_id.is_none() {
                                Outcome::JobFailed {
                                    job: *job,
                                    exit_code: None,
                                    reason: "reserved but never submitted".into(),
                                }
                            } else {
                                Outcome::JobLost { job: *job }
                            });
                            continue;
                        };
                        if batch_id.is_none() {
                            // Submitted before a crash that kept the batch id from being recorded.
                            out.push(Outcome::Submitted {
                                job: *job,
                                batch_id: sj.batch_id.clone(),
                            });
                            continue;
                        }
                        if sj.ready_at > now {
                            out.push(Outcome::Started { job: *job });
                            continue;
                        }
                        // A finished job answers the same each time it is asked, so an
                        // answer whose recording failed is given again.
                        match sj.fate {
                            Fate::Lost => {
                                w.jobs.remove(name);
                                out.push(Outcome::JobLost { job: *job });
                            }
                            Fate::Failed => out.push(Outcome::JobFailed {
                                job: *job,
                                exit_code: Some(1),
                                reason: "sim: job crashed".into(),
                            }),
                            Fate::Done => out.push(match job.subject {
                                JobSubject::Reco(_) => {
                                    let lfn = lfn.as_deref().unwrap_or("?");
                                    Outcome::RecoDone {
                                        job: *job,
                                        tmb: TmbFile {
                                            path: format!(
                                                "/sim/tmb/{ds}/{}.tmb",
                                                lfn.trim_start_matches('/')
                                            ),
                                            size: 1 + hash(self.config.seed, name) % 1_000_000,
                                        },
                                    }
                                }
                                JobSubject::Merge(g) => Outcome::MergeDone {
                                    job: *job,
                                    output: MergedFile {
                                        name: MergedFile::name_for(dataset, g),
                                        size: 1 + hash(self.config.seed, name) % 50_000_000,
                                    },
                                },
                            }),
                        }
                    }
                    Poll::Declaration { group, merged } => {
                        out.push(if w.catalog.contains(&merged.name) {
                            Outcome::Declared { group: *group }
                        } else {
                            Outcome::DeclareFailed {
                                group: *group,
                                reason: "sim: not in the catalog".into(),
                            }
                        })
                    }
                    Poll::Deletion { file, lfn, .. } => {
                        out.push(if w.deleted.contains(&format!("{ds}/{lfn}")) {
                            Outcome::Deleted { file: *file }
                        } else {
                            Outcome::DeleteFailed {
                                file: *file,
                                reason: "sim: still on disk".into(),
                            }
                        })
                    }
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_stable_and_follow_the_probability() {
        assert_eq!(hash(42, "x"), hash(42, "x"));
        assert_ne!(hash(42, "x"), hash(43, "x"));
        let b = SimBackend::new(SimConfig::default(), 0.0);
        let hits = (0..10_000)
            .filter(|i| b.chance(0.05, &format!("k{i}")))
            .count();
        assert!((350..650).contains(&hits), "{hits} of 10000 at p=0.05");
        assert!(!(0..1000).any(|i| b.chance(0.0, &format!("k{i}"))));
        assert!((0..1000).all(|i| b.chance(1.0, &format!("k{i}"))));
    }
}
