//! What the driver's integration tests share: a SQLite campaign of alike unlocked
//! datasets, and the sim without its cursor.

use std::path::Path;

use repro_core::{Action, DatasetName, Outcome, Poll};
use repro_db::{NewFile, Register, Store};
use repro_run::backend::sim::SimBackend;
use repro_run::{Backend, BackendError};

/// `datasets` unlocked datasets `PREFIX.ds0`, `PREFIX.ds1`, ... of `files` raw files each,
/// in a SQLite file in `dir`.
pub async fn campaign(
    dir: &Path,
    prefix: &str,
    datasets: u32,
    files: u32,
) -> (Store, Vec<DatasetName>) {
    let store = Store::open(&repro_run::demo::sqlite_url(&dir.join("s.db")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut names = Vec::new();
    for d in 0..datasets {
        let name = DatasetName::new(format!("{prefix}.ds{d}")).unwrap();
        let list: Vec<NewFile> = (0..files)
            .map(|f| NewFile::new(format!("/store/{name}/f{f:04}.raw"), 1_000 + u64::from(f)))
            .collect();
        let opts = Register {
            unlock: true,
            ..Register::default()
        };
        store.register(&name, &list, &opts, "t").await.unwrap();
        names.push(name);
    }
    (store, names)
}

/// The sim without its cursor: no dataset is ever left alone as settled, so every tick
/// looks at every dataset, as before cursors.
pub struct NoCursor(pub SimBackend);

impl Backend for NoCursor {
    fn perform(&self, d: &DatasetName, a: &[Action]) -> Result<Vec<Outcome>, BackendError> {
        self.0.perform(d, a)
    }

    fn poll(&self, d: &DatasetName, p: &[Poll]) -> Result<Vec<Outcome>, BackendError> {
        self.0.poll(d, p)
    }
}
