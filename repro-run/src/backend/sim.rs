//! The `sim` backend: a deterministic, seeded simulation of the storage system, the batch
//! system and the catalog.
//!
//! Its world is a directory of JSON files, one per dataset, that outlives the process, as a
//! real batch system does, so that separate cron runs (and concurrent ones: a file is locked
//! while it is used) see one world. Every random choice is a hash of the seed and the
//! action's identity (dataset, file, attempt), so the same campaign fails the same way
//! however runs interleave. Every
//! external action can be appended to a journal, one JSON object a line.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use repro_core::job::JobSubject;
use repro_core::view::MergedFile;
use repro_core::{Action, DatasetName, Outcome, Poll, TmbFile};
use serde::{Deserialize, Serialize};

use super::{Backend, BackendError};
use crate::config::{Service, SimConfig, SimSite};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Fate {
    Done,
    Failed,
    Lost,
    /// Refused by a service that is down (`[[backend.sim.outages]]`).
    Refused,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageRequest {
    ready_at: f64,
    fate: Fate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimJob {
    batch_id: String,
    /// When it gets a batch slot; until then it waits in the queue (absent in worlds
    /// written before sites had slots: it started at once).
    #[serde(default)]
    start_at: f64,
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

/// What a site's capacity holds between calls: when each batch slot is free next, and
/// when its storage system has staged everything asked of it so far.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SiteWorld {
    /// When each slot is next free (seconds since the epoch).
    slots: Vec<f64>,
    /// When the storage system is next free.
    stage_free_at: f64,
}

/// A time, ordered (the slot times are finite).
#[derive(Debug, Clone, Copy, PartialEq)]
struct At(f64);

impl Eq for At {}

impl PartialOrd for At {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for At {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A site's queues for the length of one call: first come, first served.
struct Queues {
    capacity: SimSite,
    /// Slots by when they are free, earliest first.
    slots: BinaryHeap<Reverse<At>>,
    stage_free_at: f64,
}

impl Queues {
    fn new(capacity: SimSite, world: &SiteWorld) -> Queues {
        let mut free: Vec<f64> = world.slots.clone();
        if let Some(n) = capacity.slots {
            // The configuration may have changed: keep the slots that free up first.
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            free.sort_by(f64::total_cmp);
            free.truncate(n);
            free.resize(n, 0.0);
        }
        Queues {
            capacity,
            slots: free.into_iter().map(|t| Reverse(At(t))).collect(),
            stage_free_at: world.stage_free_at,
        }
    }

    /// When a job submitted at `now` that runs `d` seconds starts and ends.
    fn run(&mut self, now: f64, d: f64) -> (f64, f64) {
        if self.capacity.slots.is_none() {
            return (now, now + d);
        }
        let Some(Reverse(At(free))) = self.slots.pop() else {
            return (now, now + d);
        };
        let start = now.max(free);
        self.slots.push(Reverse(At(start + d)));
        (start, start + d)
    }

    /// When a stage request made at `now` that takes `d` seconds once served is done.
    fn stage(&mut self, now: f64, d: f64) -> f64 {
        let Some(rate) = self.capacity.stage_rate else {
            return now + d;
        };
        let served = now.max(self.stage_free_at) + 3600.0 / rate;
        self.stage_free_at = served;
        served + d
    }

    fn save(self) -> SiteWorld {
        SiteWorld {
            slots: self.slots.into_iter().map(|Reverse(At(t))| t).collect(),
            stage_free_at: self.stage_free_at,
        }
    }
}

/// The simulation.
#[derive(Debug)]
pub struct SimBackend {
    config: SimConfig,
    /// Seconds since the epoch, read by the driver.
    now: f64,
    /// The site of each dataset that has one, for the capacity of its site.
    sites: BTreeMap<String, String>,
    /// Where the world is kept when not in files ([`SimBackend::with_memory`]).
    memory: Option<Arc<SimMemory>>,
}

/// A simulated world kept in this process's memory instead of its directory: for
/// `simulate`, whose world is its own and is thrown away at the end. The answers are the
/// same as from files (the world is the same values, not serialized); what is saved is
/// reading, parsing, serializing and writing a dataset's whole world at every call (13
/// MB at 50,000 files). Shared by the backends of every tick of one simulation.
#[derive(Debug, Default)]
pub struct SimMemory {
    worlds: Mutex<BTreeMap<String, Arc<Mutex<KeptWorld>>>>,
    sites: Mutex<BTreeMap<String, Arc<Mutex<SiteWorld>>>>,
}

/// A dataset's world in memory, with the generation of its events.
#[derive(Debug, Default)]
struct KeptWorld {
    world: World,
    /// Moves on with each change; 0 while nothing was ever asked of this world.
    generation: u64,
}

/// Locks `m`, whatever a panic elsewhere left in it (each call leaves a whole world).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimMemory {
    /// An empty world.
    pub fn new() -> Arc<SimMemory> {
        Arc::new(SimMemory::default())
    }

    /// Forgets `dataset`'s part of the world: for a dataset nothing will ask about again
    /// (a simulation's `CLEANED` ones), so that a long campaign's world holds only what is
    /// under way.
    pub fn forget(&self, dataset: &str) {
        locked(&self.worlds).remove(dataset);
    }

    fn world(&self, dataset: &str) -> Arc<Mutex<KeptWorld>> {
        locked(&self.worlds)
            .entry(dataset.to_owned())
            .or_default()
            .clone()
    }

    fn site(&self, key: &str) -> Arc<Mutex<SiteWorld>> {
        locked(&self.sites)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }
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
        SimBackend {
            config,
            now,
            sites: BTreeMap::new(),
            memory: None,
        }
    }

    /// The same simulation, its world kept in `memory` instead of the configured
    /// directory (which is then neither read nor written).
    pub fn with_memory(mut self, memory: Arc<SimMemory>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// The same simulation, told the site of each dataset (name -> site), so that a
    /// dataset's jobs and stage requests take its site's capacity
    /// ([`SimConfig::capacity`]). A dataset it is not told of is at no site.
    pub fn with_sites(mut self, sites: BTreeMap<String, String>) -> Self {
        self.sites = sites;
        self
    }

    /// Takes over what a dataset has in flight elsewhere (its stage requests and its
    /// submitted jobs, as the core's `polls` name them), as if it had all been asked of
    /// this world now: each takes its place in its site's queues and its duration from
    /// here, and later polls answer for it. Jobs reserved but never submitted are left
    /// unknown, as a batch system would. For `simulate`, which plays a copied campaign
    /// forward from where it stands.
    pub fn adopt(&self, dataset: &DatasetName, polls: &[Poll]) -> Result<(), BackendError> {
        let ds = dataset.as_str();
        let now = self.now;
        self.with_queues(ds, |queues| {
            self.with_world(ds, |w, _| {
                for p in polls {
                    match p {
                        Poll::Stage { lfn, .. } => {
                            let key = format!("{ds}/{lfn}/adopted");
                            let ready_at = queues.stage(now, self.duration("stage", &key));
                            w.stage.insert(
                                format!("{ds}/{lfn}"),
                                StageRequest {
                                    ready_at,
                                    fate: Fate::Done,
                                },
                            );
                        }
                        Poll::Job {
                            job,
                            name,
                            batch_id: Some(batch_id),
                            ..
                        } => {
                            let (what, failure) = match job.subject {
                                JobSubject::Reco(_) => ("reco", self.config.reco_failure),
                                JobSubject::Merge(_) => ("merge", self.config.merge_failure),
                            };
                            let (start_at, ready_at) = queues.run(now, self.duration(what, name));
                            let fate = self.fate(failure, name);
                            w.jobs.insert(
                                name.clone(),
                                SimJob {
                                    batch_id: batch_id.clone(),
                                    start_at,
                                    ready_at,
                                    fate,
                                },
                            );
                        }
                        _ => {}
                    }
                }
                ((), true)
            })
        })
    }

    /// How long `what` (`"stage"`, `"reco"`, `"merge"`) named `key` takes: the configured
    /// median, spread log-normally by a draw from the key.
    fn duration(&self, what: &str, key: &str) -> f64 {
        let c = &self.config;
        let median = match what {
            "stage" => c.stage_duration_s,
            "reco" => c.reco_duration_s,
            _ => c.merge_duration_s,
        }
        .unwrap_or(c.duration_s);
        if c.duration_spread == 0.0 || median == 0.0 {
            return median;
        }
        // Box-Muller from two uniform draws in (0, 1).
        let u = |k: &str| (hash(self.config.seed, k) >> 11) as f64 / (1u64 << 53) as f64;
        let u1 = u(&format!("d1/{what}/{key}")).max(f64::MIN_POSITIVE);
        let u2 = u(&format!("d2/{what}/{key}"));
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (c.duration_spread * z).exp()
    }

    /// Runs `f` with the queues of `dataset`'s site: kept in the world between calls
    /// (locked, like a dataset's file) when the site has a capacity, fresh otherwise.
    fn with_queues<T>(
        &self,
        dataset: &str,
        f: impl FnOnce(&mut Queues) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let site = self.sites.get(dataset).map(String::as_str);
        let capacity = self.config.capacity(site);
        if capacity == SimSite::default() {
            return f(&mut Queues::new(capacity, &SiteWorld::default()));
        }
        // Site names may hold any character: the file is named by their bytes in hex.
        let key = site.map_or_else(
            || "none".to_owned(),
            |s| s.bytes().map(|b| format!("{b:02x}")).collect(),
        );
        if let Some(memory) = &self.memory {
            let site = memory.site(&key);
            let mut world = locked(&site);
            let mut q = Queues::new(capacity, &world);
            let out = f(&mut q);
            *world = q.save();
            return out;
        }
        let dir = self.config.world.join("sites");
        let (out, ()) = locked_json(
            &dir,
            &key,
            |world: &mut SiteWorld| {
                let mut q = Queues::new(capacity, world);
                let out = f(&mut q);
                *world = q.save();
                (out, (), true)
            },
            None,
        )?;
        out
    }

    fn chance(&self, p: f64, key: &str) -> bool {
        p > 0.0 && (hash(self.config.seed, key) as f64 / u64::MAX as f64) < p
    }

    /// Whether `service` is down at `t` (seconds of the sim's clock), for the share of the
    /// work `key` stands for.
    fn down(&self, service: Service, t: f64, key: &str) -> bool {
        self.config.outages.iter().any(|o| {
            o.service == service && o.covers(t) && self.chance(o.lose, &format!("outage/{key}"))
        })
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
        (start_at, ready_at): (f64, f64),
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
        // A job that ends while the batch system is down may be lost with it.
        let fate = if self.down(Service::Batch, ready_at, name) {
            Fate::Lost
        } else {
            self.fate(failure, name)
        };
        w.jobs.insert(
            name.to_owned(),
            SimJob {
                batch_id: batch_id.clone(),
                start_at,
                ready_at,
                fate,
            },
        );
        Outcome::Submitted { job, batch_id }
    }

    /// Runs `f` on one dataset's part of the world with its file locked, writing it back
    /// afterwards if `f` says it may have changed it (the `bool` it returns beside its
    /// result; a poll mostly only reads). Each dataset has a file of its own (datasets
    /// share nothing outside), so a call costs what that dataset holds, not the whole
    /// campaign.
    fn with_world<T>(
        &self,
        dataset: &str,
        f: impl FnOnce(&mut World, &mut Journal) -> (T, bool),
    ) -> Result<T, BackendError> {
        let mut journal = Journal::open(self.config.journal.as_deref())?;
        if let Some(memory) = &self.memory {
            let kept = memory.world(dataset);
            let mut k = locked(&kept);
            let (out, touched) = f(&mut k.world, &mut journal);
            journal.flush()?;
            if touched || k.generation == 0 {
                k.generation += 1;
            }
            return Ok(out);
        }
        let dir = &self.config.world;
        let events = dir.join(format!("{dataset}.events"));
        let (out, flushed) = locked_json(
            dir,
            dataset,
            |world| {
                let (out, touched) = f(world, &mut journal);
                // Flushed while the world is still locked, so the journal keeps its order.
                (out, journal.flush(), touched)
            },
            // The events after the world, both under the lock: a cursor read in between
            // (it takes the lock too) cannot see new events with an old world.
            Some((&events, &|world: &World| Events::of(world).write(&events))),
        )?;
        flushed?;
        Ok(out)
    }
}

/// When what a dataset's world holds can next answer differently: every time at which a
/// stage request is ready or a job starts or ends, sorted, and a generation that changes
/// with each change to the world. Kept beside the world (`NAME.events`: the generation,
/// then the times, little-endian), so that a cursor costs a read of this, not of the world.
#[derive(Debug, PartialEq)]
struct Events {
    generation: u64,
    times: Vec<f64>,
}

impl Events {
    fn of(world: &World) -> Events {
        let mut times: Vec<f64> = world.stage.values().map(|r| r.ready_at).collect();
        times.extend(world.jobs.values().flat_map(|j| [j.start_at, j.ready_at]));
        times.sort_by(f64::total_cmp);
        Events {
            generation: 0,
            times,
        }
    }

    /// Writes these events with the next generation of those at `path`: the clock's
    /// nanoseconds, or one more than the last if the clock is behind it, so that a world
    /// made anew (a new `simulate`, a world directory emptied) does not repeat an old one.
    fn write(mut self, path: &Path) -> Result<(), BackendError> {
        let last = Events::read_generation(path)?;
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.generation = clock.max(last.map_or(0, |g| g + 1));
        let mut bytes = Vec::with_capacity(8 * (1 + self.times.len()));
        bytes.extend_from_slice(&self.generation.to_le_bytes());
        for t in &self.times {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        write_atomically(path, &bytes)
    }

    fn read_generation(path: &Path) -> Result<Option<u64>, BackendError> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(Events::parse(path, &b)?.generation)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(format!("cannot read {}: {e}", path.display()))),
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Events, BackendError> {
        if !bytes.len().is_multiple_of(8) || bytes.is_empty() {
            return Err(err(format!(
                "events file {} is corrupt: {} bytes, not a generation and whole times",
                path.display(),
                bytes.len()
            )));
        }
        let mut words = bytes
            .chunks_exact(8)
            .map(|c| <[u8; 8]>::try_from(c).unwrap_or_default());
        let generation = words.next().map_or(0, u64::from_le_bytes);
        let times: Vec<f64> = words.map(f64::from_le_bytes).collect();
        if times.is_sorted_by(|a, b| a <= b) {
            Ok(Events { generation, times })
        } else {
            Err(err(format!(
                "events file {} is corrupt: its times are not in order",
                path.display()
            )))
        }
    }

    /// The cursor at `now`: the generation and how many of the events are due.
    fn cursor(&self, now: f64) -> String {
        Events::cursor_of(self.generation, self.times.partition_point(|t| *t <= now))
    }

    /// The cursor of a world at `generation` with `due` of its events due.
    fn cursor_of(generation: u64, due: usize) -> String {
        format!("{generation:x}.{due}")
    }
}

/// A file kept in step with a JSON value, and how to write it from the value.
type Sidecar<'a, V> = (&'a Path, &'a dyn Fn(&V) -> Result<(), BackendError>);

/// Runs `f` on the JSON value kept in `dir/NAME.json` (the default when there is none)
/// under the lock of `dir/NAME.lock`. `f` returns its result, something to finish under
/// the lock, and whether it may have changed the value: if so, the value is written back
/// before the lock is released; if not (a poll that only read), it is neither serialized
/// nor written. `sidecar`, if given, is a file kept in step with the value (the dataset's
/// events): it is removed before the value is written and written anew after (or
/// whenever it is missing), all under the lock, so that a crash in between leaves no
/// sidecar rather than one of an older value.
fn locked_json<V: Default + Serialize + for<'de> Deserialize<'de>, T, U>(
    dir: &Path,
    name: &str,
    f: impl FnOnce(&mut V) -> (T, U, bool),
    sidecar: Option<Sidecar<'_, V>>,
) -> Result<(T, U), BackendError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        err(format!(
            "cannot create the world directory {}: {e}",
            dir.display()
        ))
    })?;
    let path = &dir.join(format!("{name}.json"));
    let lock_path = dir.join(format!("{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| err(format!("cannot open {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| err(format!("cannot lock {}: {e}", lock_path.display())))?;
    // The file's bytes are let go once parsed: a world of 50,000 files is some 13 MB.
    let mut value: V = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("world file {} is corrupt: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => V::default(),
        Err(e) => return Err(err(format!("cannot read {}: {e}", path.display()))),
    };
    let (out, post, touched) = f(&mut value);
    if touched {
        if let Some((side, _)) = sidecar {
            match std::fs::remove_file(side) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(format!("cannot remove {}: {e}", side.display()))),
            }
        }
        write_atomically_with(path, |out| {
            serde_json::to_writer(out, &value).map_err(std::io::Error::from)
        })?;
    }
    if let Some((side, write)) = sidecar
        && (touched || !side.exists())
    {
        write(&value)?;
    }
    drop(lock);
    Ok((out, post))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BackendError> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// Writes what `write` writes to `path` through a file beside it, renamed over `path` once
/// complete: a reader sees the old file or the new one, never part of one. The bytes go
/// through a small buffer, never all held at once (a world of 50,000 files is 13 MB).
fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), BackendError> {
    let tmp = path.with_extension("tmp");
    let cannot = |e: std::io::Error| err(format!("cannot write {}: {e}", tmp.display()));
    let mut out = std::io::BufWriter::new(File::create(&tmp).map_err(cannot)?);
    write(&mut out).map_err(cannot)?;
    out.into_inner().map_err(|e| cannot(e.into_error()))?;
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
                    .read(true)
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

    /// Appends what was logged, under an exclusive lock on the journal (processes and
    /// datasets take turns). A process killed while appending can leave its last line
    /// unfinished (the kernel stops a large write between pages); that line is ended
    /// first, so what follows stays a line of its own. The unfinished line is the start of
    /// an entry whose world was never saved (the world is written after the journal): its
    /// action was not done, and a later call does it again.
    fn flush(&mut self) -> Result<(), BackendError> {
        let Some((path, f)) = &mut self.file else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let fail =
            |e: std::io::Error| err(format!("cannot append to journal {}: {e}", path.display()));
        f.lock().map_err(fail)?;
        let appended = (|| {
            let len = f.metadata()?.len();
            let mut last = [b'\n'];
            if len > 0 {
                std::os::unix::fs::FileExt::read_exact_at(&*f, &mut last, len - 1)?;
            }
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
            }
            f.write_all(&self.buf)
        })();
        let unlocked = f.unlock();
        appended.and(unlocked).map_err(fail)?;
        self.buf.clear();
        Ok(())
    }
}

