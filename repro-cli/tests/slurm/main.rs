//! The `slurm` backend against a real Slurm cluster (`.ci/slurm-up.sh` starts a one-node
//! cluster on this machine). Ignored by a plain `cargo test`, which says so; `.ci/run` runs
//! them with `--ignored`, and there a missing cluster fails them.

#[path = "../cli/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Env, render, tick_settled};

/// Why these tests are ignored by default.
const NEEDS_SLURM: &str = "needs a Slurm cluster (.ci/slurm-up.sh starts one); run with --ignored";

fn assert_slurm_is_up() {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("idle")
                || String::from_utf8_lossy(&o.stdout).contains("mix")
                || String::from_utf8_lossy(&o.stdout).contains("alloc")
        });
    assert!(up, "no Slurm cluster answers: {NEEDS_SLURM}");
}

/// A config whose reco copies the raw file and appends a line, and whose merge concatenates.
/// The reco command misbehaves on purpose for raw files that say so.
fn setup(env: &Env, time_limit: &str, max_attempts: u32) {
    env.write(
        "repro.toml",
        &format!(
            r#"[backend]
kind = "slurm"
[backend.slurm]
workdir = "work"
catalog = "work/catalog.txt"
local_files = true
time_limit = "{time_limit}"
parallel = 8
reco_command = ["/bin/sh", "-c", "case $(cat \"$1\") in fail) exit 3;; hang) sleep 600;; slow) sleep 20;; esac; cat \"$1\" > \"$2\"; echo reconstructed >> \"$2\"", "reco", "{{input}}", "{{output}}"]
merge_command = ["/bin/sh", "-c", "xargs cat < \"$1\" > \"$2\"", "merge", "{{files}}", "{{output}}"]
[policy]
max_attempts = {max_attempts}
merge_group_files = 40
[lease]
ttl_s = 300
"#
        ),
    );
    env.ok(&["init"]);
}

/// Raw files on disk with the given contents, registered as `name`.
fn raw_files(env: &Env, name: &str, contents: &[&str]) {
    let dir = env.path("raw");
    std::fs::create_dir_all(&dir).unwrap();
    let mut list = String::new();
    for (i, c) in contents.iter().enumerate() {
        let p = dir.join(format!("{name}_{i:04}.raw"));
        std::fs::write(&p, format!("{c}\n")).unwrap();
        list.push_str(&format!("{} {}\n", p.display(), c.len() + 1));
    }
    let l = env.write(&format!("{name}.list"), &list);
    env.ok(&["dataset", "add", name, "--files", l.to_str().unwrap()]);
}

fn show(env: &Env, name: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["--json", "dataset", "show", name])).unwrap()
}

fn at_rest(v: &serde_json::Value) -> bool {
    v["cleanup"] == "CLEANED"
        || ["prestage", "reco", "merge", "cleanup"]
            .iter()
            .any(|c| v[*c] == "FAILED")
}

