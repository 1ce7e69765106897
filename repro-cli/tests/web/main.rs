//! The status page in a real browser: headless Chromium loads `repro serve` over a database
//! the sim backend filled, the rendered DOM is checked, and screenshots are kept under
//! `web-screenshots/` under the target directory. Ignored by a plain `cargo test`, which says
//! so; `.ci/run` runs it with `--ignored`, and there a missing Chromium fails it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repro() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repro"));
    c.env_remove("REPRO_CONFIG")
        .env_remove("REPRO_DATABASE_URL");
    c
}

fn chromium(profile: &Path, args: &[&str]) -> String {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "needs Debian's chromium (apt-get install chromium); run with --ignored"]
fn the_status_page_renders_in_a_real_browser() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is not installed: apt-get install chromium"
    );
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("campaign");
    let out = repro()
        .args(["demo", "--datasets", "4", "--files", "30", "--keep"])
        .arg(&keep)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = format!("sqlite://{}?mode=rwc", keep.join("repro.db").display());
    let mut child = repro()
        .args(["--db", &db, "serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let _server = Server(child);
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let profile = dir.path().join("profile");
    let dom = chromium(&profile, &["--dump-dom", &url]);
    assert!(dom.contains("Reprocessing campaign"), "{dom}");
    assert!(dom.contains("id=\"datasets\""));
    for d in 0..4 {
        assert!(
            dom.contains(&format!(">demo.p17.{d:03}<")),
            "dataset {d} missing from the page"
        );
    }
    assert!(dom.contains("CLEANED") && dom.contains("MERGED_DBUP"));
    assert!(dom.contains("<svg"));
    let page = format!("{url}datasets/demo.p17.001");
    let dom = chromium(&profile, &["--dump-dom", &page]);
    for s in [
        "id=\"files\"",
        "id=\"jobs\"",
        "id=\"history\"",
        "demo.p17.001.reco.f",
        "declare_merged",
    ] {
        assert!(dom.contains(s), "dataset page lacks {s:?}");
    }
    let shots = screenshots();
    for (name, target) in [("index.png", url.clone()), ("dataset.png", page)] {
        let file = shots.join(name);
        let _ = std::fs::remove_file(&file);
        chromium(
            &profile,
            &[
                "--window-size=1400,1000",
                "--hide-scrollbars",
                &format!("--screenshot={}", file.display()),
                &target,
            ],
        );
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "screenshot {} is {size} bytes",
            file.display()
        );
    }
}
