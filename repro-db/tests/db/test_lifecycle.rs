//! A whole lifecycle stored and reloaded at every step: what the database gives back is
//! exactly what the core's in-memory model holds after the same changes.

use repro_core::file::TmbFile;
use repro_core::job::JobSubject;
use repro_core::outcome::record;
use repro_core::plan::{Poll, plan, polls};
use repro_core::view::MergedFile;
use repro_core::{Action, DatasetName, DatasetView, Outcome, Policy, operator};
use repro_db::{NewFile, Register, Store};

use crate::support::on_every_backend;

/// What an always-successful outside world reports for an action.
pub fn succeed(action: &Action) -> Option<Outcome> {
    match action {
        Action::Stage { .. } => None,
        Action::SubmitReco { job, .. } | Action::SubmitMerge { job, .. } => {
            Some(Outcome::Submitted {
                job: *job,
                batch_id: format!("b{}", job.attempt),
            })
        }
        Action::Declare { group, .. } => Some(Outcome::Declared { group: *group }),
        Action::Delete { file, .. } => Some(Outcome::Deleted { file: *file }),
    }
}

/// What it reports for a poll.
pub fn answer(view: &DatasetView, poll: &Poll) -> Option<Outcome> {
    Some(match poll {
        Poll::Stage { file, .. } => Outcome::Staged { file: *file },
        Poll::Job { job, .. } => match job.subject {
            JobSubject::Reco(f) => Outcome::RecoDone {
                job: *job,
                tmb: TmbFile {
                    path: format!("/tmb/{f}.tmb"),
                    size: 10 + f.0,
                },
            },
            JobSubject::Merge(g) => Outcome::MergeDone {
                job: *job,
                output: MergedFile {
                    name: MergedFile::name_for(&view.name, g),
                    size: 1000,
                },
            },
        },
        Poll::Declaration { group, .. } => Outcome::Declared { group: *group },
        Poll::Deletion { file, .. } => Outcome::Deleted { file: *file },
    })
}

/// Writes `changes` to both the store and the model, then checks the reload equals the model.
async fn step(store: &Store, model: &mut DatasetView, changes: &[repro_core::Change], what: &str) {
    store
        .apply(&model.name, changes, "test")
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    model
        .apply(changes)
        .unwrap_or_else(|e| panic!("{what} in memory: {e}"));
    let loaded = store.load(&model.name).await.unwrap();
    assert_eq!(
        &loaded, model,
        "reloaded view differs from the model after {what}"
    );
    assert_eq!(
        store.polls_due(&model.name).await.unwrap(),
        polls(model).len() as u64,
        "polls counted by the database after {what}"
    );
    // What the budgets count, from the counts the writes keep, is what the model holds
    // (the dataset is the only one at its site).
    let site = store.site_of(&model.name).await.unwrap();
    assert_eq!(
        store.usage(site.as_deref()).await.unwrap(),
        repro_core::Usage::of(model),
        "usage counted by the database after {what}"
    );
    assert_eq!(
        store.count_drift().await.unwrap(),
        Vec::<String>::new(),
        "the counts tables against the rows and the history after {what}"
    );
}

/// Drives one dataset to CLEANED through the store, checking the reload at every step.
pub async fn drive_to_cleaned(store: &Store, name: &DatasetName, policy: &Policy) -> DatasetView {
    let mut model = store.load(name).await.unwrap();
    for round in 0..50 {
        let p = plan(&model, policy);
        step(store, &mut model, &p.changes, &format!("plan {round}")).await;
        for a in &p.actions {
            if let Some(o) = succeed(a) {
                let c = record(&model, &o).unwrap();
                step(store, &mut model, &c, &format!("{o:?}")).await;
            }
        }
        for poll in polls(&model) {
            if let Some(o) = answer(&model, &poll) {
                let c = record(&model, &o).unwrap();
                step(store, &mut model, &c, &format!("{o:?}")).await;
            }
        }
        if repro_core::plan::at_rest(model.status.state) {
            break;
        }
    }
    model
}