impl SimBackend {
    /// The cursor of `dataset` (see [`Backend::cursor`]): read under the world's lock.
    fn events_cursor(&self, dataset: &str) -> Result<Option<String>, BackendError> {
        if let Some(memory) = &self.memory {
            let kept = locked(&memory.worlds).get(dataset).cloned();
            return Ok(Some(match kept {
                // Nothing was ever asked for it here.
                None => "none".into(),
                Some(k) => {
                    let k = locked(&k);
                    if k.generation == 0 {
                        "none".into()
                    } else {
                        // The events due, counted where they are: no list to make and sort.
                        let now = self.now;
                        let w = &k.world;
                        let due = w.stage.values().filter(|r| r.ready_at <= now).count()
                            + w.jobs
                                .values()
                                .map(|j| {
                                    usize::from(j.start_at <= now) + usize::from(j.ready_at <= now)
                                })
                                .sum::<usize>();
                        Events::cursor_of(k.generation, due)
                    }
                }
            }));
        }
        let dir = &self.config.world;
        let world = dir.join(format!("{dataset}.json"));
        let events = dir.join(format!("{dataset}.events"));
        let lock_path = dir.join(format!("{dataset}.lock"));
        let lock = match File::open(&lock_path) {
            Ok(l) => l,
            // Nothing was ever asked for it here.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some("none".into()));
            }
            Err(e) => return Err(err(format!("cannot open {}: {e}", lock_path.display()))),
        };
        lock.lock_shared()
            .map_err(|e| err(format!("cannot lock {}: {e}", lock_path.display())))?;
        let bytes = match std::fs::read(&events) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A world written before events were kept: the cursor cannot tell.
                return Ok(if world.exists() {
                    None
                } else {
                    Some("none".into())
                });
            }
            Err(e) => return Err(err(format!("cannot read {}: {e}", events.display()))),
        };
        drop(lock);
        Ok(Some(Events::parse(&events, &bytes)?.cursor(self.now)))
    }
}

