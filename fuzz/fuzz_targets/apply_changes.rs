//! Arbitrary sequences of changes into the in-memory writer, the same rules storage
//! enforces: planned batches, typed dataset moves from any status, and file, group and job
//! moves picked from the bytes. A refused batch leaves the view exactly as it was; an
//! accepted one leaves a status that survives storage and files whose counts add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_core::file::FileId;
use repro_core::{DatasetName, DatasetView, RawFile, Status};
use repro_fuzz::change;

fuzz_target!(|data: &[u8]| {
    let name = DatasetName::new("fuzz").unwrap();
    let files = (0..5).map(|i| RawFile::new(FileId(i), format!("raw{i}"), 10));
    let mut view = DatasetView::new(name, files);
    view.status.lock = repro_core::LockWord::Unlock;
    for b in data.chunks_exact(6) {
        let changes = change(&view, b);
        let before = view.clone();
        match view.apply(&changes) {
            Ok(()) => {
                assert_eq!(Status::from_columns(view.status.columns()), Ok(view.status));
                assert_eq!(view.files.len(), 5, "a file appeared or vanished");
                let t = view.tally();
                assert_eq!(t.files.values().sum::<u64>(), 5);
            }
            Err(e) => {
                assert_eq!(view, before, "a refused batch changed the view: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
