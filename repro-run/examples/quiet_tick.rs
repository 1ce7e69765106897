//! What a cron tick costs with a whole campaign in flight and nothing finishing: DATASETS
//! datasets of FILES raw files are registered, staged at once, and given reco jobs that
//! never end (the sim backend, `reco_duration_s` 10^9); then ticks run as cron would start
//! them, each timed, until TICKS ticks have run. Prints one line per tick: its wall time,
//! the datasets it left alone (settled: nothing written, nothing new out there since a
//! tick found nothing to do) and the SQL statements it sent; then what `repro plan` costs
//! (a settled dataset's preview is read from its row and four counts), a whole load of
//! every dataset, and a `dataset list`.
//!
//! ```sh
//! cargo run --release -p repro-run --example quiet_tick -- 20 50000            # SQLite
//! cargo run --release -p repro-run --example quiet_tick -- 20 5000 8 'mysql://root@127.0.0.1:3306/quiet'
//! ```
//!
//! A server URL names a database this drops and creates anew.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use repro_core::DatasetName;
use repro_db::{ListFilter, NewFile, Register, Store};
use repro_run::backend::sim::SimBackend;
use repro_run::config::SimConfig;
use repro_run::{Driver, Op};
use tracing_subscriber::layer::SubscriberExt;

use common::peak_rss_mib;

mod common;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

/// Counts the statements the store sends (events of target `sqlx::query`).
struct Count;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Count))?;
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| -> Result<usize, String> {
        args.get(i).map_or(Ok(default), |a| {
            a.parse()
                .map_err(|_| format!("argument {i} must be a whole number, not {a:?}"))
        })
    };
    let (datasets, files, ticks) = (arg(1, 20)?, arg(2, 5_000)?, arg(3, 8)?);
    let dir = tempfile::tempdir()?;
    let url = match args.get(4) {
        Some(url) => common::fresh_server_database(url).await?,
        None => repro_run::demo::sqlite_url(&dir.path().join("quiet.db")),
    };
    let store = Store::open(&url).await?;
    store.migrate().await?;
    let t = Instant::now();
    let mut names = Vec::new();
    for d in 0..datasets {
        let name = DatasetName::new(format!("quiet.ds{d:03}"))?;
        let list: Vec<NewFile> = (0..files)
            .map(|f| NewFile::new(format!("/store/{name}/raw_{f:06}.raw"), 1 << 30))
            .collect();
        let opts = Register {
            unlock: true,
            ..Register::default()
        };
        store.register(&name, &list, &opts, "bench").await?;
        names.push(name);
    }
    println!(
        "{datasets} datasets x {files} files = {} raw files, registered in {:.2} s ({url})",
        datasets * files,
        t.elapsed().as_secs_f64()
    );
    let config = SimConfig {
        world: dir.path().join("world"),
        stage_failure: 0.0,
        reco_failure: 0.0,
        merge_failure: 0.0,
        lost_job: 0.0,
        stage_duration_s: Some(0.0),
        reco_duration_s: Some(1e9),
        ..SimConfig::default()
    };
    println!("| tick | wall | datasets left alone | statements |");
    println!("|---:|---:|---:|---:|");
    for i in 0..ticks {
        // A new backend per tick, a second later each time, as cron starts `repro tick`.
        let backend = SimBackend::new(config.clone(), 1.0 + i as f64);
        let before = STATEMENTS.load(Ordering::Relaxed);
        let t = Instant::now();
        let run = Driver::new(&store, &backend)
            .run_many(Op::Tick, &names, true)
            .await;
        let wall = t.elapsed().as_secs_f64();
        if let Some((n, e)) = run.errors.first() {
            return Err(format!("tick {}: {n}: {e}", i + 1).into());
        }
        let alone = run.reports.iter().filter(|r| r.settled).count();
        println!(
            "| {} | {wall:.3} s | {alone} of {datasets} | {} |",
            i + 1,
            STATEMENTS.load(Ordering::Relaxed) - before
        );
    }
    let t = Instant::now();
    let before = STATEMENTS.load(Ordering::Relaxed);
    let ledger = repro_run::ledger::Ledger::new();
    let mut polls = 0;
    let (policy, now) = (
        repro_core::Policy::default(),
        chrono::Utc::now().timestamp(),
    );
    for n in &names {
        polls += repro_run::preview_dataset(&store, &ledger, n, &policy, now)
            .await?
            .polls;
    }
    println!(
        "what a tick would do to every dataset (`repro plan`: {polls} polls due): {:.3} s, {} statements",
        t.elapsed().as_secs_f64(),
        STATEMENTS.load(Ordering::Relaxed) - before
    );
    let t = Instant::now();
    let mut loaded = 0;
    for n in &names {
        loaded += store.load(n).await?.files.len();
    }
    println!(
        "loading every dataset whole ({loaded} files): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let list = store.list(&ListFilter::default()).await?;
    println!(
        "listing {} datasets with their file counts (`repro dataset list`): {:.3} s",
        list.len(),
        t.elapsed().as_secs_f64()
    );
    what_a_person_opens(&store, &names[names.len() / 2]).await?;
    println!("peak RSS: {} MiB", peak_rss_mib());
    Ok(())
}

/// What `dataset show`, `dataset jobs`, `dataset files` and the dataset's page read of one
/// dataset: a glance (counts, groups, what failed for good, the newest jobs) and a page
/// each of files and jobs; each the slowest of five.
async fn what_a_person_opens(store: &Store, name: &DatasetName) -> repro_db::Result<()> {
    async fn slowest<T, F: std::future::Future<Output = repro_db::Result<T>>>(
        f: impl Fn() -> F,
    ) -> repro_db::Result<f64> {
        let mut worst: f64 = 0.0;
        for _ in 0..5 {
            let t = Instant::now();
            f().await?;
            worst = worst.max(t.elapsed().as_secs_f64());
        }
        Ok(worst)
    }
    let now = chrono::Utc::now().timestamp();
    let glance = slowest(|| store.glance(name, now, 20)).await?;
    let files = slowest(|| store.files_page(name, None, 0, 100)).await?;
    let deep = slowest(|| store.files_page(name, None, 40_000, 100)).await?;
    let jobs = slowest(|| store.jobs_page(name, 0, 100)).await?;
    println!(
        "one dataset as a person opens it: glance {glance:.3} s, first page of files {files:.3} s (page 401: {deep:.3} s), first page of jobs {jobs:.3} s"
    );
    Ok(())
}
