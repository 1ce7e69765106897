//! A scratch directory with its own database, config and simulated world per test.

use std::path::{Path, PathBuf};
use std::process::Output;

/// A scratch directory; `repro` runs inside it with its database there.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("repro.db").display()
        );
        Env { dir, db }
    }

    /// `repro ARGS` as a plain process, to spawn and signal.
    pub fn spawnable(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_repro"));
        c.current_dir(self.dir.path())
            .env("REPRO_DATABASE_URL", &self.db)
            .env_remove("REPRO_CONFIG")
            .env_remove("REPRO_LOG")
            .env("REPRO_ACTOR", "tester")
            .args(args);
        c
    }

    /// `repro ARGS` in the scratch directory, as user `tester`.
    pub fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_repro"));
        c.current_dir(self.dir.path())
            .env("REPRO_DATABASE_URL", &self.db)
            .env_remove("REPRO_CONFIG")
            .env_remove("REPRO_LOG")
            .env("REPRO_ACTOR", "tester")
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run repro")
    }

    /// Runs and insists on success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "repro {args:?} failed:\n{}",
            render(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ok` against the database at `url` instead of the scratch one.
    pub fn ok_at(&self, url: &str, args: &[&str]) -> String {
        let out = self
            .cmd(args)
            .env("REPRO_DATABASE_URL", url)
            .output()
            .expect("run repro");
        assert!(out.status.success(), "repro {args:?}:\n{}", render(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write scratch file");
        p
    }

    /// `repro init` and a config whose simulated world never fails, with a journal.
    pub fn init_reliable(&self) {
        self.write(
            "repro.toml",
            "[backend]\nkind = \"sim\"\n[backend.sim]\nseed = 7\njournal = \"journal.jsonl\"\nreco_failure = 0.0\nmerge_failure = 0.0\nlost_job = 0.0\n",
        );
        self.ok(&["init"]);
    }

    /// Registers `name` with `n` files.
    pub fn add(&self, name: &str, n: usize, extra: &[&str]) {
        let list: String = (1..=n)
            .map(|i| format!("/store/{name}/raw_{i:03}.dat {}\n", 1000 * i))
            .collect();
        let file = self.write(&format!("{name}.list"), &list);
        let mut args = vec!["dataset", "add", name, "--files", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// Snapshot text of a run, with the scratch path and times made stable.
    pub fn show(&self, out: &Output) -> String {
        let text = render(out);
        let dir = self.dir.path().display().to_string();
        stable(&text.replace(&dir, "[DIR]"))
    }
}

/// `status`, stdout and stderr of a run.
pub fn render(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Replaces wall-clock times with a placeholder.
pub fn stable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // YYYY-MM-DD HH:MM:SS
        if i + 19 <= b.len() && is_time(&b[i..i + 19]) {
            out.push_str("[TIME]");
            i += 19;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_time(w: &[u8]) -> bool {
    w.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        10 => *c == b' ' || *c == b'T',
        13 | 16 => *c == b':',
        _ => c.is_ascii_digit(),
    })
}

/// The journal's lines as (action, dataset, file, attempt). A line cut short is the start
/// of an entry written by a process killed while appending it, before it saved the world:
/// its action was not done, and is left out. Any other line that is not JSON fails.
pub fn journal(path: &Path) -> Vec<(String, String, String, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !matches!(serde_json::from_str::<serde_json::Value>(l), Err(e) if e.is_eof()))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("journal lines are JSON");
            (
                v["action"].as_str().unwrap().to_owned(),
                v["dataset"].as_str().unwrap().to_owned(),
                v["file"].as_str().unwrap().to_owned(),
                v["attempt"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Whether one `repro --json tick` left `name` alone (settled: not loaded, not polled).
pub fn tick_settled(env: &Env, name: &str) -> bool {
    let out = env.run(&["--json", "tick"]);
    assert!(out.status.success(), "{}", render(&out));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no report for {name}: {reports}"));
    r["settled"] == true
}
