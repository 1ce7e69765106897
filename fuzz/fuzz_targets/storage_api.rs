//! Arbitrary sequences of changes through the public storage API, on SQLite in memory:
//! `Store::apply` accepts exactly the batches the in-memory writer accepts and then holds
//! the same dataset; a refused batch is `Illegal` or a `Conflict` and leaves the rows and
//! the history exactly as they were; the dataset always loads.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use repro_core::DatasetName;
use repro_db::{DbError, NewFile, Register, Store};
use repro_fuzz::change;
use tokio::runtime::Runtime;

fn world() -> &'static (Runtime, Store) {
    static WORLD: OnceLock<(Runtime, Store)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = rt.block_on(Store::open_memory()).unwrap();
        rt.block_on(store.migrate()).unwrap();
        (rt, store)
    })
}

fuzz_target!(|data: &[u8]| {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (rt, store) = world();
    let name = DatasetName::new(format!("fuzz{}", NEXT.fetch_add(1, Ordering::Relaxed))).unwrap();
    rt.block_on(async {
        let files: Vec<NewFile> = (0..5)
            .map(|i| NewFile::new(format!("raw{i}"), 10))
            .collect();
        store
            .register(&name, &files, &Register::unlocked(), "fuzz")
            .await
            .unwrap();
        let history = async || store.history(&name, None).await.unwrap().len();
        for b in data.chunks_exact(6).take(24) {
            let before = store
                .load(&name)
                .await
                .expect("a stored dataset always loads");
            let entries = history().await;
            let changes = change(&before, b);
            if changes.is_empty() {
                continue;
            }
            let mut model = before.clone();
            let in_memory = model.apply(&changes);
            let stored = store.apply(&name, &changes, "fuzz").await;
            let after = store
                .load(&name)
                .await
                .expect("a stored dataset always loads");
            match stored {
                Ok(()) => {
                    assert!(
                        in_memory.is_ok(),
                        "the store took what memory refused: {changes:?}"
                    );
                    assert_eq!(after, model, "store and memory differ after {changes:?}");
                }
                Err(e) => {
                    assert!(
                        e.is_conflict() || matches!(e, DbError::Illegal(_)),
                        "refused for another reason: {e}"
                    );
                    assert!(
                        in_memory.is_err() || e.is_conflict(),
                        "memory took what the store refused ({e}): {changes:?}"
                    );
                    assert_eq!(after, before, "a refused apply wrote ({e})");
                    assert_eq!(history().await, entries, "a refused apply left history");
                }
            }
        }
        store.delete(&name).await.unwrap();
    });
});