impl Backend for SimBackend {
    fn cursor(&self, dataset: &DatasetName) -> Result<Option<String>, BackendError> {
        self.events_cursor(dataset.as_str())
    }

    /// A job not yet ended ends now, failed; one that has ended stays as it ended. (Its
    /// batch slot is not given back early: the simulated site keeps its queue.)
    fn cancel(&self, dataset: &DatasetName, jobs: &[Poll]) -> Result<(), BackendError> {
        let now = self.now;
        self.with_world(dataset.as_str(), |w, _| {
            let mut touched = false;
            for p in jobs {
                if let Poll::Job { name, .. } = p
                    && let Some(j) = w.jobs.get_mut(name)
                    && j.ready_at > now
                {
                    j.fate = Fate::Failed;
                    (j.start_at, j.ready_at) = (j.start_at.min(now), now);
                    touched = true;
                }
            }
            ((), touched)
        })
    }

    /// The sim's clock: in a simulation, the simulated time.
    fn now(&self) -> i64 {
        self.now as i64
    }

    fn perform(
        &self,
        dataset: &DatasetName,
        actions: &[Action],
    ) -> Result<Vec<Outcome>, BackendError> {
        let ds = dataset.as_str();
        self.with_queues(ds, |queues| {
            self.with_world(ds, |w, journal| {
                let mut call = Call { ds, w, journal };
                let out = actions
                    .iter()
                    .filter_map(|a| self.act(&mut call, queues, a))
                    .collect();
                (out, true)
            })
        })
    }