/// `processes` cron loops racing, each ticking every half second until `name` is at rest
/// or `deadline` has passed.
fn tick_until_rest(env: &Env, name: &str, processes: usize, deadline: Duration) {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..processes {
            s.spawn(|| {
                while t0.elapsed() < deadline {
                    let out = env.run(&["-q", "tick"]);
                    assert!(out.status.success(), "{}", render(&out));
                    if at_rest(&show(env, name)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        }
    });
}

/// Job names in Slurm's own accounting that start with `prefix`, with how often each ran.
fn accounted(prefix: &str) -> HashMap<String, usize> {
    let out = Command::new("sacct")
        .args(["-X", "-P", "-n", "-S", "2000-01-01", "--format=JobName%200"])
        .output()
        .expect("sacct runs");
    let mut m = HashMap::new();
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        if name.starts_with(prefix) {
            *m.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    m
}

#[test]
#[ignore = "needs a Slurm cluster (.ci/slurm-up.sh starts one); run with --ignored"]
fn two_processes_ticking_drive_200_files_to_cleaned_on_slurm() {
    assert_slurm_is_up();
    let env = Env::new();
    setup(&env, "10", 3);
    let name = format!("slurm{}", std::process::id());
    let contents: Vec<String> = (0..200).map(|i| format!("event data {i}")).collect();
    raw_files(
        &env,
        &name,
        &contents.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    env.ok(&["unlock", &name]);
    let t0 = Instant::now();
    tick_until_rest(&env, &name, 2, Duration::from_secs(600));
    let v = show(&env, &name);
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    assert_eq!(v["reco"], "COMPLETED", "{v}");
    eprintln!(
        "200 files LOCK -> CLEANED on Slurm in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Slurm's own accounting (written a moment after a job ends): no job name ran twice.
    let mut jobs = accounted(&format!("{name}."));
    let waited = Instant::now();
    while jobs.keys().filter(|n| n.contains(".merge.")).count() < 5
        && waited.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_secs(1));
        jobs = accounted(&format!("{name}."));
    }
    let twice: Vec<_> = jobs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "submitted twice: {twice:?}");
    let reco = jobs.keys().filter(|n| n.contains(".reco.")).count();
    let merge = jobs.keys().filter(|n| n.contains(".merge.")).count();
    eprintln!("Slurm ran {reco} reco jobs and {merge} merge jobs");
    assert!(reco >= 200 && merge >= 5, "{reco} reco, {merge} merge jobs");
    // Every merged file is there, declared, and together they hold every event once.
    let catalog = std::fs::read_to_string(env.path("work/catalog.txt")).unwrap();
    let declared: Vec<&str> = catalog.lines().collect();
    assert_eq!(declared.len(), 5, "{catalog}");
    let mut events = 0;
    for m in &declared {
        let text = std::fs::read_to_string(env.path(&format!("work/merged/{name}/{m}"))).unwrap();
        events += text.lines().filter(|l| l.starts_with("event data")).count();
    }
    assert_eq!(events, 200);
    // Cleanup removed the TMB files and never the raw inputs or merged files.
    let tmb_left =
        std::fs::read_dir(env.path(&format!("work/tmb/{name}"))).map_or(0, |d| d.count());
    assert_eq!(tmb_left, 0);
    assert_eq!(std::fs::read_dir(env.path("raw")).unwrap().count(), 200);
}

#[test]
#[ignore = "needs a Slurm cluster (.ci/slurm-up.sh starts one); run with --ignored"]
fn failed_cancelled_and_timed_out_jobs_keep_slurms_reason() {
    assert_slurm_is_up();
    let env = Env::new();
    // A one-minute limit, one attempt each: every failure is for good and shows its reason.
    setup(&env, "1", 1);
    let name = format!("bad{}", std::process::id());
    raw_files(&env, &name, &["fail", "hang", "hang", "good"]);
    env.ok(&["unlock", &name]);
    env.ok(&["tick"]); // prestage
    env.ok(&["tick"]); // staged; reco jobs submitted
    // The operator cancels one of the hanging jobs; the other runs into its time limit.
    let cancel = Command::new("scancel")
        .arg(format!("--name={name}.reco.f2.a1"))
        .status()
        .unwrap();
    assert!(cancel.success());
    let t0 = Instant::now();
    while !at_rest(&show(&env, &name)) && t0.elapsed() < Duration::from_secs(300) {
        env.ok(&["-q", "tick"]);
        std::thread::sleep(Duration::from_secs(2));
    }
    let v = show(&env, &name);
    assert_eq!(v["reco"], "PARTIAL", "{v}");
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    let files: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "dataset", "files", &name])).unwrap();
    let errors: Vec<String> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["last_error"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        errors[0].contains("slurm: FAILED, exit code 3"),
        "{errors:?}"
    );
    assert!(errors[1].contains("slurm: CANCELLED"), "{errors:?}");
    assert!(errors[2].contains("slurm: TIMEOUT"), "{errors:?}");
    assert_eq!(errors[3], "", "{errors:?}");
}

#[test]
#[ignore = "needs a Slurm cluster (.ci/slurm-up.sh starts one); run with --ignored"]
fn ticks_leave_a_dataset_alone_while_slurms_queue_shows_no_change_to_its_jobs() {
    assert_slurm_is_up();
    let env = Env::new();
    setup(&env, "5", 2);
    let name = format!("quiet{}", std::process::id());
    // Reco jobs that sleep 20 s: the queue stands still while they run.
    raw_files(&env, &name, &["slow", "slow"]);
    env.ok(&["unlock", &name]);
    let t0 = Instant::now();
    let mut quiet_twice = false;
    while !quiet_twice && t0.elapsed() < Duration::from_secs(60) {
        quiet_twice = tick_settled(&env, &name) && tick_settled(&env, &name);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        quiet_twice,
        "no two ticks in a row left the dataset alone while its jobs ran: {}",
        show(&env, &name)
    );
    assert_eq!(show(&env, &name)["reco"], "RUNNING");
    // The jobs' end moves the queue, and so the cursor: ticks take the dataset to rest.
    tick_until_rest(&env, &name, 1, Duration::from_secs(120));
    let v = show(&env, &name);
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
}

