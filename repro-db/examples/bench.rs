//! Storage benchmark (not a test): registers 1,000,000 raw files in 20 datasets and moves
//! them through every file state in bulk, reporting rows per second per operation and the
//! peak resident memory. Runs on SQLite, and on MariaDB and PostgreSQL when
//! `REPRO_TEST_MYSQL_URL` / `REPRO_TEST_POSTGRES_URL` are set (it creates and drops a
//! database `repro_bench` there).
//!
//! ```sh
//! cargo run --release -p repro-db --example bench            # 20 x 50,000 files
//! cargo run --release -p repro-db --example bench -- 4 10000 # 4 x 10,000 files
//! ```

use std::time::Instant;

use repro_core::file::{FileEvent, TmbFile};
use repro_core::{Change, DatasetName};
use repro_db::{NewFile, Register, Store};
use sea_orm::{ConnectionTrait, Database};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

struct Timing {
    op: String,
    rows: u64,
    secs: f64,
    slowest_batch: f64,
}

async fn run(
    label: &str,
    url: &str,
    datasets: usize,
    per: usize,
) -> Result<Vec<Timing>, Box<dyn std::error::Error>> {
    let store = Store::open(url).await?;
    store.migrate().await?;
    let mut out = Vec::new();
    let names: Vec<DatasetName> = (0..datasets)
        .map(|d| DatasetName::new(format!("bench.{d:02}")).unwrap())
        .collect();

    let t = Instant::now();
    let mut slowest = 0f64;
    for name in &names {
        let files: Vec<NewFile> = (0..per)
            .map(|i| NewFile {
                lfn: format!("/store/{name}/raw/file_{i:07}.raw"),
                size: 2_000_000_000,
            })
            .collect();
        let b = Instant::now();
        store
            .register(
                name,
                &files,
                &Register {
                    unlock: true,
                    site: None,
                    ..Register::default()
                },
                "bench",
            )
            .await?;
        slowest = slowest.max(b.elapsed().as_secs_f64());
    }
    out.push(Timing {
        op: "register".into(),
        rows: (datasets * per) as u64,
        secs: t.elapsed().as_secs_f64(),
        slowest_batch: slowest,
    });

    let steps: &[(&str, FileEvent)] = &[
        ("registered -> staging", FileEvent::RequestStage),
        ("staging -> staged", FileEvent::StageDone),
        ("staged -> reco_submitted", FileEvent::SubmitReco),
        (
            "reco_submitted -> reconstructed (+TMB)",
            FileEvent::RecoDone,
        ),
        ("reconstructed -> merged", FileEvent::Merge),
        ("merged -> deleting", FileEvent::ReserveDelete),
        ("deleting -> cleaned", FileEvent::Clean),
    ];
    for (label, event) in steps {
        let t = Instant::now();
        let mut slowest = 0f64;
        for name in &names {
            let view = store.load(name).await?;
            let changes: Vec<Change> = view
                .files
                .values()
                .filter_map(|f| {
                    let c = Change::file(f, *event)?;
                    Some(if *event == FileEvent::RecoDone {
                        c.with_tmb(TmbFile {
                            path: format!("/tmb/{}.tmb", f.id),
                            size: 1_000_000,
                        })
                    } else {
                        c
                    })
                })
                .collect();
            let b = Instant::now();
            store.apply(name, &changes, "bench").await?;
            slowest = slowest.max(b.elapsed().as_secs_f64());
        }
        out.push(Timing {
            op: (*label).into(),
            rows: (datasets * per) as u64,
            secs: t.elapsed().as_secs_f64(),
            slowest_batch: slowest,
        });
    }
    let t = Instant::now();
    let all = store.list(&Default::default()).await?;
    out.push(Timing {
        op: format!("list {} datasets with file counts", all.len()),
        rows: all.iter().map(|d| d.files.total).sum(),
        secs: t.elapsed().as_secs_f64(),
        slowest_batch: t.elapsed().as_secs_f64(),
    });
    eprintln!("{label}: done");
    Ok(out)
}

fn server_url(admin: &str, db: &str) -> String {
    let base = admin.split('?').next().unwrap_or(admin);
    let cut = base
        .rfind('/')
        .filter(|i| *i > base.find("://").map_or(0, |s| s + 2))
        .unwrap_or(base.len());
    format!("{}/{db}", &base[..cut])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let datasets: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let per: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let dir = tempfile::tempdir()?;
    let mut runs = vec![(
        "sqlite".to_owned(),
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        None,
    )];
    for (label, var) in [
        ("mariadb", "REPRO_TEST_MYSQL_URL"),
        ("postgres", "REPRO_TEST_POSTGRES_URL"),
    ] {
        if let Ok(admin) = std::env::var(var) {
            let conn = Database::connect(&admin).await?;
            conn.execute_unprepared("DROP DATABASE IF EXISTS repro_bench")
                .await?;
            conn.execute_unprepared("CREATE DATABASE repro_bench")
                .await?;
            runs.push((
                label.to_owned(),
                server_url(&admin, "repro_bench"),
                Some((admin, conn)),
            ));
        }
    }
    println!(
        "{datasets} datasets x {per} files = {} raw files",
        datasets * per
    );
    for (label, url, admin) in runs {
        let timings = run(&label, &url, datasets, per).await?;
        println!("\n{label}");
        println!(
            "{:<42} {:>10} {:>9} {:>12} {:>14}",
            "operation", "rows", "seconds", "rows/s", "slowest batch"
        );
        for t in timings {
            println!(
                "{:<42} {:>10} {:>9.2} {:>12.0} {:>12.3} s",
                t.op,
                t.rows,
                t.secs,
                t.rows as f64 / t.secs,
                t.slowest_batch
            );
        }
        if let Some((_, conn)) = admin {
            conn.execute_unprepared("DROP DATABASE IF EXISTS repro_bench")
                .await?;
        }
    }
    println!("\npeak resident memory: {:.0} MiB", peak_rss_mib());
    Ok(())
}
