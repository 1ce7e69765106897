//! What the fuzz targets share: batches of changes picked from fuzz bytes, of every kind
//! the storage API takes (planned, typed dataset moves from any status, and file, group and
//! job moves that may or may not be legal).

use repro_core::file::{FileEvent, FileId, FileState};
use repro_core::job::{JobEvent, JobKey, JobState, JobSubject};
use repro_core::typed::AnyDataset;
use repro_core::view::{GroupEvent, GroupNo, GroupState};
use repro_core::{
    Change, DatasetState, DatasetView, Policy, RecoOutcome, StageKind, Status, Transition, plan,
};

/// The `b`th of `all`, wrapping.
pub fn pick<T: Copy>(all: &[T], b: u8) -> T {
    all[usize::from(b) % all.len()]
}

/// One batch of changes for `view`, picked by six bytes.
pub fn change(view: &DatasetView, b: &[u8]) -> Vec<Change> {
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
            retry: None,
        }],
        3 => vec![Change::Group {
            no: GroupNo(u32::from(b[1] % 3)),
            from: pick(GroupState::ALL, b[2]),
            attempts: u32::from(b[3] % 3),
            event: pick(GroupEvent::ALL, b[4]),
            to: pick(GroupState::ALL, b[5]),
            error: None,
            output: None,
            retry: None,
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