/// Raw files for the limits test: `REPRO_SLURM_LIMIT_FILES` (400 in CI; the issue's
/// campaign is 2,000).
fn limit_files() -> usize {
    std::env::var("REPRO_SLURM_LIMIT_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

#[test]
#[ignore = "needs a Slurm cluster (.ci/slurm-up.sh starts one); run with --ignored"]
fn at_most_40_reco_jobs_are_ever_in_slurms_queue() {
    assert_slurm_is_up();
    let env = Env::new();
    setup(&env, "10", 3);
    let base = std::fs::read_to_string(env.path("repro.toml")).unwrap();
    env.write(
        "repro.toml",
        &format!("{base}[limits]\nreco_jobs = 40\nmerge_jobs = 4\n"),
    );
    let n = limit_files();
    let name = format!("lim{}", std::process::id());
    let contents: Vec<String> = (0..n).map(|i| format!("event data {i}")).collect();
    raw_files(
        &env,
        &name,
        &contents.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    env.ok(&["unlock", &name]);
    let t0 = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (peak, samples) = std::thread::scope(|s| {
        // A sampler reads Slurm's queue every second, as an operator would.
        let sampler = s.spawn(|| {
            let (mut peak, mut samples) = (0, 0);
            let prefix = format!("{name}.reco.");
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let out = Command::new("squeue")
                    .args(["-h", "-o", "%j"])
                    .output()
                    .expect("squeue runs");
                let mine = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|j| j.starts_with(&prefix))
                    .count();
                peak = peak.max(mine);
                samples += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            (peak, samples)
        });
        // Stop the sampler however the loops end, a failed assertion included.
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let stop = Stop(&done);
        tick_until_rest(&env, &name, 2, Duration::from_secs(1500));
        drop(stop);
        sampler.join().unwrap()
    });
    let v = show(&env, &name);
    assert_eq!(v["cleanup"], "CLEANED", "{v}");
    eprintln!(
        "{n} files LOCK -> CLEANED on Slurm with reco_jobs = 40 in {:.1} s; \
         squeue sampled {samples} times, at most {peak} reco jobs of the campaign in it",
        t0.elapsed().as_secs_f64()
    );
    assert!(peak <= 40, "squeue showed {peak} reco jobs");
    assert!(
        peak >= 20,
        "the limit was never approached ({peak}): the test shows nothing"
    );
    let jobs = accounted(&format!("{name}.reco."));
    let twice: Vec<_> = jobs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "submitted twice: {twice:?}");
}

/// Slurm's state of job `name` (`RUNNING`, `COMPLETED`, `CANCELLED by 0`, ...), from its accounting.
fn slurm_state(name: &str) -> String {
    let out = Command::new("sacct")
        .args(["-X", "-P", "-n", "-S", "2000-01-01", "--format=State"])
        .arg(format!("--name={name}"))
        .output()
        .expect("sacct runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Kills the reco jobs of dataset `.0` that a failed test would leave hanging on the
/// cluster, where they would hold the other tests' slots.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for a in 1..=3 {
            let job = format!("--name={}.reco.f1.a{a}", self.0);
            let _ = Command::new("scancel").arg(job).status();
        }
    }
}

#[test]
#[ignore = "needs a Slurm cluster (.ci/slurm-up.sh starts one); run with --ignored"]
fn cancel_kills_running_jobs_keeps_finished_ones_and_unlock_carries_on() {
    assert_slurm_is_up();
    let env = Env::new();
    setup(&env, "10", 3);
    let name = format!("cx{}", std::process::id());
    let _kill = KillOnDrop(name.clone());
    raw_files(&env, &name, &["hang", "good"]);
    env.ok(&["unlock", &name]);
    env.ok(&["tick"]); // prestage
    env.ok(&["tick"]); // staged; reco jobs submitted
    let job = |f: u32, a: u32| format!("{name}.reco.f{f}.a{a}");
    let t0 = Instant::now();
    while !(slurm_state(&job(1, 1)) == "RUNNING" && slurm_state(&job(2, 1)) == "COMPLETED") {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the jobs never ran"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // One job hangs; the other finished, and no tick has recorded it yet.
    let out = env.ok(&["--json", "cancel", &name, "--reason", "wrong calibration"]);
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            &done["killed"],
            &done["finished"],
            &done["cancelled"],
            &done["locked"]
        ),
        (&2.into(), &1.into(), &1.into(), &true.into()),
        "{done}"
    );
    let t0 = Instant::now();
    while !slurm_state(&job(1, 1)).starts_with("CANCELLED") {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{}",
            slurm_state(&job(1, 1))
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let v = show(&env, &name);
    assert_eq!(
        (&v["lock"], &v["files"]["reconstructed"]),
        (&"LOCK".into(), &1.into()),
        "{v}"
    );
    // The cause fixed, the operator lets it carry on.
    raw_files_rewritten(&env, &name, &["good"]);
    env.ok(&["unlock", &name]);
    tick_until_rest(&env, &name, 1, Duration::from_secs(240));
    let v = show(&env, &name);
    assert_eq!(
        (&v["reco"], &v["cleanup"]),
        (&"COMPLETED".into(), &"CLEANED".into()),
        "{v}"
    );
    // Slurm's accounting may lag behind a job's end by a moment.
    let t0 = Instant::now();
    let mut ran = accounted(&format!("{name}.reco."));
    while ran.len() < 3 && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500));
        ran = accounted(&format!("{name}.reco."));
    }
    let want: HashMap<String, usize> = [job(1, 1), job(1, 2), job(2, 1)]
        .into_iter()
        .map(|j| (j, 1))
        .collect();
    assert_eq!(
        ran, want,
        "the cancelled file ran once more, the finished one never again"
    );
}

/// Overwrites the first raw files of `name` (as [`raw_files`] wrote them) with `contents`.
fn raw_files_rewritten(env: &Env, name: &str, contents: &[&str]) {
    for (i, c) in contents.iter().enumerate() {
        let p = env.path("raw").join(format!("{name}_{i:04}.raw"));
        std::fs::write(&p, format!("{c}\n")).unwrap();
    }
}