    fn poll(&self, dataset: &DatasetName, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        let ds = dataset.as_str();
        self.with_world(ds, |w, _| {
            let mut out = Vec::new();
            // A poll only reads the world, but for a lost job, which it forgets.
            let mut forgot = false;
            for p in polls {
                let answer = match p {
                    Poll::Stage { file, lfn } => self.poll_stage(w, ds, *file, lfn),
                    Poll::Job { .. } => {
                        let answer = self.poll_job(w, dataset, p);
                        forgot |= matches!(answer, Some(Outcome::JobLost { .. }));
                        answer
                    }
                    Poll::Declaration { group, merged } => {
                        Some(if w.catalog.contains(&merged.name) {
                            Outcome::Declared { group: *group }
                        } else {
                            Outcome::DeclareFailed {
                                group: *group,
                                reason: "sim: not in the catalog".into(),
                                class: repro_core::ErrorClass::Unknown,
                            }
                        })
                    }
                    Poll::Deletion { file, lfn, .. } => {
                        Some(if w.deleted.contains(&format!("{ds}/{lfn}")) {
                            Outcome::Deleted { file: *file }
                        } else {
                            Outcome::DeleteFailed {
                                file: *file,
                                reason: "sim: still on disk".into(),
                                class: repro_core::ErrorClass::Unknown,
                            }
                        })
                    }
                };
                out.extend(answer);
            }
            (out, forgot)
        })
    }
}

