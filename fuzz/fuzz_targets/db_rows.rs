//! Arbitrary rows (as a corrupted or hand-edited database could hold them) through the row
//! converter, the one place rows become typed states: never a panic; a row that does not
//! fit is a `CorruptRow` naming its table and row; a row that converts keeps its values.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use repro_core::file::{FileId, FileState};
use repro_core::job::JobState;
use repro_core::outage::Outage;
use repro_core::view::{GroupNo, GroupState};
use repro_core::{CleanupWord, LockWord, MergeWord, PrestageWord, RecoWord};
use repro_db::DbError;
use repro_db::convert;
use repro_db::entity::{dataset_status, file_status, merge_group, mergejob_status, recojob_status};

/// A stored word: mostly one the schema knows, sometimes anything.
#[derive(Debug, Arbitrary)]
enum Word {
    Known(u8),
    Raw(String),
}

impl Word {
    fn pick(&self, known: &[String]) -> String {
        match self {
            Word::Known(i) => known[usize::from(*i) % known.len()].clone(),
            Word::Raw(s) => s.clone(),
        }
    }
}

fn words<T: ToString>(all: &[T]) -> Vec<String> {
    all.iter().map(ToString::to_string).collect()
}

#[derive(Debug, Arbitrary)]
struct Rows {
    id: i64,
    name: String,
    lock: Word,
    prestage: Word,
    reco: Word,
    merge: Word,
    cleanup: Word,
    file_state: Word,
    size: i64,
    attempts: i32,
    attempt_base: i32,
    tmb: Option<(String, i64)>,
    tmb_size_only: bool,
    merge_group: Option<i32>,
    group_no: i32,
    group_state: Word,
    n_files: i32,
    bytes: i64,
    merged: Option<(String, i64)>,
    job_state: Word,
    file_id: i64,
    attempt: i32,
    batch_id: Option<String>,
    exit_code: Option<i32>,
    error: Option<String>,
    group_id: i64,
    retry_at: Option<i64>,
    failing_since: Option<i64>,
}

fn refused(e: DbError, table: &str, id: i64) {
    match e {
        DbError::CorruptRow {
            table: t,
            id: i,
            ref why,
        } => {
            assert_eq!((t, i), (table, id));
            assert!(!why.is_empty());
            let msg = e.to_string();
            assert!(msg.contains(table), "{msg}");
        }
        other => panic!("a row was refused as {other:?}"),
    }
}

