//! `repro demo`: a whole simulated campaign on a throw-away SQLite database.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use repro_core::job::JobSubject;
use repro_core::plan::at_rest;
use repro_core::{DatasetName, FileState};
use repro_db::{ListFilter, NewFile, Register, Store};
use serde::Serialize;

use crate::backend::sim::SimBackend;
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::error::CliError;
use crate::ops::Op;

/// The demo's closing numbers.
#[derive(Debug, Default, Serialize)]
struct Summary {
    datasets: usize,
    cleaned: usize,
    failed: usize,
    files: u64,
    files_cleaned: u64,
    files_failed_for_good: u64,
    reco_jobs: usize,
    merge_jobs: usize,
    retries: usize,
    ticks: usize,
    wall_time_s: f64,
}

pub async fn run(args: &DemoArgs, json: bool) -> Result<ExitCode, CliError> {
    let t0 = Instant::now();
    let tmp;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| CliError::Input(format!("cannot create {}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().map_err(|e| {
                CliError::Other(format!("cannot create a temporary directory: {e}"))
            })?;
            tmp.path().to_owned()
        }
    };
    let mut config = Config::default();
    config.backend.sim.seed = args.seed;
    config.backend.sim.world = dir.join("sim-world");
    config.backend.sim.journal = Some(dir.join("sim-journal.jsonl"));
    let url = format!("sqlite://{}?mode=rwc", dir.join("repro.db").display());
    let store = Store::open(&url).await?;
    store.migrate().await?;

    let mut names = Vec::new();
    for d in 0..args.datasets {
        let name = DatasetName::new(format!("demo.p17.{d:03}"))?;
        let files: Vec<NewFile> = (0..args.files)
            .map(|f| NewFile {
                lfn: format!("/store/{name}/raw/run{:04}/file_{f:06}.raw", f / 100),
                size: 1_500_000_000 + u64::from(f % 997) * 1_000_003,
            })
            .collect();
        store
            .register(
                &name,
                &files,
                &Register {
                    unlock: true,
                    site: Some("sim".into()),
                },
                "demo",
            )
            .await?;
        names.push(name);
    }

    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(u64::from(args.datasets));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} datasets at rest {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut backend = SimBackend::new(config.backend.sim.clone(), 0.0);
    let mut ticks = 0;
    loop {
        let active: Vec<DatasetName> = store
            .list(&ListFilter::default())
            .await?
            .into_iter()
            .filter(|d| !at_rest(d.status.state))
            .map(|d| d.name)
            .collect();
        if let Some(b) = &bar {
            b.set_position(u64::from(args.datasets) - active.len() as u64);
            b.set_message(format!("(tick {ticks})"));
        }
        if active.is_empty() {
            break;
        }
        if ticks >= 500 {
            return Err(CliError::Other(format!(
                "the demo campaign did not come to rest in {ticks} ticks"
            )));
        }
        let (reports, worst) =
            crate::drive(&store, &config, &mut backend, Op::Tick, &active, false).await;
        if let Some(e) = worst {
            return Err(e);
        }
        if reports
            .iter()
            .all(|r| r.transitions.is_empty() && r.actions == 0 && r.outcomes == 0)
        {
            return Err(CliError::Other(format!(
                "the demo campaign stalled after {ticks} ticks"
            )));
        }
        ticks += 1;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    let list = store.list(&ListFilter::default()).await?;
    let mut s = Summary {
        datasets: list.len(),
        ticks,
        ..Summary::default()
    };
    for d in &list {
        let c = d.status.columns();
        if c.cleanup == repro_core::CleanupWord::Cleaned {
            s.cleaned += 1;
        } else {
            s.failed += 1;
        }
        s.files += d.files.total;
        s.files_cleaned += d.files.get(FileState::Cleaned);
        s.files_failed_for_good +=
            d.files.get(FileState::StageFailedForGood) + d.files.get(FileState::RecoFailedForGood);
        let view = store.load(&d.name).await?;
        for j in view.jobs.values() {
            match j.key.subject {
                JobSubject::Reco(_) => s.reco_jobs += 1,
                JobSubject::Merge(_) => s.merge_jobs += 1,
            }
            if j.key.attempt > 1 {
                s.retries += 1;
            }
        }
    }
    s.wall_time_s = t0.elapsed().as_secs_f64();
    if json {
        print!(
            "{}",
            crate::output::json(&serde_json::json!({
                "datasets": list.iter().map(crate::output::DatasetJson::from).collect::<Vec<_>>(),
                "summary": s,
            }))
        );
    } else {
        print!("{}", crate::output::datasets(&list));
        println!();
        println!(
            "{} datasets: {} CLEANED, {} FAILED; {} raw files: {} cleaned, {} failed for good",
            s.datasets, s.cleaned, s.failed, s.files, s.files_cleaned, s.files_failed_for_good
        );
        println!(
            "{} reco jobs and {} merge jobs, {} of them retries; {} ticks in {:.1} s",
            s.reco_jobs, s.merge_jobs, s.retries, s.ticks, s.wall_time_s
        );
        if let Some(d) = &args.keep {
            println!(
                "database, simulated world and journal kept in {}",
                d.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
