//! A campaign report, written as another tool would use the library: open the database
//! `repro` uses, refuse an outdated schema, and summarise every dataset with its progress.
//!
//! ```sh
//! cargo run -p repro-db --example campaign_report -- sqlite://repro.db
//! ```

use std::process::ExitCode;

use repro_core::FileState;
use repro_db::{ListFilter, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("REPRO_DATABASE_URL").ok())
        .unwrap_or_else(|| "sqlite://repro.db?mode=ro".into());
    match report(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("campaign_report: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn report(url: &str) -> Result<(), repro_db::DbError> {
    let store = Store::open(url).await?;
    store.check_schema().await?;
    let datasets = store.list(&ListFilter::default()).await?;
    let (mut files, mut done, mut failed) = (0, 0, 0);
    println!(
        "{:<30} {:<6} {:<9} {:<9} {:<11} {:<8} {:>8}",
        "NAME", "LOCK", "PRESTAGE", "RECO", "MERGE", "CLEANUP", "DONE"
    );
    for d in &datasets {
        let c = d.status.columns();
        let cleaned = d.files.get(FileState::Cleaned);
        files += d.files.total;
        done += cleaned;
        failed +=
            d.files.get(FileState::StageFailedForGood) + d.files.get(FileState::RecoFailedForGood);
        println!(
            "{:<30} {:<6} {:<9} {:<9} {:<11} {:<8} {:>3}/{:<4}",
            d.name, c.lock, c.prestage, c.reco, c.merge, c.cleanup, cleaned, d.files.total
        );
    }
    println!(
        "{} datasets, {files} raw files: {done} cleaned, {failed} failed for good",
        datasets.len()
    );
    Ok(())
}
