//! Fills a database with a big campaign, for measuring the web page and the CLI at scale:
//! DATASETS datasets of FILES files each, spread over every phase.
//!
//! ```sh
//! cargo run --release -p repro-db --example seed_campaign -- sqlite:///tmp/big.db?mode=rwc 10000 100
//! ```

use repro_core::file::{FileEvent, TmbFile};
use repro_core::{Change, DatasetName, Policy, plan};
use repro_db::{NewFile, Register, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "sqlite://big.db?mode=rwc".into());
    let datasets: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let files: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    let store = Store::open(&url).await?;
    store.migrate().await?;
    let t = std::time::Instant::now();
    for d in 0..datasets {
        let name = DatasetName::new(format!("p17.sample{d:05}"))?;
        let list: Vec<NewFile> = (0..files)
            .map(|f| NewFile {
                lfn: format!("/store/{name}/raw_{f:04}.raw"),
                size: 1 << 30,
            })
            .collect();
        let site = ["prague", "fnal", "lyon"][d % 3];
        store
            .register(
                &name,
                &list,
                &Register {
                    unlock: d % 10 != 0,
                    site: Some(site.into()),
                    ..Register::default()
                },
                "seed",
            )
            .await?;
        // Every other dataset is moved into its prestage and reco phases, so the page has
        // every kind of row to show.
        if d % 2 == 0 && d % 10 != 0 {
            let view = store.load(&name).await?;
            let p = plan(&view, &Policy::default());
            store.apply(&name, &p.changes, "seed").await?;
            let view = store.load(&name).await?;
            let staged: Vec<Change> = view
                .files
                .values()
                .filter_map(|f| Change::file(f, FileEvent::StageDone))
                .collect();
            store.apply(&name, &staged, "seed").await?;
            let view = store.load(&name).await?;
            let p = plan(&view, &Policy::default());
            store.apply(&name, &p.changes, "seed").await?;
            let view = store.load(&name).await?;
            let done: Vec<Change> = view
                .files
                .values()
                .take(files / 2)
                .filter_map(|f| {
                    let tmb = TmbFile {
                        path: format!("/tmb/{}.tmb", f.id),
                        size: 1 << 20,
                    };
                    Some(Change::file(f, FileEvent::RecoDone)?.with_tmb(tmb))
                })
                .collect();
            store.apply(&name, &done, "seed").await?;
        }
        if d % 1000 == 999 {
            eprintln!("{} datasets in {:.0} s", d + 1, t.elapsed().as_secs_f64());
        }
    }
    println!(
        "{datasets} datasets x {files} files in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