fn files(n: usize) -> Vec<NewFile> {
    (1..=n)
        .map(|i| NewFile {
            lfn: format!("raw_{i:05}.dat"),
            size: 1000 + i as u64,
        })
        .collect()
}

on_every_backend! {
    async fn merge_groups_answered_together_move_in_one_batch_each_with_its_own_file(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("groups").unwrap();
        let unlocked = Register { unlock: true, ..Register::default() };
        store.register(&name, &files(8), &unlocked, "t").await.unwrap();
        let policy = Policy { merge_group_files: 2, ..Policy::default() };
        let mut model = store.load(&name).await.unwrap();
        let mut merges_together = None;
        for round in 0..50 {
            let p = plan(&model, &policy);
            step(&store, &mut model, &p.changes, &format!("plan {round}")).await;
            for a in &p.actions {
                if let Some(o) = succeed(a) {
                    let c = record(&model, &o).unwrap();
                    step(&store, &mut model, &c, &format!("{o:?}")).await;
                }
            }
            // Every answer of the round in one batch, ordered, as the driver records them.
            let mut after = model.clone();
            let mut batch = Vec::new();
            for poll in polls(&model) {
                if let Some(o) = answer(&model, &poll) {
                    let c = record(&after, &o).unwrap();
                    after.apply(&c).unwrap();
                    batch.extend(c);
                }
            }
            repro_core::Change::batch_order(&mut batch);
            let merged = batch
                .iter()
                .filter(|c| matches!(c, repro_core::Change::Group { output: Some(_), .. }))
                .count();
            step(&store, &mut model, &batch, &format!("answers {round}")).await;
            if merged > 1 && merges_together.is_none() {
                merges_together = Some(batch);
            }
            if repro_core::plan::at_rest(model.status.state) {
                break;
            }
        }
        assert_eq!(model.status.columns().cleanup.to_string(), "CLEANED");
        assert_eq!(model.groups.len(), 4);
        for (no, g) in &model.groups {
            assert_eq!(g.output.as_ref().unwrap().name, MergedFile::name_for(&name, *no));
        }
        // The same answers again: refused at the first group, nothing written.
        let batch = merges_together.expect("the four merge jobs were answered in one round");
        let before = store.load(&name).await.unwrap();
        let err = store.apply(&name, &batch, "again").await.unwrap_err();
        assert!(matches!(err, repro_db::DbError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("merge group 1 of groups"), "{err}");
        assert_eq!(store.load(&name).await.unwrap(), before);
    }

    async fn a_whole_lifecycle_survives_a_reload_at_every_step(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("life.cycle").unwrap();
        store.register(&name, &files(7), &Register::default(), "alice").await.unwrap();
        let mut model = store.load(&name).await.unwrap();
        assert_eq!(model.status.columns().lock.to_string(), "LOCK");
        // Locked: nothing is due.
        assert!(plan(&model, &Policy::default()).is_empty());
        let unlock = operator::unlock(&model, Some("go")).unwrap();
        step(&store, &mut model, &unlock, "unlock").await;

        let policy = Policy { merge_group_files: 3, ..Policy::default() };
        let end = drive_to_cleaned(&store, &name, &policy).await;
        let c = end.status.columns();
        assert_eq!(c.to_string(), "lock=UNLOCK prestage=PRESTAGE reco=COMPLETED merge=MERGED_DBUP cleanup=CLEANED");
        assert_eq!(end.groups.len(), 3);

        let summary = store.summary(&name).await.unwrap();
        assert_eq!(summary.files.total, 7);
        assert_eq!(summary.files.get(repro_core::FileState::Cleaned), 7);

        // The history tells the story: who, from, to, why.
        let h = store.history(&name, Some("dataset")).await.unwrap();
        let vias: Vec<&str> = h.iter().map(|e| e.via.as_str()).collect();
        assert_eq!(vias, ["register", "unlock", "start_prestage", "finish_prestage", "start_reco", "complete_reco", "start_merge", "finish_merge", "declare_merged", "clean"]);
        assert_eq!(h[0].actor, "alice");
        assert_eq!(h[1].reason.as_deref(), Some("go"));
        assert!(h[2].from.contains("prestage=NOT DONE") && h[2].to.contains("prestage=RUNNING"));
        let file_moves = store.history(&name, Some("file")).await.unwrap();
        // registered -> staging -> staged -> reco_submitted -> reconstructed -> merged -> deleting -> cleaned
        assert_eq!(file_moves.len(), 7 * 7, "every file moved seven times");
        // Each file's own story, in order, although its moves were written in bulk.
        let mut per_file: std::collections::BTreeMap<i64, Vec<&str>> = Default::default();
        for e in &file_moves {
            per_file.entry(e.entity_id).or_default().push(e.to.as_str());
        }
        assert_eq!(per_file.len(), 7);
        for (id, tos) in &per_file {
            assert_eq!(tos, &["staging", "staged", "reco_submitted", "reconstructed", "merged", "deleting", "cleaned"], "file {id}");
        }
        // ... in far fewer rows than moves: a bulk move is one row naming its files.
        use sea_orm::ConnectionTrait;
        let rows = store
            .connection()
            .query_all_raw(sea_orm::Statement::from_string(
                store.backend(),
                "SELECT t.n FROM transitions t JOIN dataset_status d ON d.id = t.dataset_id \
                 WHERE d.name = 'life.cycle' AND t.entity = 'file'",
            ))
            .await
            .unwrap();
        let ns: Vec<i64> = rows.iter().map(|r| r.try_get("", "n").unwrap()).collect();
        assert_eq!(ns.iter().sum::<i64>(), 7 * 7);
        // (This test records each file's answers one at a time; moves planned together,
        // such as staging all seven, are one row.)
        assert!(ns.len() < 7 * 7, "{} rows for 49 moves: {ns:?}", ns.len());
        assert!(ns.contains(&7), "the seven files staged in one row: {ns:?}");
        // Every job's life is there too, from its reservation.
        for (entity, jobs) in [("reco_job", 7), ("merge_job", 3)] {
            let h = store.history(&name, Some(entity)).await.unwrap();
            let created: Vec<_> = h.iter().filter(|e| e.from == "-").collect();
            assert_eq!(created.len(), jobs, "{entity}: {h:?}");
            // A reservation names its job; a submission records its batch id; a move
            // without anything to say records nothing.
            let kind = if entity == "reco_job" { ".reco." } else { ".merge." };
            assert!(created.iter().all(|e| e.reason.as_deref().is_some_and(|r| r.starts_with("life") && r.contains(kind))), "{h:?}");
            let submits: Vec<_> = h.iter().filter(|e| e.via == "submit").collect();
            assert_eq!(submits.len(), jobs, "{h:?}");
            assert!(submits.iter().all(|e| e.reason.as_deref().is_some_and(|r| !r.is_empty() && !r.contains(kind))), "{h:?}");
            assert!(h.iter().filter(|e| e.via == "finish").all(|e| e.reason.is_none()), "{h:?}");
        }
    }

    async fn operator_retry_and_reset_are_logged_with_their_reason(db: &TestDb) {
        let store = db.store().await;
        let name = DatasetName::new("ops").unwrap();
        store.register(&name, &files(2), &Register { unlock: true, site: Some("prague".into()), ..Register::default() }, "alice").await.unwrap();
        let policy = Policy { max_attempts: 1, ..Policy::default() };
        let mut model = store.load(&name).await.unwrap();
        // Both stage requests fail for good: prestage FAILED.
        for _ in 0..4 {
            let p = plan(&model, &policy);
            step(&store, &mut model, &p.changes, "plan").await;
            for poll in polls(&model) {
                if let Poll::Stage { file, .. } = poll {
                    let c = record(&model, &Outcome::StageFailed { file, reason: "tape robot down".into(), class: repro_core::ErrorClass::Unknown }).unwrap();
                    step(&store, &mut model, &c, "stage failed").await;
                }
            }
        }
        assert_eq!(model.status.columns().prestage.to_string(), "FAILED");
        let f = model.files.values().next().unwrap();
        assert_eq!(f.last_error.as_deref(), Some("tape robot down"));
        assert!(f.state.failed_for_good());

        let retry = operator::retry(&model, None, Some("robot fixed"), None).unwrap();
        step(&store, &mut model, &retry, "retry").await;
        assert_eq!(model.status.columns().prestage.to_string(), "NOT DONE");
        let end = drive_to_cleaned(&store, &name, &policy).await;
        assert_eq!(end.status.columns().cleanup.to_string(), "CLEANED");
        let h = store.history(&name, Some("dataset")).await.unwrap();
        let retry_row = h.iter().find(|e| e.via == "retry").unwrap();
        assert_eq!(retry_row.reason.as_deref(), Some("robot fixed"));
        assert!(retry_row.from.contains("prestage=FAILED"));
        // Each file's failure is in its own history with the reason the world gave.
        let fh = store.history(&name, Some("file")).await.unwrap();
        let failed: Vec<_> = fh.iter().filter(|e| e.via == "stage_fail").collect();
        assert_eq!(failed.len(), 2, "{fh:?}");
        assert!(failed.iter().all(|e| e.reason.as_deref() == Some("tape robot down")), "{failed:?}");
    }

    async fn a_history_row_for_one_job_keeps_its_reason_in_the_reason_column(db: &TestDb) {
        // ARCHITECTURE.md: `reasons` lists each one's reason only for a row standing for
        // several moves whose reasons differ. A row of one move (one file, one reco job,
        // one merge job) keeps its reason where a reader of the table looks first.
        let store = db.store().await;
        let name = DatasetName::new("single").unwrap();
        store.register(&name, &files(1), &Register { unlock: true, ..Register::default() }, "t").await.unwrap();
        let end = drive_to_cleaned(&store, &name, &Policy::default()).await;
        assert_eq!(end.status.columns().cleanup.to_string(), "CLEANED");
        use sea_orm::ConnectionTrait;
        let rows = store
            .connection()
            .query_all_raw(sea_orm::Statement::from_string(
                store.backend(),
                "SELECT t.entity, t.n, t.reason, t.reasons FROM transitions t \
                 JOIN dataset_status d ON d.id = t.dataset_id \
                 WHERE d.name = 'single' AND t.via = 'reserve' ORDER BY t.entity",
            ))
            .await
            .unwrap();
        let got: Vec<(String, i64, Option<String>, Option<String>)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get("", "entity").unwrap(),
                    r.try_get("", "n").unwrap(),
                    r.try_get("", "reason").unwrap(),
                    r.try_get("", "reasons").unwrap(),
                )
            })
            .collect();
        let job = |kind: &str| end.jobs.values().map(|j| j.key.name(&name)).find(|n| n.contains(kind)).unwrap();
        assert_eq!(
            got,
            [
                ("merge_job".to_string(), 1, Some(job(".merge.")), None),
                ("reco_job".to_string(), 1, Some(job(".reco.")), None),
            ]
        );
    }
}