/// One dataset's part of the world during one [`Backend::perform`], and its journal.
struct Call<'a> {
    ds: &'a str,
    w: &'a mut World,
    journal: &'a mut Journal,
}

impl Call<'_> {
    /// Journals a step on `file` that is not a job.
    fn note(&mut self, action: &'static str, file: &str, attempt: u32) {
        self.journal.log(&JournalEntry {
            action,
            dataset: self.ds,
            file,
            attempt,
            job: None,
        });
    }
}

impl SimBackend {
    /// Does `a`: a stage request is queued (answered by a later poll), everything else
    /// answers at once.
    fn act(&self, c: &mut Call<'_>, queues: &mut Queues, a: &Action) -> Option<Outcome> {
        let (ds, now) = (c.ds, self.now);
        match a {
            Action::Stage { lfn, attempt, .. } => {
                c.note("stage", lfn, *attempt);
                let key = format!("{ds}/{lfn}/{attempt}");
                let fate = if self.down(Service::Tape, now, &key) {
                    Fate::Refused
                } else if self.chance(self.config.stage_failure, &format!("stage/{key}")) {
                    Fate::Failed
                } else {
                    Fate::Done
                };
                let ready_at = queues.stage(now, self.duration("stage", &key));
                c.w.stage
                    .insert(format!("{ds}/{lfn}"), StageRequest { ready_at, fate });
                None
            }
            Action::SubmitReco { job, name, lfn } => {
                let (kind, p) = ("reco_submit", self.config.reco_failure);
                let at = queues.run(now, self.duration("reco", name));
                Some(self.submit(c.w, c.journal, (ds, lfn), kind, *job, name, p, at))
            }
            Action::SubmitMerge {
                job, name, output, ..
            } => {
                let (kind, p) = ("merge_submit", self.config.merge_failure);
                let at = queues.run(now, self.duration("merge", name));
                Some(self.submit(c.w, c.journal, (ds, output), kind, *job, name, p, at))
            }
            Action::Declare {
                group,
                merged,
                attempt,
            } => {
                c.note("declare", &merged.name, *attempt);
                Some(self.declare(c, *group, merged, *attempt))
            }
            Action::Delete {
                file, lfn, attempt, ..
            } => {
                c.note("delete", lfn, *attempt);
                Some(self.delete(c, *file, lfn, *attempt))
            }
        }
    }

    /// Declares `merged` in the catalog, unless the catalog is down or refuses it.
    fn declare(
        &self,
        c: &mut Call<'_>,
        group: repro_core::GroupNo,
        merged: &MergedFile,
        attempt: u32,
    ) -> Outcome {
        let key = format!("declare/{}/{}/{attempt}", c.ds, merged.name);
        if self.down(Service::Catalog, self.now, &key) {
            Outcome::DeclareFailed {
                group,
                reason: "sim: catalog unavailable (HTTP 503)".into(),
                class: repro_core::ErrorClass::Transient,
            }
        } else if self.chance(self.config.declare_failure, &key) {
            Outcome::DeclareFailed {
                group,
                reason: "sim: catalog refused the declaration".into(),
                class: repro_core::ErrorClass::Unknown,
            }
        } else {
            c.w.catalog.insert(merged.name.clone());
            Outcome::Declared { group }
        }
    }

    /// Deletes `lfn` from disk, unless the storage system is down or refuses it.
    fn delete(
        &self,
        c: &mut Call<'_>,
        file: repro_core::FileId,
        lfn: &str,
        attempt: u32,
    ) -> Outcome {
        let key = format!("delete/{}/{lfn}/{attempt}", c.ds);
        if self.down(Service::Storage, self.now, &key) {
            Outcome::DeleteFailed {
                file,
                reason: "sim: storage system unavailable".into(),
                class: repro_core::ErrorClass::Transient,
            }
        } else if self.chance(self.config.delete_failure, &key) {
            Outcome::DeleteFailed {
                file,
                reason: "sim: permission denied".into(),
                class: repro_core::ErrorClass::Unknown,
            }
        } else {
            c.w.deleted.insert(format!("{}/{lfn}", c.ds));
            Outcome::Deleted { file }
        }
    }

    /// What became of `lfn`'s stage request: nothing yet while it is not ready.
    fn poll_stage(
        &self,
        w: &World,
        ds: &str,
        file: repro_core::FileId,
        lfn: &str,
    ) -> Option<Outcome> {
        let failed = |reason: &str, class| Outcome::StageFailed {
            file,
            reason: reason.into(),
            class,
        };
        match w.stage.get(&format!("{ds}/{lfn}")) {
            None => Some(failed(
                "sim: the storage system knows no stage request for this file",
                repro_core::ErrorClass::Unknown,
            )),
            Some(r) if r.ready_at > self.now => None,
            Some(r) => Some(match r.fate {
                Fate::Done => Outcome::Staged { file },
                Fate::Refused => failed(
                    "sim: tape system refusing requests",
                    repro_core::ErrorClass::Transient,
                ),
                _ => failed("sim: tape read error", repro_core::ErrorClass::Unknown),
            }),
        }
    }

