//! The torture harness: eight `repro tick` loops at once against one database and one
//! simulated world with failures and lost jobs on, a killer sending SIGKILL to running ticks
//! at random moments, the database server restarted under the ticks (MariaDB and
//! PostgreSQL), half the loops on a second "host" (a UTS namespace with its own hostname,
//! so leases name two hosts), and a SQLite database on a disk that fills up.
//!
//! After each campaign it checks, from the sim journal and the database: no external action
//! performed twice, no file lost or counted twice, every dataset CLEANED or FAILED with a
//! reason, every dataset loads, and the history of every file is a legal path through the
//! core's rule table. It prints one summary line per database.
//!
//! Settings: `REPRO_TORTURE=big` (1,000 ticks and at least 100 kills per database) or the
//! small default CI affords. Server restarts need `REPRO_TORTURE_RESTART_SERVERS=1` (set by
//! `.ci/run`: restarting the machine's servers is not something a plain `cargo test` may
//! do); MariaDB and PostgreSQL runs need `REPRO_TEST_MYSQL_URL` / `REPRO_TEST_POSTGRES_URL`.
//! Run: `cargo test --workspace --test torture -- --nocapture`.

#[allow(dead_code)]
#[path = "cli/support.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use repro_core::file::{FILE_RULES, FileEvent, FileState};
use serde_json::Value;
use support::{Env, journal, render};

const LOOPS: usize = 8;

/// How hard to push.
#[derive(Debug, Clone, Copy)]
struct Setting {
    /// Ticks started by the loops, in total (killed ones included).
    ticks: usize,
    /// At least this many ticks killed while running.
    kills: usize,
    datasets: usize,
    files: usize,
    /// Server restarts per campaign, where allowed.
    restarts: usize,
}