fuzz_target!(|r: Rows| {
    let at = chrono::NaiveDateTime::default();
    let d = dataset_status::Model {
        id: r.id,
        name: r.name.clone(),
        lock_state: r.lock.pick(&words(LockWord::ALL)),
        prestage_state: r.prestage.pick(&words(PrestageWord::ALL)),
        reco_state: r.reco.pick(&words(RecoWord::ALL)),
        merge_state: r.merge.pick(&words(MergeWord::ALL)),
        cleanup_state: r.cleanup.pick(&words(CleanupWord::ALL)),
        site: None,
        lease_owner: None,
        lease_until: None,
        created_at: at,
        updated_at: at,
        sample: Some(r.name.clone()),
        priority: 0,
        waiting: None,
        revision: 0,
        settled: None,
        accepted_lost: 0,
        outages: Some(r.name.clone()),
    };
    // Outages read from any text are refused naming the row, or are stored again as read.
    match convert::outages(&d) {
        Ok(read) => {
            let again = Outage::store(&read).map_or(Ok(Vec::new()), |t| Outage::parse_stored(&t));
            let again = again.expect("outages read are stored again");
            let key = |o: &Outage| (o.step, o.since, o.until, o.trips);
            assert_eq!(
                again.iter().map(key).collect::<Vec<_>>(),
                read.iter().map(key).collect::<Vec<_>>()
            );
        }
        Err(e) => refused(e, "dataset_status", d.id),
    }
    match convert::sample(&d) {
        Ok(s) => assert_eq!(s.map(|s| s.to_string()).as_ref(), d.sample.as_ref()),
        Err(e) => refused(e, "dataset_status", d.id),
    }
    match convert::dataset(&d) {
        Ok((name, status)) => {
            assert_eq!(name.as_str(), d.name);
            let c = status.columns();
            assert_eq!(
                [
                    c.lock.as_str(),
                    c.prestage.as_str(),
                    c.reco.as_str(),
                    c.merge.as_str(),
                    c.cleanup.as_str()
                ],
                [
                    &*d.lock_state,
                    &*d.prestage_state,
                    &*d.reco_state,
                    &*d.merge_state,
                    &*d.cleanup_state
                ]
            );
        }
        Err(e) => refused(e, "dataset_status", d.id),
    }

    let f = file_status::Model {
        id: r.id,
        dataset_id: 1,
        lfn: r.name.clone(),
        size: r.size,
        state: r.file_state.pick(&words(FileState::ALL)),
        attempts: r.attempts,
        attempt_base: r.attempt_base,
        last_error: r.error.clone(),
        tmb_path: r.tmb.as_ref().map(|t| t.0.clone()),
        tmb_size: r.tmb.as_ref().map(|t| t.1).or(r.tmb_size_only.then_some(1)),
        merge_group: r.merge_group,
        updated_at: at,
        retry_at: r.retry_at,
        failing_since: r.failing_since,
    };
    match convert::file(&(&f).into()) {
        Ok(file) => {
            assert_eq!(file.id, FileId(f.id as u64));
            assert_eq!(file.state.to_string(), f.state);
            assert_eq!(file.size as i64, f.size);
            assert!(file.attempt_base <= file.attempts);
            assert_eq!(
                file.tmb.as_ref().map(|t| (t.path.clone(), t.size as i64)),
                r.tmb
            );
            assert!(!file.state.has_tmb() || file.tmb.is_some());
            assert_eq!(
                file.group.map(|g| i64::from(g.0)),
                f.merge_group.map(i64::from)
            );
            assert_eq!(
                file.retry.map(|r| (r.at, r.since)),
                f.retry_at.zip(f.failing_since)
            );
            assert_eq!(f.retry_at.is_some(), f.failing_since.is_some());
        }
        Err(e) => refused(e, "file_status", f.id),
    }

    let g = merge_group::Model {
        id: r.id,
        dataset_id: 1,
        group_no: r.group_no,
        state: r.group_state.pick(&words(GroupState::ALL)),
        attempts: r.attempts,
        attempt_base: r.attempt_base,
        n_files: r.n_files,
        bytes: r.bytes,
        merged_file: r.merged.as_ref().map(|m| m.0.clone()),
        merged_size: r.merged.as_ref().map(|m| m.1),
        last_error: r.error.clone(),
        updated_at: at,
        retry_at: r.retry_at,
        failing_since: r.failing_since,
    };
    let mut members = BTreeMap::new();
    if let Ok(no) = u32::try_from(r.group_no) {
        let n = usize::try_from(r.n_files).unwrap_or(0).min(4);
        members.insert(GroupNo(no), (1..=n as u64).map(FileId).collect::<Vec<_>>());
    }
    match convert::group(&g, &members) {
        Ok(group) => {
            assert_eq!(i64::from(group.no.0), i64::from(g.group_no));
            assert_eq!(group.state.to_string(), g.state);
        }
        Err(e) => refused(e, "merge_group", g.id),
    }

    let job_state = r.job_state.pick(&words(JobState::ALL));
    let reco = recojob_status::Model {
        id: r.id,
        dataset_id: 1,
        file_id: r.file_id,
        attempt: r.attempt,
        name: r.name.clone(),
        batch_id: r.batch_id.clone(),
        state: job_state.clone(),
        exit_code: r.exit_code,
        error: r.error.clone(),
        script_path: None,
        log_path: None,
        created_at: at,
        submitted_at: None,
        finished_at: None,
        updated_at: at,
    };
    match convert::reco_job(&(&reco).into()) {
        Ok(job) => {
            assert_eq!(job.state.to_string(), reco.state);
            assert_eq!(i64::from(job.key.attempt), i64::from(reco.attempt));
            assert_eq!(job.batch_id, reco.batch_id);
        }
        Err(e) => refused(e, "recojob_status", reco.id),
    }
    let merge = mergejob_status::Model {
        id: r.id,
        dataset_id: 1,
        group_id: r.group_id,
        attempt: r.attempt,
        name: r.name,
        batch_id: r.batch_id,
        state: job_state,
        exit_code: r.exit_code,
        error: r.error,
        script_path: None,
        log_path: None,
        created_at: at,
        submitted_at: None,
        finished_at: None,
        updated_at: at,
    };
    let groups = BTreeMap::from([(1, GroupNo(1)), (2, GroupNo(2))]);
    match convert::merge_job(&(&merge).into(), &groups) {
        Ok(job) => assert_eq!(job.state.to_string(), merge.state),
        Err(e) => refused(e, "mergejob_status", merge.id),
    }
});
