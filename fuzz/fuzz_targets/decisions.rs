//! Arbitrary histories of plans, outcomes and operator actions on one dataset: never a
//! panic, every plan applies to the view it came from, and no plan reserves a job that
//! exists or a file that has a live job.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_core::file::FileId;
use repro_core::job::{JobKey, JobSubject};
use repro_core::outcome::record;
use repro_core::plan::{Poll, plan, polls};
use repro_core::view::GroupNo;
use repro_core::{
    Change, DatasetName, DatasetView, MergedFile, Outcome, Phase, Policy, RawFile, TmbFile,
    operator,
};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = u64::from(n % 16) + 1;
    let name = DatasetName::new("fuzz").unwrap();
    let mut v = DatasetView::new(
        name,
        (1..=n).map(|i| RawFile::new(FileId(i), format!("f{i}"), i * 10)),
    );
    let policy = Policy {
        max_attempts: 2,
        merge_group_files: 3,
        ..Policy::default()
    };
    for chunk in rest.chunks(3) {
        let [op, a, b] = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let file = FileId(u64::from(a) % (n + 1));
        let job = JobKey {
            subject: if b & 1 == 0 {
                JobSubject::Reco(file)
            } else {
                JobSubject::Merge(GroupNo(u32::from(a % 8)))
            },
            attempt: u32::from(b >> 1) % 4,
        };
        let changes = match op % 12 {
            0 => plan(&v, &policy).changes,
            1 => operator::unlock(&v, None).unwrap_or_default(),
            2 => operator::lock(&v, None).unwrap_or_default(),
            3 => operator::retry(&v, None, Some("fuzz"), None).unwrap_or_default(),
            4 => operator::reset(
                &v,
                if a & 1 == 0 {
                    Phase::Prestage
                } else {
                    Phase::Reco
                },
                "fuzz",
            )
            .unwrap_or_default(),
            5 => record(&v, &Outcome::Staged { file }).unwrap_or_default(),
            6 => record(
                &v,
                &Outcome::StageFailed {
                    file,
                    reason: "x".into(),
                    class: repro_core::ErrorClass::Unknown,
                },
            )
            .unwrap_or_default(),
            7 => record(
                &v,
                &Outcome::Submitted {
                    job,
                    batch_id: "1".into(),
                },
            )
            .unwrap_or_default(),
            8 => record(
                &v,
                &Outcome::RecoDone {
                    job,
                    tmb: TmbFile {
                        path: "t".into(),
                        size: 1,
                    },
                },
            )
            .unwrap_or_default(),
            9 => record(
                &v,
                &Outcome::MergeDone {
                    job,
                    output: MergedFile {
                        name: "m".into(),
                        size: 1,
                    },
                },
            )
            .unwrap_or_default(),
            10 => record(
                &v,
                &if b & 2 == 0 {
                    Outcome::JobLost { job }
                } else {
                    Outcome::JobFailed {
                        job,
                        exit_code: Some(1),
                        reason: "x".into(),
                        class: repro_core::ErrorClass::Unknown,
                    }
                },
            )
            .unwrap_or_default(),
            _ => {
                // Answer every poll favourably.
                let mut out = Vec::new();
                for p in polls(&v) {
                    let o = match p {
                        Poll::Stage { file, .. } => Outcome::Staged { file },
                        Poll::Job { job, .. } => Outcome::JobLost { job },
                        Poll::Declaration { group, .. } => Outcome::Declared { group },
                        Poll::Deletion { file, .. } => Outcome::Deleted { file },
                    };
                    if let Ok(c) = record(&v, &o) {
                        out = c;
                        break;
                    }
                }
                out
            }
        };
        for c in &changes {
            if let Change::NewJob { key } = c {
                assert!(!v.jobs.contains_key(key), "reserved an existing job {key}");
                assert!(
                    v.live_job(key.subject).is_none(),
                    "{key} reserved beside a live job"
                );
            }
        }
        v.apply(&changes)
            .expect("changes computed from a view apply to it");
        assert_eq!(
            repro_core::Status::from_columns(v.status.columns()),
            Ok(v.status)
        );
        assert_eq!(v.files.len() as u64, n);
    }
});