    /// What became of the job `p` asks about: nothing while it is queued; a lost job is
    /// forgotten (answered [`Outcome::JobLost`] once).
    fn poll_job(&self, w: &mut World, dataset: &DatasetName, p: &Poll) -> Option<Outcome> {
        let Poll::Job {
            job,
            name,
            batch_id,
            lfn,
        } = p
        else {
            return None;
        };
        let job = *job;
        let Some(sj) = w.jobs.get(name) else {
            return Some(if batch_id.is_none() {
                Outcome::JobFailed {
                    job,
                    exit_code: None,
                    reason: "reserved but never submitted".into(),
                    class: repro_core::ErrorClass::Unknown,
                }
            } else {
                Outcome::JobLost { job }
            });
        };
        if batch_id.is_none() {
            // Submitted before a crash that kept the batch id from being recorded.
            return Some(Outcome::Submitted {
                job,
                batch_id: sj.batch_id.clone(),
            });
        }
        if sj.start_at > self.now {
            // Queued for a batch slot: submitted, not started.
            return None;
        }
        if sj.ready_at > self.now {
            return Some(Outcome::Started { job });
        }
        // A finished job answers the same each time it is asked, so an answer whose
        // recording failed is given again.
        Some(match sj.fate {
            // A job is never refused; a batch outage loses it.
            Fate::Lost | Fate::Refused => {
                w.jobs.remove(name);
                Outcome::JobLost { job }
            }
            Fate::Failed => Outcome::JobFailed {
                job,
                exit_code: Some(1),
                reason: "sim: job crashed".into(),
                class: repro_core::ErrorClass::Unknown,
            },
            Fate::Done => self.done(dataset, job, name, lfn.as_deref()),
        })
    }