impl Setting {
    fn from_env() -> Setting {
        if std::env::var("REPRO_TORTURE").as_deref() == Ok("big") {
            Setting {
                ticks: 1_000,
                kills: 100,
                datasets: 12,
                files: 150,
                restarts: 4,
            }
        } else {
            Setting {
                ticks: 160,
                kills: 12,
                datasets: 4,
                files: 30,
                restarts: 1,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Mariadb,
    Postgres,
}

impl Db {
    fn label(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Mariadb => "mariadb",
            Db::Postgres => "postgres",
        }
    }
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a campaign saw.
#[derive(Debug, Default)]
struct Summary {
    ticks: usize,
    kills: usize,
    restarts: usize,
    outage_exits: usize,
    /// The first outage message.
    outage_said: Option<String>,
    hosts: usize,
    actions: usize,
    duplicates: usize,
    lost: usize,
    cleaned: usize,
    failed: usize,
}

/// The server outage window: exits 1 that name the database are expected while it lasts.
#[derive(Default)]
struct Outage {
    /// Set while a restart is under way and for a grace period after it.
    on: AtomicBool,
    /// Counts each start and end of an outage, so a tick can tell that one began or ended
    /// while it ran (one that started while the server was down may wait out its connect
    /// timeout after the server is back).
    changes: AtomicUsize,
    /// What the first tick that met it said.
    said: Mutex<Option<String>>,
}

fn shell(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_for(what: &str, probe: &str) {
    let t = Instant::now();
    while !shell(probe) {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "{what} did not come back"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the server, leaves it down a moment, starts it again and waits until it answers.
fn restart(db: Db) {
    match db {
        Db::Sqlite => unreachable!("SQLite has no server"),
        Db::Mariadb => {
            let ping = "mariadb-admin --protocol=tcp -h127.0.0.1 -uroot ping";
            // The pid file goes when the server has shut down; start-stop-daemon then finds
            // nothing to match (matching by executable alone can take a server still exiting,
            // or its zombie, for a running one).
            let pidfile = "/run/mysqld/mysqld.pid";
            let start = format!(
                "start-stop-daemon --start --oknodo --background --pidfile {pidfile} --exec /usr/sbin/mariadbd"
            );
            assert!(
                shell("mariadb-admin --protocol=tcp -h127.0.0.1 -uroot shutdown"),
                "cannot stop MariaDB"
            );
            let t = Instant::now();
            while shell(ping) || Path::new(pidfile).exists() {
                assert!(
                    t.elapsed() < Duration::from_secs(90),
                    "MariaDB did not stop"
                );
                thread::sleep(Duration::from_millis(100));
            }
            thread::sleep(Duration::from_millis(1000));
            assert!(shell(&start), "cannot start MariaDB");
            let t = Instant::now();
            let mut again = Instant::now();
            while !shell(ping) {
                if again.elapsed() > Duration::from_secs(15) && !Path::new(pidfile).exists() {
                    // No server wrote its pid file: start it again.
                    assert!(shell(&start), "cannot start MariaDB");
                    again = Instant::now();
                }
                assert!(
                    t.elapsed() < Duration::from_secs(90),
                    "MariaDB did not come back"
                );
                thread::sleep(Duration::from_millis(200));
            }
        }
        Db::Postgres => {
            let version = std::fs::read_dir("/etc/postgresql")
                .expect("/etc/postgresql")
                .next()
                .expect("a PostgreSQL cluster")
                .unwrap()
                .file_name();
            let version = version.to_string_lossy();
            assert!(
                shell(&format!(
                    "pg_ctlcluster --skip-systemctl-redirect {version} main stop -m fast"
                )),
                "cannot stop PostgreSQL"
            );
            thread::sleep(Duration::from_millis(1500));
            assert!(
                shell(&format!(
                    "pg_ctlcluster --skip-systemctl-redirect {version} main start"
                )),
                "cannot start PostgreSQL"
            );
            wait_for("PostgreSQL", "pg_isready -q -h 127.0.0.1 -p 5432");
        }
    }
}

/// Whether `unshare --uts` works here (it needs CAP_SYS_ADMIN).
fn second_host_possible() -> bool {
    shell("unshare --uts sh -c 'hostname torture-b'")
}

fn exit_text(s: &ExitStatus) -> String {
    s.code()
        .map_or_else(|| "a signal".into(), |c| c.to_string())
}

/// One loop: `repro -q tick` again and again until the shared budget of ticks is spent.
#[allow(clippy::too_many_arguments)]
fn tick_loop(
    env: &Env,
    url: &str,
    host: Option<&str>,
    slot: &Mutex<Option<Child>>,
    started: &AtomicUsize,
    budget: usize,
    outage: &Outage,
    outage_exits: &AtomicUsize,
    log: &Path,
) {
    while started.fetch_add(1, Ordering::SeqCst) < budget {
        let mut cmd = match host {
            None => env.spawnable(&["-q", "tick"]),
            Some(h) => {
                let mut c = Command::new("unshare");
                c.current_dir(env.dir.path())
                    .env("REPRO_ACTOR", "tester")
                    .env_remove("REPRO_CONFIG")
                    .env_remove("REPRO_LOG")
                    .args([
                        "--uts",
                        "sh",
                        "-c",
                        &format!("hostname {h} && exec \"$0\" -q tick"),
                        env!("CARGO_BIN_EXE_repro"),
                    ]);
                c
            }
        };
        let err = std::fs::File::create(log).unwrap();
        let (on_at_start, changes_at_start) = (
            outage.on.load(Ordering::SeqCst),
            outage.changes.load(Ordering::SeqCst),
        );
        let child = cmd
            .env("REPRO_DATABASE_URL", url)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start repro tick");
        *slot.lock().unwrap() = Some(child);
        let status = loop {
            thread::sleep(Duration::from_millis(5));
            let mut g = slot.lock().unwrap();
            if let Some(s) = g.as_mut().unwrap().try_wait().unwrap() {
                g.take();
                break s;
            }
        };
        if status.success() || status.code().is_none() {
            continue; // done, or killed by the killer
        }
        let said = std::fs::read_to_string(log).unwrap_or_default();
        // It met the outage if one was on when it started, is on now, or began or ended
        // while it ran.
        let during_outage = on_at_start
            || outage.on.load(Ordering::SeqCst)
            || outage.changes.load(Ordering::SeqCst) != changes_at_start;
        assert!(
            during_outage && status.code() == Some(1) && said.contains("database"),
            "a tick {} exited {}:\n{said}",
            if during_outage {
                "during the outage"
            } else {
                "with the database up"
            },
            exit_text(&status)
        );
        outage_exits.fetch_add(1, Ordering::SeqCst);
        outage
            .said
            .lock()
            .unwrap()
            .get_or_insert_with(|| said.trim().to_owned());
    }
}

fn campaign(db: Db, url: &str, setting: Setting, seed: u64) -> Summary {
    let env = Env::new();
    // A short lease, so a dead holder on the other host is taken over within seconds.
    env.write(
        "repro.toml",
        &format!(
            "[backend.sim]\nseed = {seed}\njournal = \"journal.jsonl\"\nreco_failure = 0.08\nmerge_failure = 0.08\nlost_job = 0.04\nstage_failure = 0.04\n[policy]\nmax_attempts = 4\nmerge_group_files = 8\n[lease]\nttl_s = 6\n"
        ),
    );
    let run = |args: &[&str]| env.ok_at(url, args);
    run(&["init"]);
    let names: Vec<String> = (0..setting.datasets)
        .map(|d| format!("torture.{d}"))
        .collect();
    for name in &names {
        let list: String = (0..setting.files)
            .map(|f| format!("/store/{name}/f{f:03}.raw {}\n", 1000 + f))
            .collect();
        let file = env.write(&format!("{name}.list"), &list);
        run(&[
            "dataset",
            "add",
            name,
            "--files",
            file.to_str().unwrap(),
            "--unlock",
        ]);
    }

    let two_hosts = db != Db::Sqlite && second_host_possible();
    let restarts_allowed =
        db != Db::Sqlite && std::env::var("REPRO_TORTURE_RESTART_SERVERS").as_deref() == Ok("1");
    let slots: Vec<Mutex<Option<Child>>> = (0..LOOPS).map(|_| Mutex::new(None)).collect();
    let started = AtomicUsize::new(0);
    let outage = Outage::default();
    let outage_exits = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let mut kills = 0;
    let mut restarts = 0;
    thread::scope(|s| {
        let loops: Vec<_> = (0..LOOPS)
            .map(|i| {
                let (env, slot, started, outage, outage_exits) =
                    (&env, &slots[i], &started, &outage, &outage_exits);
                let host = (two_hosts && i % 2 == 1).then_some("torture-b");
                let log = env.path(&format!("loop{i}.err"));
                s.spawn(move || {
                    tick_loop(
                        env,
                        url,
                        host,
                        slot,
                        started,
                        setting.ticks,
                        outage,
                        outage_exits,
                        &log,
                    );
                })
            })
            .collect();
        // The restarter: at evenly spread points of the budget.
        let restarter = restarts_allowed.then(|| {
            let (started, outage, done) = (&started, &outage, &done);
            s.spawn(move || {
                let mut n = 0;
                for k in 1..=setting.restarts {
                    let at = setting.ticks * k / (setting.restarts + 1);
                    while started.load(Ordering::SeqCst) < at {
                        if done.load(Ordering::SeqCst) {
                            return n;
                        }
                        thread::sleep(Duration::from_millis(20));
                    }
                    outage.on.store(true, Ordering::SeqCst);
                    outage.changes.fetch_add(1, Ordering::SeqCst);
                    restart(db);
                    n += 1;
                    // Ticks that met the outage may still be finishing.
                    thread::sleep(Duration::from_secs(2));
                    outage.on.store(false, Ordering::SeqCst);
                    outage.changes.fetch_add(1, Ordering::SeqCst);
                }
                n
            })
        });
        // The killer: SIGKILL to a random running tick, at random moments, paced so the
        // kills spread over the whole budget.
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let per_kill = (setting.ticks / setting.kills.max(1)).max(1);
        while started.load(Ordering::SeqCst) < setting.ticks {
            thread::sleep(Duration::from_millis(2 + rng.below(40)));
            if started.load(Ordering::SeqCst) < kills * per_kill {
                continue;
            }
            let i = rng.below(LOOPS as u64) as usize;
            let mut g = slots[i].lock().unwrap();
            if let Some(child) = g.as_mut()
                && child.try_wait().unwrap().is_none()
            {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
        }
        for l in loops {
            l.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        if let Some(r) = restarter {
            restarts = r.join().unwrap();
        }
    });

    // Plain ticks from one process: whatever the dead left is taken over (at once on this
    // host, after the short lease on the other) and everything comes to rest.
    let settled = |v: &Value| {
        v.as_array().unwrap().iter().all(|d| {
            d["cleanup"] == "CLEANED"
                || ["prestage", "reco", "merge", "cleanup"]
                    .iter()
                    .any(|p| d[*p] == "FAILED")
        })
    };
    let t = Instant::now();
    loop {
        run(&["-q", "tick"]);
        let list: Value = serde_json::from_str(&run(&["--json", "dataset", "list"])).unwrap();
        if settled(&list) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the campaign did not come to rest: {list:#}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    let s = check(&env, url, &names, setting);
    Summary {
        ticks: started.load(Ordering::SeqCst).min(setting.ticks),
        kills,
        restarts,
        outage_exits: outage_exits.load(Ordering::SeqCst),
        outage_said: outage.said.lock().unwrap().take(),
        hosts: if two_hosts { 2 } else { 1 },
        ..s
    }
}

/// What the journal and the database say once the campaign is at rest.
fn check(env: &Env, url: &str, names: &[String], setting: Setting) -> Summary {
    let run = |args: &[&str]| serde_json::from_str::<Value>(&env.ok_at(url, args)).unwrap();
    let mut summary = Summary::default();
    // No external action twice.
    let j = journal(&env.path("journal.jsonl"));
    summary.actions = j.len();
    let mut seen = HashSet::new();
    for e in &j {
        if !seen.insert(e.clone()) {
            summary.duplicates += 1;
        }
    }
    let rules: HashSet<(FileState, FileEvent, FileState)> =
        FILE_RULES.iter().map(|r| (r.from, r.event, r.to)).collect();
    for name in names {
        // It loads (a row `load` refuses would fail `show`), and says why it failed.
        let show = run(&["--json", "dataset", "show", name]);
        let failed = ["prestage", "reco", "merge", "cleanup"]
            .iter()
            .any(|p| show[*p] == "FAILED");
        if failed {
            summary.failed += 1;
            let out = env
                .cmd(&["dataset", "show", name])
                .env("REPRO_DATABASE_URL", url)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("NEEDS A PERSON: ") && !text.contains("no reason recorded"),
                "{name} FAILED without a reason:\n{}",
                render(&out)
            );
        } else {
            assert_eq!(
                show["cleanup"], "CLEANED",
                "{name} is neither CLEANED nor FAILED"
            );
            summary.cleaned += 1;
        }
        // Every registered file is there exactly once.
        let files = &show["files"];
        let counted: u64 = files
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "total")
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        for n in [counted, files["total"].as_u64().unwrap()] {
            summary.lost += setting.files.abs_diff(n as usize);
        }
        // The history of every file is a legal path from `registered`.
        let h = run(&["--json", "history", name, "--entity", "file"]);
        let mut by_file: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
        for e in h.as_array().unwrap() {
            by_file
                .entry(e["entity_id"].as_i64().unwrap())
                .or_default()
                .push(e);
        }
        assert_eq!(by_file.len(), setting.files, "{name}: files with a history");
        for (id, entries) in by_file {
            let mut at = FileState::Registered;
            for e in entries {
                let from: FileState = e["from"].as_str().unwrap().parse().unwrap();
                let via: FileEvent = e["via"].as_str().unwrap().parse().unwrap();
                let to: FileState = e["to"].as_str().unwrap().parse().unwrap();
                assert_eq!(from, at, "{name} file {id}: history jumps: {e}");
                assert!(
                    rules.contains(&(from, via, to)),
                    "{name} file {id}: {from} --{via}--> {to} is not a rule"
                );
                at = to;
            }
        }
    }
    summary
}

fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "{var} must be set in CI");
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

/// A fresh database on the server of `admin`'s URL; its URL.
fn fresh_database(admin: &str, name: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = repro_db::Store::open(admin)
            .await
            .expect("reach the server");
        store
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .expect("drop the scratch database");
        store
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the scratch database");
    });
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

fn report(db: Db, s: &Summary) {
    println!(
        "torture {}: ticks={} kills={} server_restarts={} outage_exits={} hosts={} actions={} duplicates={} lost={} cleaned={} failed={}",
        db.label(),
        s.ticks,
        s.kills,
        s.restarts,
        s.outage_exits,
        s.hosts,
        s.actions,
        s.duplicates,
        s.lost,
        s.cleaned,
        s.failed
    );
    if let Some(said) = &s.outage_said {
        println!("  a tick that met the outage said: {said}");
    }
}

fn assert_unharmed(db: Db, s: &Summary, setting: Setting) {
    report(db, s);
    assert_eq!(s.duplicates, 0, "{db:?}: actions performed twice");
    assert_eq!(s.lost, 0, "{db:?}: files lost or counted twice");
    assert!(
        s.kills >= setting.kills,
        "{db:?}: only {} ticks were killed while running",
        s.kills
    );
    assert!(s.actions > 0);
}

/// The three databases one after another: the servers' runs restart their server, which no
/// other test may see, so they share this one test.
#[test]
fn eight_tick_loops_with_kills_restarts_and_two_hosts_lose_nothing_and_repeat_nothing() {
    let setting = Setting::from_env();
    let env = Env::new();
    let s = campaign(Db::Sqlite, &env.db.clone(), setting, 3);
    assert_unharmed(Db::Sqlite, &s, setting);
    let pid = std::process::id();
    if let Some(admin) = server_url("REPRO_TEST_MYSQL_URL") {
        let url = fresh_database(&admin, &format!("repro_torture_{pid}"));
        let s = campaign(Db::Mariadb, &url, setting, 5);
        assert_unharmed(Db::Mariadb, &s, setting);
        fresh_database(&admin, &format!("repro_torture_{pid}"));
    }
    if let Some(admin) = server_url("REPRO_TEST_POSTGRES_URL") {
        let url = fresh_database(&admin, &format!("repro_torture_{pid}"));
        let s = campaign(Db::Postgres, &url, setting, 7);
        assert_unharmed(Db::Postgres, &s, setting);
    }
}

/// SQLite on a disk that fills up: the tick that meets the full disk fails with a clear
/// error and a non-zero exit, and the database is intact: once there is room again the
/// campaign carries on to the end.
#[test]
fn a_full_disk_under_sqlite_is_a_clean_error_and_loses_nothing() {
    let env = Env::new();
    let mnt = env.path("small");
    std::fs::create_dir(&mnt).unwrap();
    // A tmpfs of 1 MiB where the machine lets the test mount one.
    if !shell(&format!(
        "mount -t tmpfs -o size=1m tmpfs {}",
        mnt.display()
    )) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs for this test"
        );
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            shell(&format!("umount {}", self.0.display()));
        }
    }
    let _unmount = Unmount(mnt.clone());
    let url = format!("sqlite://{}?mode=rwc", mnt.join("repro.db").display());
    env.write(
        "repro.toml",
        "[backend.sim]\nseed = 9\njournal = \"journal.jsonl\"\nreco_failure = 0.0\nmerge_failure = 0.0\nlost_job = 0.0\n",
    );
    let run = |args: &[&str]| {
        env.cmd(args)
            .env("REPRO_DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    // Register datasets until one no longer fits.
    let mut registered = Vec::new();
    let mut refusal = None;
    for d in 0..200 {
        let name = format!("full.{d}");
        let list: String = (0..200)
            .map(|f| format!("/store/{name}/a-long-logical-file-name-{f:05}.raw 1000\n"))
            .collect();
        let file = env.write(&format!("{name}.list"), &list);
        let out = run(&[
            "dataset",
            "add",
            &name,
            "--files",
            file.to_str().unwrap(),
            "--unlock",
        ]);
        if out.status.success() {
            registered.push(name);
        } else {
            refusal = Some(out);
            break;
        }
    }
    let out = refusal.expect("the disk never filled up");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", render(&out));
    assert!(
        said.contains("full") || said.contains("disk") || said.contains("space"),
        "the error does not say the disk is full:\n{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    // Ticks on the full disk: each fails cleanly or gets on; none corrupts anything.
    for _ in 0..3 {
        let out = run(&["-q", "tick"]);
        assert!(
            out.status.success() || out.status.code() == Some(1),
            "{}",
            render(&out)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    // Room again: the database is intact and every registered dataset reaches the end.
    assert!(
        shell(&format!("mount -o remount,size=64m {}", mnt.display())),
        "cannot grow the tmpfs"
    );
    for _ in 0..30 {
        let out = run(&["-q", "tick"]);
        assert!(out.status.success(), "{}", render(&out));
    }
    let out = run(&["--json", "dataset", "list"]);
    assert!(out.status.success(), "{}", render(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), registered.len(), "{names:?}");
    for d in list.as_array().unwrap() {
        assert_eq!(d["cleanup"], "CLEANED", "{d}");
    }
    let integrity = Command::new("sqlite3")
        .arg(mnt.join("repro.db"))
        .arg("PRAGMA integrity_check")
        .output();
    if let Ok(o) = integrity {
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
    }
}