on_every_backend! {
    async fn a_bulk_move_of_thousands_of_jobs_keeps_each_ones_reason(db: &TestDb) {
        // 3,000 reservations in one write, each with its job's name (about 80 characters)
        // as its reason: one history row of some 250 KB, past MariaDB's TEXT.
        let store = db.store().await;
        let name = DatasetName::new(format!("bulk.{}", "long_dataset_name_".repeat(3))).unwrap();
        store.register(&name, &files(3_000), &Register { unlock: true, ..Register::default() }, "t").await.unwrap();
        let mut model = store.load(&name).await.unwrap();
        let policy = Policy::default();
        let all_at_once = |model: &mut DatasetView, outcomes: Vec<Outcome>| {
            let mut changes = Vec::new();
            for o in outcomes {
                let c = record(model, &o).unwrap();
                model.apply(&c).unwrap();
                changes.extend(c);
            }
            changes
        };
        let stage = plan(&model, &policy);
        store.apply(&name, &stage.changes, "t").await.unwrap();
        model.apply(&stage.changes).unwrap();
        let staged: Vec<Outcome> = polls(&model).iter().filter_map(|p| answer(&model, p)).collect();
        assert_eq!(staged.len(), 3_000);
        let changes = all_at_once(&mut model, staged);
        store.apply(&name, &changes, "t").await.unwrap();
        let reco = plan(&model, &policy);
        store.apply(&name, &reco.changes, "t").await.unwrap();
        model.apply(&reco.changes).unwrap();
        assert_eq!(store.load(&name).await.unwrap(), model);
        let h = store.history(&name, Some("reco_job")).await.unwrap();
        let reserved: Vec<_> = h.iter().filter(|e| e.via == "reserve").collect();
        assert_eq!(reserved.len(), 3_000);
        let names: std::collections::BTreeSet<String> = model
            .jobs
            .values()
            .map(|j| j.key.name(&name))
            .collect();
        let reasons: std::collections::BTreeSet<String> =
            reserved.iter().map(|e| e.reason.clone().unwrap()).collect();
        assert_eq!(reasons, names, "each reservation names its own job");
        assert_eq!(store.count_drift().await.unwrap(), Vec::<String>::new());
        use sea_orm::ConnectionTrait;
        let lists = store
            .connection()
            .query_all_raw(sea_orm::Statement::from_string(
                store.backend(),
                "SELECT reasons FROM transitions WHERE reasons IS NOT NULL",
            ))
            .await
            .unwrap();
        let longest = lists.iter().map(|r| r.try_get::<String>("", "reasons").unwrap().len()).max().unwrap_or(0);
        assert!(longest > 200_000, "the reasons were written in one row of {longest} bytes");
    }
}

