//! A tool of its own: 50 raw files registered and driven to CLEANED by the library's driver
//! through a backend written here (every step succeeds; jobs finish by the next poll).
//! `cargo run -p repro-run --example own_backend [DB_URL]`
use repro_run::lifecycle::job::JobSubject::{Merge, Reco};
use repro_run::{Action, CleanupWord, DatasetName, JobKey, MergedFile, Outcome, Poll, TmbFile};
use repro_run::{Backend, BackendError, Driver, Error, NewFile, Op, Register, Store};

struct AtOnce;

impl Backend for AtOnce {
    fn perform(&self, _: &DatasetName, act: &[Action]) -> Result<Vec<Outcome>, BackendError> {
        Ok(act.iter().map(said).collect())
    }

    fn poll(&self, ds: &DatasetName, polls: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        let jobs = polls.iter().filter_map(|p| match p {
            Poll::Job { job, .. } => Some(finished(ds, *job)),
            _ => None,
        });
        Ok(jobs.collect())
    }
}

fn said(action: &Action) -> Outcome {
    match action {
        Action::Stage { file, .. } => Outcome::Staged { file: *file },
        Action::SubmitReco { job, .. } | Action::SubmitMerge { job, .. } => {
            let (job, batch_id) = (*job, format!("local.{job}"));
            Outcome::Submitted { job, batch_id }
        }
        Action::Declare { group, .. } => Outcome::Declared { group: *group },
        Action::Delete { file, .. } => Outcome::Deleted { file: *file },
    }
}

fn finished(ds: &DatasetName, job: JobKey) -> Outcome {
    match job.subject {
        Reco(f) => Outcome::RecoDone {
            job,
            tmb: TmbFile::new(format!("/tmb/{f}"), 7),
        },
        Merge(g) => Outcome::MergeDone {
            job,
            output: MergedFile::of(ds, g, 70),
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or("sqlite://own_backend.db?mode=rwc".into());
    let store = Store::open(&url).await?;
    store.migrate().await?;
    let name = DatasetName::new("own.backend")?;
    let files: Vec<_> = (0..50)
        .map(|i| NewFile::new(format!("raw_{i:02}"), 100))
        .collect();
    store
        .register(&name, &files, &Register::unlocked(), "example")
        .await?;
    for tick in 1..=10 {
        let report = Driver::new(&store, &AtOnce).run(Op::Tick, &name).await?;
        let now = store.summary(&name).await?.status.columns();
        println!(
            "tick {tick}: {} actions, {} outcomes; {now}",
            report.actions, report.outcomes
        );
        if now.cleanup == CleanupWord::Cleaned {
            return Ok(());
        }
    }
    Err(Error::Stalled(format!(
        "{name} did not reach CLEANED in 10 ticks"
    )))
}