    /// A finished job's output: a TMB file for reco, the merged file for merge.
    fn done(
        &self,
        dataset: &DatasetName,
        job: repro_core::JobKey,
        name: &str,
        lfn: Option<&str>,
    ) -> Outcome {
        match job.subject {
            JobSubject::Reco(_) => Outcome::RecoDone {
                job,
                tmb: TmbFile {
                    path: format!(
                        "/sim/tmb/{}/{}.tmb",
                        dataset.as_str(),
                        lfn.unwrap_or("?").trim_start_matches('/')
                    ),
                    size: 1 + hash(self.config.seed, name) % 1_000_000,
                },
            },
            JobSubject::Merge(g) => Outcome::MergeDone {
                job,
                output: MergedFile {
                    name: MergedFile::name_for(dataset, g),
                    size: 1 + hash(self.config.seed, name) % 50_000_000,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repro_core::{FileId, JobKey};

    #[test]
    fn a_line_left_unfinished_by_a_killed_process_is_ended_before_the_next_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let entry = |file| JournalEntry {
            action: "stage",
            dataset: "d",
            file,
            attempt: 1,
            job: None,
        };
        for torn in ["", "{\"action\":\"sta"] {
            std::fs::write(&path, torn).unwrap();
            let mut j = Journal::open(Some(&path)).unwrap();
            j.log(&entry("f1"));
            j.flush().unwrap();
            j.log(&entry("f2"));
            j.flush().unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let whole: Vec<&str> = lines.iter().copied().filter(|l| *l != torn).collect();
            assert_eq!(
                lines.len(),
                whole.len() + usize::from(!torn.is_empty()),
                "{text}"
            );
            assert_eq!(whole.len(), 2, "{text}");
            for (l, f) in whole.iter().zip(["f1", "f2"]) {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["file"], f, "{text}");
            }
            assert!(text.ends_with('\n'));
        }
    }

    fn reco(i: u64) -> (Action, Poll) {
        let job = JobKey {
            subject: JobSubject::Reco(FileId(i)),
            attempt: 1,
        };
        let (name, lfn) = (format!("job{i}"), format!("raw{i}"));
        let action = Action::SubmitReco {
            job,
            name: name.clone(),
            lfn: lfn.clone(),
        };
        let poll = Poll::Job {
            job,
            name,
            batch_id: Some(i.to_string()),
            lfn: Some(lfn),
        };
        (action, poll)
    }

    /// Reliable, every job 10 s, in a world of its own.
    fn world(dir: &Path) -> SimConfig {
        SimConfig {
            world: dir.to_owned(),
            reco_failure: 0.0,
            merge_failure: 0.0,
            lost_job: 0.0,
            duration_s: 10.0,
            ..SimConfig::default()
        }
    }

    /// (started, finished) among the answers to `polls` at `now`.
    fn poll_at(config: &SimConfig, ds: &DatasetName, now: f64, polls: &[Poll]) -> (usize, usize) {
        let out = SimBackend::new(config.clone(), now)
            .poll(ds, polls)
            .unwrap();
        let started = out
            .iter()
            .filter(|o| matches!(o, Outcome::Started { .. }))
            .count();
        let done = out
            .iter()
            .filter(|o| matches!(o, Outcome::RecoDone { .. }))
            .count();
        (started, done)
    }

    #[test]
    fn a_poll_that_finds_a_job_lost_forgets_it_and_a_poll_that_reads_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = SimConfig {
            lost_job: 1.0,
            ..world(dir.path())
        };
        let ds = DatasetName::new("ds").unwrap();
        let at = |now: f64| SimBackend::new(config.clone(), now);
        let (submit, poll) = reco(1);
        at(0.0).perform(&ds, &[submit]).unwrap();
        let file = dir.path().join("ds.json");
        let written = std::fs::read(&file).unwrap();
        let cursor = at(20.0).cursor(&ds).unwrap();
        // Still running at 5: the poll reads, and the world stays as it was.
        at(5.0).poll(&ds, std::slice::from_ref(&poll)).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), written);
        assert_eq!(at(20.0).cursor(&ds).unwrap(), cursor);
        // At 20 it is lost: the world forgets it, and its cursor says so.
        let out = at(20.0).poll(&ds, std::slice::from_ref(&poll)).unwrap();
        assert!(matches!(out[..], [Outcome::JobLost { .. }]), "{out:?}");
        let world: World = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert!(world.jobs.is_empty(), "{world:?}");
        assert_ne!(at(20.0).cursor(&ds).unwrap(), cursor);
    }

    #[test]
    fn a_world_in_memory_answers_as_one_in_files_and_writes_none() {
        let (files, unused) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Failures, lost jobs and a site's slots, so every part of the world is used.
        let config = |dir: &Path| SimConfig {
            seed: 11,
            reco_failure: 0.3,
            lost_job: 0.2,
            duration_spread: 0.5,
            slots: Some(3),
            stage_rate: Some(720.0),
            ..world(dir)
        };
        let memory = SimMemory::new();
        let on_disk = |now: f64| SimBackend::new(config(files.path()), now);
        let in_memory =
            |now: f64| SimBackend::new(config(unused.path()), now).with_memory(memory.clone());
        let ds = DatasetName::new("ds").unwrap();
        let (mut actions, polls): (Vec<_>, Vec<_>) = (1..=8).map(reco).unzip();
        actions.extend((1..=4).map(|i| Action::Stage {
            file: repro_core::FileId(100 + i),
            lfn: format!("s{i}"),
            attempt: 1,
        }));
        let stage_polls: Vec<Poll> = (1..=4)
            .map(|i| Poll::Stage {
                file: repro_core::FileId(100 + i),
                lfn: format!("s{i}"),
            })
            .collect();
        assert_eq!(in_memory(0.0).cursor(&ds).unwrap(), Some("none".into()));
        assert_eq!(
            on_disk(0.0).perform(&ds, &actions).unwrap(),
            in_memory(0.0).perform(&ds, &actions).unwrap()
        );
        let mut cursors = Vec::new();
        for now in [1.0, 5.0, 9.0, 12.0, 20.0, 31.0, 45.0, 60.0, 90.0] {
            for p in [&polls, &stage_polls] {
                assert_eq!(
                    on_disk(now).poll(&ds, p).unwrap(),
                    in_memory(now).poll(&ds, p).unwrap(),
                    "at {now}"
                );
            }
            let cursor = in_memory(now).cursor(&ds).unwrap().unwrap();
            // The same events due as the world in files counts (their generations differ).
            let due = |c: &str| c.split_once('.').map(|(_, due)| due.to_owned());
            let files_cursor = on_disk(now).cursor(&ds).unwrap().unwrap();
            assert_eq!(due(&cursor), due(&files_cursor), "at {now}");
            cursors.push(cursor);
        }
        // The cursor moved with the world's events, and stood still once all was over.
        cursors.dedup();
        assert!(cursors.len() > 2, "{cursors:?}");
        assert_eq!(
            in_memory(1e6).cursor(&ds).unwrap(),
            in_memory(1e7).cursor(&ds).unwrap()
        );
        assert_eq!(
            std::fs::read_dir(unused.path()).unwrap().count(),
            0,
            "nothing written to the configured directory"
        );
    }

    #[test]
    fn the_cursor_moves_when_an_answer_can_change_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let config = world(dir.path());
        let ds = DatasetName::new("ds").unwrap();
        let at = |now: f64| SimBackend::new(config.clone(), now);
        let cursor = |now: f64| at(now).cursor(&ds).unwrap().expect("the sim has a cursor");
        assert_eq!(cursor(0.0), "none", "nothing was ever asked for it");

        // A job submitted at 0 starts at once and ends at 10.
        let (submit, poll) = reco(1);
        at(0.0).perform(&ds, &[submit]).unwrap();
        let queued = cursor(0.0);
        assert_eq!(cursor(9.9), queued, "nothing starts or ends in between");
        // Polls that change nothing out there leave the cursor where it was.
        assert_eq!(
            poll_at(&config, &ds, 5.0, std::slice::from_ref(&poll)),
            (1, 0)
        );
        assert_eq!(cursor(9.9), queued);
        let ended = cursor(10.0);
        assert_ne!(ended, queued, "the job ended");
        assert_eq!(cursor(1e6), ended, "and nothing happens after");

        // New work moves it at once, even with no time passing.
        let (another, _) = reco(2);
        at(10.0).perform(&ds, &[another]).unwrap();
        assert_ne!(cursor(10.0), ended);

        // A damaged events file is an error naming it, not a cursor that never moves.
        let events = dir.path().join("ds.events");
        std::fs::write(&events, [1u8, 2, 3]).unwrap();
        let e = at(10.0).cursor(&ds).unwrap_err().to_string();
        assert!(e.contains("ds.events") && e.contains("corrupt"), "{e}");
        let mut unordered = 7u64.to_le_bytes().to_vec();
        unordered.extend(5.0f64.to_le_bytes());
        unordered.extend(1.0f64.to_le_bytes());
        std::fs::write(&events, unordered).unwrap();
        let e = at(10.0).cursor(&ds).unwrap_err().to_string();
        assert!(e.contains("not in order"), "{e}");

        // A world without its events (kept before events were, or a process that died
        // between writing the world and its events): the cursor cannot tell, until the
        // next call that locks the world writes them.
        std::fs::remove_file(&events).unwrap();
        assert_eq!(at(10.0).cursor(&ds).unwrap(), None);
        at(10.0).poll(&ds, std::slice::from_ref(&poll)).unwrap();
        assert!(at(10.0).cursor(&ds).unwrap().is_some());
    }

    #[test]
    fn a_cancelled_job_ends_failed_at_once_and_one_that_ended_stays_as_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let config = world(dir.path());
        let ds = DatasetName::new("ds").unwrap();
        let at = |now: f64| SimBackend::new(config.clone(), now);
        let (early, done) = reco(1);
        at(0.0).perform(&ds, &[early]).unwrap();
        let (late, running) = reco(2);
        at(5.0).perform(&ds, &[late]).unwrap();
        // At 12 the first has ended (at 10), the second runs until 15.
        let both = [done.clone(), running.clone()];
        at(12.0).cancel(&ds, &both).unwrap();
        let answers = at(12.0).poll(&ds, &both).unwrap();
        assert!(
            matches!(answers[0], Outcome::RecoDone { .. }),
            "{answers:?}"
        );
        assert!(
            matches!(answers[1], Outcome::JobFailed { .. }),
            "{answers:?}"
        );
        // Later, still so: the cancelled job never finishes.
        let later = at(100.0).poll(&ds, std::slice::from_ref(&running)).unwrap();
        assert!(matches!(later[0], Outcome::JobFailed { .. }), "{later:?}");
    }

    #[test]
    fn jobs_beyond_the_slots_of_a_site_wait_their_turn() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = world(dir.path());
        config.slots = Some(2);
        let ds = DatasetName::new("d").unwrap();
        let (actions, polls): (Vec<_>, Vec<_>) = (1..=5).map(reco).unzip();
        let out = SimBackend::new(config.clone(), 0.0)
            .perform(&ds, &actions)
            .unwrap();
        assert_eq!(out.len(), 5, "every job is submitted at once: {out:?}");
        // Two run 0-10, two 10-20, the last 20-30.
        assert_eq!(poll_at(&config, &ds, 5.0, &polls), (2, 0));
        assert_eq!(poll_at(&config, &ds, 15.0, &polls), (2, 2));
        assert_eq!(poll_at(&config, &ds, 25.0, &polls), (1, 4));
        assert_eq!(poll_at(&config, &ds, 30.0, &polls), (0, 5));
        // A dataset at another site queues for that site's slots only.
        let mut sites = BTreeMap::new();
        sites.insert("e".to_owned(), "fnal".to_owned());
        config.site.insert(
            "fnal".into(),
            SimSite {
                slots: Some(1),
                stage_rate: None,
            },
        );
        let late = SimBackend::new(config.clone(), 1.0).with_sites(sites.clone());
        let e = DatasetName::new("e").unwrap();
        let (a, p): (Vec<_>, Vec<_>) = (6..=7).map(reco).unzip();
        late.perform(&e, &a).unwrap();
        let backend = |now| SimBackend::new(config.clone(), now).with_sites(sites.clone());
        let done = |now: f64| {
            backend(now)
                .poll(&e, &p)
                .unwrap()
                .iter()
                .filter(|o| matches!(o, Outcome::RecoDone { .. }))
                .count()
        };
        assert_eq!(
            (done(10.9), done(11.0), done(20.9), done(21.0)),
            (0, 1, 1, 2)
        );
    }

    #[test]
    fn a_stage_rate_serves_requests_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = world(dir.path());
        config.stage_rate = Some(360.0); // one every 10 s
        config.stage_duration_s = Some(0.0);
        let ds = DatasetName::new("d").unwrap();
        let actions: Vec<Action> = (1..=3)
            .map(|i| Action::Stage {
                file: FileId(i),
                lfn: format!("raw{i}"),
                attempt: 1,
            })
            .collect();
        SimBackend::new(config.clone(), 0.0)
            .perform(&ds, &actions)
            .unwrap();
        let polls: Vec<Poll> = (1..=3)
            .map(|i| Poll::Stage {
                file: FileId(i),
                lfn: format!("raw{i}"),
            })
            .collect();
        let staged = |now| {
            SimBackend::new(config.clone(), now)
                .poll(&ds, &polls)
                .unwrap()
                .len()
        };
        assert_eq!(
            [staged(9.0), staged(10.0), staged(25.0), staged(30.0)],
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn durations_spread_around_their_median_and_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = world(dir.path());
        config.reco_duration_s = Some(100.0);
        config.duration_spread = 0.5;
        let b = SimBackend::new(config.clone(), 0.0);
        let mut d: Vec<f64> = (0..2001)
            .map(|i| b.duration("reco", &format!("j{i}")))
            .collect();
        assert_eq!(
            b.duration("reco", "j7"),
            d[7],
            "a job's duration is its own"
        );
        d.sort_by(f64::total_cmp);
        let (p10, median, p90) = (d[200], d[1000], d[1800]);
        assert!((90.0..110.0).contains(&median), "median {median}");
        // A log-normal with sigma 0.5: the 10th and 90th percentiles at 0.53 and 1.9 times.
        assert!((45.0..60.0).contains(&p10), "p10 {p10}");
        assert!((170.0..210.0).contains(&p90), "p90 {p90}");
        config.duration_spread = 0.0;
        let b = SimBackend::new(config, 0.0);
        assert_eq!(b.duration("reco", "j1"), 100.0);
        assert_eq!(b.duration("merge", "j1"), 10.0, "unset: duration_s");
    }

    #[test]
    fn adopted_work_is_answered_for_as_if_asked_now() {
        let dir = tempfile::tempdir().unwrap();
        let config = world(dir.path());
        let ds = DatasetName::new("d").unwrap();
        let (_, polls): (Vec<_>, Vec<_>) = (1..=3).map(reco).unzip();
        let stage = Poll::Stage {
            file: FileId(9),
            lfn: "raw9".into(),
        };
        let unknown = SimBackend::new(config.clone(), 0.0)
            .poll(&ds, &polls)
            .unwrap();
        assert!(unknown.iter().all(|o| matches!(o, Outcome::JobLost { .. })));
        let mut all = polls.clone();
        all.push(stage.clone());
        SimBackend::new(config.clone(), 100.0)
            .adopt(&ds, &all)
            .unwrap();
        assert_eq!(poll_at(&config, &ds, 105.0, &polls), (3, 0));
        assert_eq!(poll_at(&config, &ds, 110.0, &polls), (0, 3));
        let staged = SimBackend::new(config, 110.0).poll(&ds, &[stage]).unwrap();
        assert!(matches!(staged[..], [Outcome::Staged { .. }]), "{staged:?}");
    }

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
