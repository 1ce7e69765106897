//! # repro-run
//!
//! The drivers of the `repro` lifecycle, as a library: the [`Backend`] trait through which
//! the outside world is reached, three backends (a seeded [`sim`](backend::sim), site
//! [`command`](backend::command)s, [`slurm`](backend::slurm)), the [`Driver`] that runs one of
//! the predecessor scripts' operations on a dataset (poll, record, plan, write, act, under a lease), the
//! [`Config`] file, the file-list parser, the status page as an axum router (`web::router`,
//! with the `web` feature) and the [`demo`] campaign. The `repro` binary is one user of this crate; a tool of its
//! own can drive the lifecycle with a built-in backend or its own in a few lines:
//!
//! ```no_run
//! # async fn demo() -> Result<(), repro_run::Error> {
//! use repro_core::DatasetName;
//! use repro_db::{NewFile, Register, Store};
//! use repro_run::backend::sim::SimBackend;
//! use repro_run::{Config, Driver, Op};
//!
//! let store = Store::open("sqlite://campaign.db?mode=rwc").await?;
//! store.migrate().await?;
//! let name = DatasetName::new("p17.wz")?;
//! let files = vec![NewFile { lfn: "raw_0001.dat".into(), size: 1 << 30 }];
//! store.register(&name, &files, &Register { unlock: true, ..Register::default() }, "me").await?;
//!
//! let config = Config::default();
//! let backend = SimBackend::new(config.backend.sim.clone(), 0.0);
//! let driver = Driver::new(&store, &backend).with_policy(config.policy());
//! let report = driver.run(Op::Tick, &name).await?;
//! println!("{}: {} action(s)", report.name, report.actions);
//! # Ok(()) }
//! ```
//!
//! Everything here goes through `repro-core`'s decisions and `repro-db`'s guarded writes:
//! nothing in this crate decides a lifecycle move or writes a row by itself.

pub mod attention;
pub mod backend;
pub mod cache;
mod cancel;
pub mod config;
pub mod demo;
pub mod driver;
mod error;
pub mod filelist;
pub mod json;
pub mod ledger;
pub mod simulate;
#[cfg(feature = "web")]
pub mod web;

/// FNV-1a's starting value: [`fnv1a`] of nothing.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds `bytes` into the FNV-1a hash `h` (start from [`FNV_OFFSET`]). Unlike std's
/// hasher it is the same in every run, build and process: what it hashes is kept in the
/// database (a settled dataset's token) or compared between ticks (Slurm's queue).
pub(crate) fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

pub use backend::{Backend, BackendError};
pub use cache::ViewCache;
pub use cancel::Cancelled;
pub use config::{BackendKind, Config, ConfigError};
pub use driver::{
    Driver, Op, Preview, Report, Run, Scope, preview, preview_dataset, preview_within, run_order,
    targets, targets_weighted,
};
pub use error::{Error, ErrorKind, Result};

// What the API above speaks in, so that a tool needs this crate alone: the most used
// types here, and the lifecycle (repro-core) and the store (repro-db) whole.
pub use repro_core as lifecycle;
pub use repro_core::{
    Action, CleanupWord, DatasetName, ErrorClass, FileId, JobKey, MergedFile, Outcome, Phase,
    Policy, Poll, SampleName, TmbFile,
};
pub use repro_db as db;
pub use repro_db::{DbError, NewFile, Register, Store};

/// `w` if it is one of the predecessor scripts' state words (`LOCK`, `NOT DONE`,
/// `MERGED_DBUP`, ...), else a message naming it and every word there is.
pub fn check_state_word(w: &str) -> std::result::Result<(), String> {
    let words = repro_core::words::state_words();
    if words.contains(&w) {
        Ok(())
    } else {
        Err(format!(
            "{w:?} is not a state word; expected one of {}",
            words.join(", ")
        ))
    }
}

/// The backend a configuration chooses for the datasets of `store`, at `now_s` (seconds
/// since the epoch; the sim backend's clock). A simulated world with a capacity per site
/// is told each dataset's site.
pub async fn backend_for(
    config: &Config,
    store: &repro_db::Store,
    now_s: f64,
) -> Result<Box<dyn Backend>> {
    let sim = &config.backend.sim;
    if config.backend.kind == BackendKind::Sim && sim.has_capacity() {
        let sites = store.dataset_sites().await?;
        return Ok(Box::new(
            backend::sim::SimBackend::new(sim.clone(), now_s).with_sites(sites),
        ));
    }
    Ok(backend_from_config(config, now_s))
}

/// The backend a configuration chooses, started at `now_s` (seconds since the epoch; the
/// sim backend's clock). A simulated world with a capacity per site needs
/// [`backend_for`], which knows the datasets' sites.
pub fn backend_from_config(config: &Config, now_s: f64) -> Box<dyn Backend> {
    match config.backend.kind {
        BackendKind::Sim => Box::new(backend::sim::SimBackend::new(
            config.backend.sim.clone(),
            now_s,
        )),
        BackendKind::Command => Box::new(backend::command::CommandBackend::new(
            config.backend.command.clone(),
        )),
        BackendKind::Slurm => Box::new(backend::slurm::SlurmBackend::new(
            config.backend.slurm.clone(),
            config.backend.command.clone(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function_and_folds_in_pieces() {
        assert_eq!(fnv1a(FNV_OFFSET, *b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, *b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, *b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(
            fnv1a(fnv1a(FNV_OFFSET, *b"foo"), *b"bar"),
            fnv1a(FNV_OFFSET, *b"foobar")
        );
    }
}
