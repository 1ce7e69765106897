//! The whole demo campaign (DATASETS x FILES raw files, the simulation's default failures,
//! jobs that end at once) from registration to rest, on each database named, one after
//! the other in this process: one table to compare SQLite, MariaDB and PostgreSQL on the
//! same work (issue 10, target 5).
//!
//! ```sh
//! cargo run --release -p repro-run --example campaign -- 20 5000 sqlite \
//!     'mysql://root@127.0.0.1:3306/campaign' 'postgres://postgres@127.0.0.1:5432/campaign'
//! ```
//!
//! `sqlite` is a new file in a temporary directory; a server URL names a database this
//! drops and creates anew (its server's `test` database must exist to connect to).
//! Prints one row per database: registration, ticks to rest, the wall of the ticks, the
//! whole run, and the process's peak RSS during that database's run.

use std::time::Instant;

use common::peak_rss_mib;
use repro_run::demo::{Campaign, run};

mod common;

/// Starts the peak RSS again from what the process holds now (Linux: `clear_refs` 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A fresh database at `url`: `None` for SQLite (the campaign makes it in its directory),
/// or the server's database dropped and made anew.
async fn fresh(url: &str) -> Result<Option<String>, Box<dyn std::error::Error>> {
    if url == "sqlite" {
        return Ok(None);
    }
    Ok(Some(common::fresh_server_database(url).await?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: u32| -> Result<u32, String> {
        args.get(i).map_or(Ok(default), |a| {
            a.parse()
                .map_err(|_| format!("argument {i} must be a whole number, not {a:?}"))
        })
    };
    let (datasets, files) = (number(1, 20)?, number(2, 5_000)?);
    let urls: Vec<String> = match args.get(3..) {
        Some(rest) if !rest.is_empty() => rest.to_vec(),
        _ => vec!["sqlite".to_owned()],
    };
    println!(
        "{datasets} datasets x {files} raw files = {} raw files, default failures, {} workers",
        u64::from(datasets) * u64::from(files),
        repro_run::config::default_workers()
    );
    println!(
        "| database | registration | ticks to rest | wall of the ticks | whole run | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for url in &urls {
        let dir = tempfile::tempdir()?;
        let campaign = Campaign {
            datasets,
            files,
            seed: 42,
            dir: dir.path().to_owned(),
            workers: repro_run::config::default_workers(),
            url: fresh(url).await?,
            failures: true,
        };
        reset_peak();
        let t = Instant::now();
        let done = run(&campaign, |_, _| {}).await?;
        let s = &done.summary;
        let at_rest = s.cleaned + s.failed;
        if at_rest != s.datasets {
            return Err(format!("{url}: {at_rest} of {} datasets at rest", s.datasets).into());
        }
        println!(
            "| {} | {:.1} s | {} | {:.1} s | {:.1} s | {} MiB |",
            repro_db::redact(url),
            s.registration_s,
            s.ticks,
            s.ticks_s,
            t.elapsed().as_secs_f64(),
            peak_rss_mib()
        );
    }
    Ok(())
}