on_every_backend! {
    async fn job_totals_count_every_attempt_of_every_dataset(db: &TestDb) {
        // Two datasets driven to rest, the first attempt of every other reco job failing:
        // the database's totals are what the views hold, retries included.
        let store = db.store().await;
        let policy = Policy::default();
        let mut expected = repro_db::JobTotals::default();
        for (n, k) in [("totals.a", 3), ("totals.b", 6)] {
            let name = DatasetName::new(n).unwrap();
            store.register(&name, &files(k), &Register { unlock: true, ..Register::default() }, "t").await.unwrap();
            let mut model = store.load(&name).await.unwrap();
            for _ in 0..50 {
                let p = plan(&model, &policy);
                step(&store, &mut model, &p.changes, "plan").await;
                for a in &p.actions {
                    if let Some(o) = succeed(a) {
                        let c = record(&model, &o).unwrap();
                        step(&store, &mut model, &c, "act").await;
                    }
                }
                for poll in polls(&model) {
                    let o = match &poll {
                        Poll::Job { job, .. } if job.attempt == 1 && matches!(job.subject, JobSubject::Reco(f) if f.0 % 2 == 0) => {
                            Outcome::JobFailed { job: *job, exit_code: Some(1), reason: "segfault".into(), class: repro_core::ErrorClass::Unknown }
                        }
                        _ => answer(&model, &poll).unwrap(),
                    };
                    let c = record(&model, &o).unwrap();
                    step(&store, &mut model, &c, "poll").await;
                }
                if repro_core::plan::at_rest(model.status.state) {
                    break;
                }
            }
            assert_eq!(model.status.columns().cleanup.to_string(), "CLEANED");
            for j in model.jobs.values() {
                match j.key.subject {
                    JobSubject::Reco(_) => expected.reco += 1,
                    JobSubject::Merge(_) => expected.merge += 1,
                }
                expected.retries += u64::from(j.key.attempt > 1);
            }
        }
        assert!(expected.retries > 0 && expected.merge > 0, "{expected:?}");
        assert_eq!(store.job_totals().await.unwrap(), expected);
    }
}
