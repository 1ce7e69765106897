//! Arbitrary sequences of changes into the in-memory writer, the same rules storage
//! enforces: planned batches, typed dataset moves from any status, and file, group and job
//! moves picked from the bytes. A refused batch leaves the view exactly as it was; an
//! accepted one leaves a status that survives storage and files whose counts add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_core::file::{FileEvent, FileId, FileState};
use repro_core::job::{JobEvent, JobKey, JobState, JobSubject};
use repro_core::typed::AnyDataset;
use repro_core::view::{GroupEvent, GroupNo, GroupState};
use repro_core::{
    Change, DatasetName, DatasetState, DatasetView, Policy, RawFile, RecoOutcome, StageKind,
    Status, Transition, plan,
};

fn pick<T: Copy>(all: &[T], b: u8) -> T {
    all[usize::from(b) % all.len()]
}

fn change(view: &DatasetView, b: &[u8]) -> Vec<Change> {
    let id = FileId(u64::from(b[1] % 6));
    match b[0] % 6 {
        0 | 1 => plan(view, &Policy::default()).changes,
        2 => vec![Change::File {
            id,
            from: pick(FileState::ALL, b[2]),
            attempts: u32::from(b[3] % 3),
            event: pick(FileEvent::ALL, b[4]),
            to: pick(FileState::ALL, b[5]),
            error: None,
            tmb: None,
        }],
        3 => vec![Change::Group {
            no: GroupNo(u32::from(b[1] % 3)),
            from: pick(GroupState::ALL, b[2]),
            attempts: u32::from(b[3] % 3),
            event: pick(GroupEvent::ALL, b[4]),
            to: pick(GroupState::ALL, b[5]),
            error: None,
            output: None,
        }],
        4 => {
            let key = JobKey {
                subject: JobSubject::Reco(id),
                attempt: u32::from(b[3] % 3),
            };
            if b[2] % 2 == 0 {
                vec![Change::NewJob { key }]
            } else {
                vec![Change::Job {
                    key,
                    from: pick(JobState::ALL, b[4]),
                    event: pick(JobEvent::ALL, b[5]),
                    to: pick(JobState::ALL, b[2]),
                    batch_id: None,
                    exit_code: None,
                    error: None,
                }]
            }
        }
        _ => {
            let kind = pick(StageKind::ALL, b[2]);
            let state = DatasetState::at(kind, Some(RecoOutcome::Partial))
                .or_else(|| DatasetState::at(kind, None))
                .unwrap_or(view.status.state);
            let status = Status {
                lock: view.status.lock,
                state,
            };
            AnyDataset::recover(view.name.clone(), status)
                .take(pick(Transition::ALL, b[3]))
                .map(AnyDataset::into_changes)
                .unwrap_or_default()
        }
    }
}

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
