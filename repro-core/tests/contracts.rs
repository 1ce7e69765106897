//! The small contracts the planner, the guards and the operator actions are built on, one
//! by one: what each closing transition requires (each requirement on its own), how attempt
//! counts and bases move, what a retry re-arms, how merge groups are formed and numbered,
//! and the words the core prints. Mutation testing (`cargo mutants`, see docs/testing.md)
//! found each of these unpinned by the broader suites.

use repro_core::file::{FileEvent, FileId, FileState, TmbFile};
use repro_core::group::{GroupEvent, GroupNo, GroupState, MergeGroup};
use repro_core::guard::{Tally, admits, needs_tally};
use repro_core::job::{JobKey, JobState, JobSubject};
use repro_core::retry::Due;
use repro_core::typed::Typed;
use repro_core::view::Job;
use repro_core::{
    Action, AnyDataset, Change, DatasetName, DatasetState, DatasetView, LockWord, Phase, Plan,
    Policy, Poll, RawFile, RecoOutcome, StageKind, Status, Transition, operator, plan, polls,
};

fn name() -> DatasetName {
    DatasetName::new("contracts").unwrap()
}

/// A dataset at `kind`, unlocked, with one file per entry: (state, attempts, attempt_base).
fn at(kind: StageKind, files: &[(FileState, u32, u32)]) -> DatasetView {
    let raw = files.iter().enumerate().map(|(i, (s, a, b))| {
        let mut f = RawFile::new(FileId(i as u64 + 1), format!("raw{i}"), 10);
        f.state = *s;
        f.attempts = *a;
        f.attempt_base = *b;
        if s.has_tmb() {
            f.tmb = Some(TmbFile::new(format!("tmb{i}"), 5 + i as u64));
        }
        f
    });
    let mut v = DatasetView::new(name(), raw);
    v.status = Status {
        lock: LockWord::Unlock,
        state: DatasetState::at(kind, Some(RecoOutcome::Completed)).unwrap(),
    };
    v
}

fn tally(files: &[(FileState, u64)], groups: &[(GroupState, u64)], ungrouped: u64) -> Tally {
    Tally {
        files: files.iter().copied().collect(),
        groups: groups.iter().copied().collect(),
        ungrouped,
    }
}

/// Puts a job of `key` at `state` into `v`.
fn insert_job(v: &mut DatasetView, key: JobKey, state: JobState, batch_id: Option<&str>) {
    v.jobs.insert(
        key,
        Job {
            key,
            state,
            batch_id: batch_id.map(str::to_owned),
            exit_code: None,
            error: None,
        },
    );
}

#[test]
fn each_requirement_of_a_closing_transition_refuses_on_its_own() {
    use FileState as F;
    use GroupState as G;
    use StageKind as K;
    use Transition as T;
    // (from, via, a tally failing exactly one requirement, the requirement it names)
    let cases = [
        (
            K::RecoRunning,
            T::PartialReco,
            tally(
                &[
                    (F::Reconstructed, 3),
                    (F::RecoFailedForGood, 1),
                    (F::RecoSubmitted, 1),
                ],
                &[],
                0,
            ),
            "every raw file reconstructed or failed for good",
        ),
        (
            K::RecoRunning,
            T::FailReco,
            tally(&[(F::RecoFailedForGood, 2), (F::RecoSubmitted, 1)], &[], 0),
            "every raw file failed for good",
        ),
        (
            K::MergeRunning,
            T::FailMerge,
            tally(&[], &[(G::Merging, 1), (G::FailedForGood, 1)], 0),
            "no merge group still merging",
        ),
        (
            K::MergeDone,
            T::FailMerge,
            tally(&[], &[(G::Declaring, 1), (G::Merged, 1)], 0),
            "no declaration under way",
        ),
        (
            K::MergeDone,
            T::DeclareMerged,
            tally(&[], &[(G::Declared, 2)], 1),
            "every merged file declared",
        ),
        (
            K::CleanupNotDone,
            T::FailCleanup,
            tally(&[(F::Deleting, 1), (F::Merged, 1)], &[], 0),
            "no deletion under way",
        ),
        (
            K::CleanupNotDone,
            T::Clean,
            tally(&[(F::Cleaned, 2), (F::Deleting, 1)], &[], 0),
            "every intermediate file deleted",
        ),
        (
            K::MergeRunning,
            T::FinishMerge,
            tally(&[], &[(G::Merged, 1)], 1),
            "every TMB file in a merge group",
        ),
        (
            K::Cleaned,
            T::Recover,
            tally(&[(F::Cleaned, 2)], &[], 0),
            "at least one raw file failed for good",
        ),
    ];
    for (from, via, t, requirement) in cases {
        let err = admits(from, via, &t).expect_err(requirement);
        assert_eq!(err.requirement, requirement, "{via} from {from} on {t:?}");
        assert_eq!(err.to_string(), format!("{via} requires {requirement}"));
    }
}

#[test]
fn only_closing_transitions_need_the_counts() {
    use Transition as T;
    for t in [
        T::Lock,
        T::Unlock,
        T::StartPrestage,
        T::StartReco,
        T::StartMerge,
        T::Retry,
    ] {
        assert!(!needs_tally(t), "{t}");
    }
    for t in [
        T::FinishPrestage,
        T::CompleteReco,
        T::FinishMerge,
        T::DeclareMerged,
        T::Clean,
    ] {
        assert!(needs_tally(t), "{t}");
    }
}

#[test]
fn attempt_bases_move_only_where_a_step_starts_afresh() {
    // (event, attempts before, base before) -> base after
    for (e, before, base, after) in [
        (FileEvent::Rearm, 5, 2, 5),
        (FileEvent::StageDone, 5, 2, 0),
        (FileEvent::RecoDone, 5, 2, 0),
        (FileEvent::Merge, 5, 2, 0),
        (FileEvent::StageFail, 5, 2, 2),
        (FileEvent::RequestStage, 5, 3, 3),
    ] {
        assert_eq!(e.base_after(before, base), after, "{e}");
    }
    assert_eq!(FileEvent::Rearm.new_base(4), Some(4));
    assert_eq!(FileEvent::StageDone.new_base(4), Some(0));
    assert_eq!(FileEvent::GiveUp.new_base(4), None);
    for (e, before, base, after) in [
        (GroupEvent::Rearm, 3, 1, 3),
        (GroupEvent::Finish, 3, 1, 0),
        (GroupEvent::JobFail, 3, 2, 2),
    ] {
        assert_eq!(e.base_after(before, base), after, "{e}");
    }
    assert_eq!(GroupEvent::Rearm.new_base(3), Some(3));
    assert_eq!(GroupEvent::Finish.new_base(3), Some(0));
    assert_eq!(GroupEvent::JobFail.new_base(3), None);
}

#[test]
fn a_group_may_try_while_its_attempts_since_the_last_rearm_are_under_the_cap() {
    let policy = Policy {
        max_attempts: 2,
        ..Policy::default()
    };
    let mut g = MergeGroup::new(GroupNo(1), vec![FileId(1)], 5);
    g.attempts = 1;
    assert_eq!(policy.due(Phase::Merge, g.tried(), None, 0), Due::Now);
    g.attempts = 2;
    let due = policy.due(Phase::Merge, g.tried(), None, 0);
    assert_eq!(due, Due::GiveUp, "the cap is reached");
    g.attempt_base = 1;
    let due = policy.due(Phase::Merge, g.tried(), None, 0);
    assert_eq!(due, Due::Now, "attempts before the re-arm do not count");
}

fn rearmed_files(changes: &[Change]) -> Vec<u64> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::File {
                id,
                event: FileEvent::Rearm,
                ..
            } => Some(id.0),
            _ => None,
        })
        .collect()
}

#[test]
fn retry_rearms_what_failed_for_good_and_what_is_between_attempts_and_nothing_else() {
    use FileState as F;
    let v = at(
        StageKind::PrestageFailed,
        &[
            (F::StageFailedForGood, 3, 0),
            (F::StageFailed, 2, 2), // re-armed already: nothing to count again
            (F::StageFailed, 2, 1), // between attempts
            (F::Staged, 0, 0),
        ],
    );
    let c = operator::retry(&v, None, Some("tape is back"), None).unwrap();
    assert_eq!(rearmed_files(&c), [1, 3]);
    match &c[0] {
        Change::Dataset(m) => {
            assert_eq!(m.via(), Transition::Retry);
            assert_eq!(m.reason(), Some("tape is back"));
        }
        other => panic!("{other:?}"),
    }
    let v = at(
        StageKind::RecoFailed,
        &[
            (F::RecoFailedForGood, 3, 0),
            (F::RecoFailed, 1, 1),
            (F::RecoFailed, 2, 0),
            (F::StageFailedForGood, 3, 0),
        ],
    );
    // The file that failed for good in prestage comes back too (first): reco stages it.
    assert_eq!(
        rearmed_files(&operator::retry(&v, None, None, None).unwrap()),
        [4, 1, 3]
    );
    let v = at(
        StageKind::CleanupFailed,
        &[(F::Merged, 2, 0), (F::Merged, 1, 1), (F::Cleaned, 0, 0)],
    );
    assert_eq!(
        rearmed_files(&operator::retry(&v, None, None, None).unwrap()),
        [1]
    );
}

#[test]
fn retry_brings_back_files_lost_in_an_earlier_phase_wherever_the_dataset_is() {
    use FileState as F;
    let files = [(F::StageFailedForGood, 3, 0), (F::Reconstructed, 0, 0)];
    for (kind, via) in [
        (StageKind::RecoRunning, None),
        (StageKind::MergeRunning, None),
        (StageKind::MergeNotDone, Some(Transition::ResetToReco)),
        (StageKind::MergeFailed, Some(Transition::ResetToReco)),
        (StageKind::MergeDone, Some(Transition::ResetToReco)),
        (StageKind::CleanupNotDone, Some(Transition::Recover)),
        (StageKind::CleanupFailed, Some(Transition::Recover)),
        (StageKind::Cleaned, Some(Transition::Recover)),
    ] {
        let mut v = at(kind, &files);
        let c = operator::retry(&v, None, None, None).unwrap();
        assert_eq!(rearmed_files(&c), [1], "{kind:?}");
        let moved: Vec<Transition> = c
            .iter()
            .filter_map(|c| match c {
                Change::Dataset(m) => Some(m.via()),
                _ => None,
            })
            .collect();
        assert_eq!(moved, Vec::from_iter(via), "{kind:?}");
        v.apply(&c).unwrap();
        assert_eq!(v.files[&FileId(1)].state, F::Registered, "{kind:?}");
    }
}

#[test]
fn reco_and_merging_stage_a_re_armed_file_and_do_not_close_before_it_is_done() {
    use FileState as F;
    for kind in [StageKind::RecoRunning, StageKind::MergeRunning] {
        let v = at(kind, &[(F::Registered, 3, 3), (F::Reconstructed, 0, 0)]);
        let p = plan(&v, &Policy::default());
        assert!(
            p.actions.iter().any(|a| matches!(
                a,
                Action::Stage {
                    file: FileId(1),
                    attempt: 4,
                    ..
                }
            )),
            "{kind:?}: {:?}",
            p.actions
        );
        assert_eq!(p.transitions().count(), 0, "{kind:?} stays open");
        // A file still to reconstruct holds the merge phase open, in storage too.
        let t = tally(
            &[(F::Staged, 1), (F::Merged, 1)],
            &[(GroupState::Merged, 1)],
            0,
        );
        assert!(admits(StageKind::MergeRunning, Transition::FinishMerge, &t).is_err());
    }
}

#[test]
fn retry_of_one_file_or_one_phase_leaves_the_rest() {
    use FileState as F;
    let v = at(
        StageKind::MergeRunning,
        &[(F::StageFailedForGood, 3, 0), (F::RecoFailedForGood, 3, 0)],
    );
    let only = operator::retry(&v, None, None, Some(FileId(2))).unwrap();
    assert_eq!(rearmed_files(&only), [2]);
    // One file, the only one lost, of a dataset waiting to merge: back to reco for it.
    let waiting = at(
        StageKind::MergeNotDone,
        &[(F::StageFailedForGood, 3, 0), (F::Reconstructed, 0, 0)],
    );
    let c = operator::retry(&waiting, None, None, Some(FileId(1))).unwrap();
    assert!(
        matches!(&c[0], Change::Dataset(m) if m.via() == Transition::ResetToReco),
        "{c:?}"
    );
    let prestage = operator::retry(&v, Some(Phase::Prestage), None, None).unwrap();
    assert_eq!(rearmed_files(&prestage), [1]);
    let later = at(StageKind::RecoRunning, &[(F::StageFailedForGood, 3, 0)]);
    assert!(matches!(
        operator::retry(&later, Some(Phase::Merge), None, None),
        Err(operator::OperatorError::Refused(_))
    ));
    let fine = at(StageKind::MergeRunning, &[(F::Reconstructed, 0, 0)]);
    assert!(matches!(
        operator::retry(&fine, None, None, Some(FileId(1))),
        Err(operator::OperatorError::NothingToRetry { .. })
    ));
}

#[test]
fn accepting_a_loss_needs_a_reason_and_a_loss_not_accepted_yet() {
    assert_eq!(operator::accept(&name(), 3, 0, "tape gone"), Ok(3));
    assert_eq!(operator::accept(&name(), 5, 3, "more"), Ok(5));
    assert!(matches!(
        operator::accept(&name(), 3, 3, "again"),
        Err(operator::OperatorError::NothingToAccept { .. })
    ));
    assert_eq!(
        operator::accept(&name(), 3, 0, " "),
        Err(operator::OperatorError::NoReason)
    );
}

#[test]
fn retry_of_a_failed_merge_rearms_failed_groups_and_undeclared_ones_between_attempts() {
    let mut v = at(
        StageKind::MergeFailed,
        &[(FileState::Reconstructed, 0, 0); 4],
    );
    let states = [
        (GroupState::FailedForGood, 2, 0),
        (GroupState::Merged, 1, 0),
        (GroupState::Merged, 1, 1),
        (GroupState::Declared, 0, 0),
    ];
    for (i, (s, a, b)) in states.into_iter().enumerate() {
        let no = GroupNo(i as u32 + 1);
        let mut g = MergeGroup::new(no, vec![FileId(i as u64 + 1)], 5);
        (g.state, g.attempts, g.attempt_base) = (s, a, b);
        v.groups.insert(no, g);
    }
    let c = operator::retry(&v, None, None, None).unwrap();
    let groups: Vec<u32> = c
        .iter()
        .filter_map(|c| match c {
            Change::Group {
                no,
                event: GroupEvent::Rearm,
                ..
            } => Some(no.0),
            _ => None,
        })
        .collect();
    assert_eq!(groups, [1, 2]);
}

#[test]
fn automation_acts_only_on_an_unlocked_dataset() {
    let mut v = at(StageKind::PrestageNotDone, &[(FileState::Registered, 0, 0)]);
    assert!(operator::is_unlocked(&v));
    v.status.lock = LockWord::Lock;
    assert!(!operator::is_unlocked(&v));
}

#[test]
fn the_policy_refuses_each_value_that_cannot_work() {
    assert_eq!(Policy::default().validate(), Ok(()));
    let bad = [
        (
            Policy {
                max_attempts: 0,
                ..Policy::default()
            },
            "max_attempts",
        ),
        (
            Policy {
                merge_group_files: 0,
                ..Policy::default()
            },
            "merge_group_files",
        ),
        (
            Policy {
                merge_group_bytes: Some(0),
                ..Policy::default()
            },
            "merge_group_bytes",
        ),
    ];
    for (p, key) in bad {
        assert_eq!(p.validate().unwrap_err().key, key);
    }
    assert!(
        Policy {
            merge_group_bytes: Some(1),
            ..Policy::default()
        }
        .validate()
        .is_ok()
    );
}

#[test]
fn phases_print_and_parse_as_their_words() {
    let words = ["prestage", "reco", "merge", "cleanup"];
    for (p, w) in Phase::ALL.iter().zip(words) {
        assert_eq!(p.as_str(), w);
        assert_eq!(p.to_string(), w);
        assert_eq!(w.parse::<Phase>(), Ok(*p));
    }
    assert!("merging".parse::<Phase>().is_err());
    let n = name();
    assert_eq!(AsRef::<str>::as_ref(&n), "contracts");
}

#[test]
fn job_subjects_name_what_they_work_on() {
    assert_eq!(JobSubject::Reco(FileId(3)).to_string(), "raw file f3");
    assert_eq!(JobSubject::Merge(GroupNo(2)).to_string(), "merge group g2");
}

#[test]
fn a_typed_move_is_handed_over_with_its_reason_through_the_trait() {
    fn handed<T: Typed>(t: T) -> Vec<Change> {
        t.into_changes()
    }
    let d = AnyDataset::recover(name(), Status::NEW).because("by hand");
    let moved = d.take(Transition::Unlock).unwrap();
    let c = handed(moved);
    assert_eq!(c.len(), 1);
    let Change::Dataset(m) = &c[0] else {
        panic!("{c:?}")
    };
    assert_eq!(m.reason(), Some("by hand"));
    assert!(m.to_string().starts_with("unlock ("), "{m}");
    assert!(m.to_string().contains(") -> ("), "{m}");
}

#[test]
fn the_current_error_of_a_merged_file_is_its_failed_deletion() {
    let mut f = RawFile::new(FileId(1), "raw", 1);
    f.state = FileState::Merged;
    f.last_error = Some("rm: permission denied".into());
    assert_eq!(
        f.current_error(),
        None,
        "no deletion tried yet: the error is history"
    );
    f.attempts = 1;
    assert_eq!(f.current_error(), Some("rm: permission denied"));
    f.state = FileState::Cleaned;
    assert_eq!(f.current_error(), None);
}

#[test]
fn counts_and_tallies_count_every_file_once() {
    use FileState as F;
    let mut v = at(
        StageKind::RecoRunning,
        &[
            (F::Staged, 0, 0),
            (F::Staged, 0, 0),
            (F::Reconstructed, 0, 0),
        ],
    );
    let counts = v.file_counts();
    assert_eq!(counts.get(&F::Staged), Some(&2));
    assert_eq!(counts.get(&F::Reconstructed), Some(&1));
    assert_eq!(counts.len(), 2);
    let t = v.tally();
    assert_eq!(t.files.get(&F::Staged), Some(&2));
    assert_eq!(t.ungrouped, 1);
    // A reconstructed file's step took the attempts its reco jobs show.
    let f3 = FileId(3);
    for attempt in 1..=2 {
        let key = JobKey {
            subject: JobSubject::Reco(f3),
            attempt,
        };
        insert_job(&mut v, key, JobState::Done, None);
    }
    assert_eq!(v.step_attempts(&v.files[&f3].clone()), 2);
    let staged = v.files[&FileId(1)].clone();
    assert_eq!(v.step_attempts(&staged), 0);
}

#[test]
fn a_plan_with_only_actions_or_only_changes_is_not_empty() {
    assert!(Plan::default().is_empty());
    let v = at(StageKind::PrestageNotDone, &[(FileState::Registered, 0, 0)]);
    let p = plan(&v, &Policy::default());
    assert!(!p.is_empty());
    let only_changes = Plan {
        actions: Vec::new(),
        ..p.clone()
    };
    assert!(!only_changes.is_empty());
    let only_actions = Plan {
        changes: Vec::new(),
        ..p
    };
    assert!(!only_actions.is_empty());
}

#[test]
fn reco_gives_up_on_a_file_out_of_attempts_and_never_submits_beside_a_live_job() {
    use FileState as F;
    let policy = Policy {
        max_attempts: 2,
        ..Policy::default()
    };
    let mut v = at(
        StageKind::RecoRunning,
        &[
            (F::RecoFailed, 2, 0),
            (F::Staged, 0, 0),
            (F::RecoFailed, 1, 0),
        ],
    );
    // File 2 has a live job already (reserved, not yet submitted).
    let live = JobKey {
        subject: JobSubject::Reco(FileId(2)),
        attempt: 1,
    };
    insert_job(&mut v, live, JobState::Reserved, None);
    let p = plan(&v, &policy);
    let submitted: Vec<u64> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SubmitReco { job, .. } => match job.subject {
                JobSubject::Reco(f) => Some(f.0),
                JobSubject::Merge(_) => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(submitted, [3], "only file 3 may be submitted");
    let gave_up: Vec<u64> = p
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::File {
                id,
                event: FileEvent::GiveUp,
                ..
            } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(gave_up, [1]);
    // A failed file whose job is still live is not given up on.
    let mut v2 = at(StageKind::RecoRunning, &[(F::RecoFailed, 2, 0)]);
    let key = JobKey {
        subject: JobSubject::Reco(FileId(1)),
        attempt: 3,
    };
    insert_job(&mut v2, key, JobState::Running, Some("9"));
    let p2 = plan(&v2, &policy);
    assert!(
        !p2.changes.iter().any(|c| matches!(
            c,
            Change::File {
                event: FileEvent::GiveUp,
                ..
            }
        )),
        "{p2:?}"
    );
}

fn new_groups(p: &Plan) -> Vec<(u32, Vec<u64>, u64)> {
    p.changes
        .iter()
        .filter_map(|c| match c {
            Change::NewGroup { no, files, bytes } => {
                Some((no.0, files.iter().map(|f| f.0).collect(), *bytes))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn new_groups_are_numbered_after_the_last_and_carry_their_tmb_files_and_bytes() {
    let mut v = at(
        StageKind::MergeRunning,
        &[(FileState::Reconstructed, 0, 0); 5],
    );
    // File 1 is in group 1 already.
    v.files.get_mut(&FileId(1)).unwrap().group = Some(GroupNo(1));
    let mut g1 = MergeGroup::new(GroupNo(1), vec![FileId(1)], 5);
    g1.state = GroupState::Merged;
    v.groups.insert(GroupNo(1), g1);
    let policy = Policy {
        merge_group_files: 2,
        ..Policy::default()
    };
    let p = plan(&v, &policy);
    // TMB sizes are 5 + index: files 2..=5 have 6, 7, 8, 9 bytes.
    assert_eq!(
        new_groups(&p),
        [(2, vec![2, 3], 13), (3, vec![4, 5], 17)],
        "{p:?}"
    );
    let inputs: Vec<Vec<String>> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SubmitMerge { inputs, .. } => {
                Some(inputs.iter().map(|t| t.path.clone()).collect())
            }
            _ => None,
        })
        .collect();
    assert!(
        inputs.contains(&vec!["tmb1".to_string(), "tmb2".to_string()]),
        "{inputs:?}"
    );
}

#[test]
fn a_byte_cap_closes_a_group_before_it_overflows_and_a_big_file_stands_alone() {
    let v = at(
        StageKind::MergeRunning,
        &[(FileState::Reconstructed, 0, 0); 4],
    );
    // Sizes 5, 6, 7, 8; at most 12 bytes a group.
    let policy = Policy {
        merge_group_files: 10,
        merge_group_bytes: Some(12),
        ..Policy::default()
    };
    let groups: Vec<Vec<u64>> = new_groups(&plan(&v, &policy))
        .into_iter()
        .map(|(_, f, _)| f)
        .collect();
    assert_eq!(groups, [vec![1, 2], vec![3], vec![4]]);
    // A single file over the cap forms a group of its own, never an empty one before it.
    let policy = Policy {
        merge_group_bytes: Some(4),
        ..policy
    };
    let groups: Vec<Vec<u64>> = new_groups(&plan(&v, &policy))
        .into_iter()
        .map(|(_, f, _)| f)
        .collect();
    assert_eq!(groups, [vec![1], vec![2], vec![3], vec![4]]);
}

#[test]
fn declaring_stops_at_the_cap_and_waits_for_a_declaration_under_way() {
    let policy = Policy {
        max_attempts: 2,
        ..Policy::default()
    };
    let mut v = at(StageKind::MergeDone, &[(FileState::Merged, 0, 0); 2]);
    let mut out_of_attempts = MergeGroup::new(GroupNo(1), vec![FileId(1)], 5);
    out_of_attempts.state = GroupState::Merged;
    out_of_attempts.attempts = 2;
    out_of_attempts.output = Some(repro_core::MergedFile {
        name: "m1".into(),
        size: 5,
    });
    v.groups.insert(GroupNo(1), out_of_attempts.clone());
    let p = plan(&v, &policy);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::Declare { .. })),
        "a group out of attempts is not declared again: {p:?}"
    );
    assert_eq!(p.transitions().collect::<Vec<_>>(), [Transition::FailMerge]);
    // A declaration under way keeps the phase open.
    let mut declaring = out_of_attempts;
    declaring.state = GroupState::Declaring;
    v.groups.insert(GroupNo(1), declaring);
    assert_eq!(plan(&v, &policy).transitions().count(), 0);
}

#[test]
fn cleanup_waits_for_a_deletion_under_way_and_polls_it() {
    let mut v = at(StageKind::CleanupNotDone, &[(FileState::Cleaned, 0, 0); 2]);
    let f = v.files.get_mut(&FileId(2)).unwrap();
    f.state = FileState::Deleting;
    f.tmb = Some(TmbFile::new("tmb1", 6));
    assert_eq!(plan(&v, &Policy::default()).transitions().count(), 0);
    let p = polls(&v);
    assert!(
        p.iter()
            .any(|p| matches!(p, Poll::Deletion { file, .. } if *file == FileId(2))),
        "{p:?}"
    );
}

#[test]
fn a_group_may_fill_the_byte_cap_exactly() {
    let v = at(
        StageKind::MergeRunning,
        &[(FileState::Reconstructed, 0, 0); 3],
    );
    // Sizes 5, 6, 7: the first two make exactly 11.
    let policy = Policy {
        merge_group_files: 10,
        merge_group_bytes: Some(11),
        ..Policy::default()
    };
    let groups: Vec<Vec<u64>> = new_groups(&plan(&v, &policy))
        .into_iter()
        .map(|(_, f, _)| f)
        .collect();
    assert_eq!(groups, [vec![1, 2], vec![3]]);
}

#[test]
fn a_typed_value_hands_its_moves_over_through_the_trait_and_an_error_becomes_the_reason() {
    fn handed<T: Typed>(t: T) -> Vec<Change> {
        t.into_changes()
    }
    let d = repro_core::typed::Dataset::register(name()).unlock();
    let c = handed(d);
    assert_eq!(c.len(), 1, "{c:?}");
    let Change::Dataset(m) = c[0].clone().with_error("tape library offline") else {
        panic!("{c:?}")
    };
    assert_eq!(m.via(), Transition::Unlock);
    assert_eq!(m.reason(), Some("tape library offline"));
}

#[test]
fn the_attempts_of_a_merged_files_step_are_its_deletions_not_its_old_reco_jobs() {
    let mut v = at(StageKind::CleanupNotDone, &[(FileState::Merged, 0, 0)]);
    let f1 = FileId(1);
    for attempt in 1..=2 {
        let key = JobKey {
            subject: JobSubject::Reco(f1),
            attempt,
        };
        insert_job(&mut v, key, JobState::Done, None);
    }
    let f = v.files[&f1].clone();
    assert_eq!(v.step_attempts(&f), 0);
}

#[test]
fn only_reconstructed_ungrouped_files_join_a_new_group() {
    let v = at(
        StageKind::MergeRunning,
        &[(FileState::Reconstructed, 0, 0), (FileState::Staged, 0, 0)],
    );
    let mut w = v.clone();
    let refused = w.apply(&[Change::NewGroup {
        no: GroupNo(1),
        files: vec![FileId(1), FileId(2)],
        bytes: 11,
    }]);
    assert!(refused.is_err(), "a staged file joined a merge group");
    assert_eq!(w, v, "a refused batch changed the view");
}

/// A policy whose failed steps wait an hour, then two, within a day's window.
fn patient() -> Policy {
    use repro_core::retry::{Backoff, Backoffs};
    Policy {
        max_attempts: 2,
        retry: Backoffs {
            all: Backoff {
                first_delay_s: 3600,
                window_s: 86_400,
                ..Backoff::default()
            },
            phase: Default::default(),
        },
        ..Policy::default()
    }
}

#[test]
fn a_failed_step_waits_for_its_retry_time_and_holds_its_phase_open() {
    use repro_core::retry::Retry;
    let mut v = at(
        StageKind::PrestageRunning,
        &[(FileState::StageFailed, 1, 0)],
    );
    v.files.get_mut(&FileId(1)).unwrap().retry = Some(Retry {
        at: 5000,
        since: 1400,
    });
    let policy = patient();
    let before = repro_core::plan_for(&v, &policy, 4999, |_| true);
    assert!(before.is_empty(), "nothing before its time: {before:?}");
    let due = repro_core::plan_for(&v, &policy, 5000, |_| true);
    assert!(
        matches!(due.actions[..], [Action::Stage { attempt: 2, .. }]),
        "{due:?}"
    );
    // Attempts spent, but within the window: tried again when due, not given up.
    let f = v.files.get_mut(&FileId(1)).unwrap();
    (f.attempts, f.retry) = (
        2,
        Some(Retry {
            at: 9000,
            since: 1400,
        }),
    );
    assert!(repro_core::plan_for(&v, &policy, 8000, |_| true).is_empty());
    let again = repro_core::plan_for(&v, &policy, 9000, |_| true);
    assert!(matches!(
        again.actions[..],
        [Action::Stage { attempt: 3, .. }]
    ));
    // The window over and the attempts spent: failed for good.
    let late = repro_core::plan_for(&v, &policy, 1400 + 86_400, |_| true);
    assert!(late.changes.iter().any(|c| matches!(
        c,
        Change::File {
            event: FileEvent::GiveUp,
            ..
        }
    )));
}

#[test]
fn a_failure_is_scheduled_from_its_first_failure_and_a_success_clears_it() {
    use repro_core::retry::{Retry, schedule};
    let v = at(StageKind::PrestageRunning, &[(FileState::Staging, 1, 0)]);
    let policy = patient();
    let mut c = vec![
        Change::file(&v.files[&FileId(1)], FileEvent::StageFail)
            .unwrap()
            .with_error("tape busy"),
    ];
    schedule(&v, &mut c, &policy.retry, 1000);
    let Change::File { retry, .. } = &c[0] else {
        panic!()
    };
    assert_eq!(
        *retry,
        Some(Retry {
            at: 4600,
            since: 1000
        })
    );
    let mut v = v;
    v.apply(&c).unwrap();
    assert_eq!(
        v.files[&FileId(1)].retry,
        Some(Retry {
            at: 4600,
            since: 1000
        })
    );
    // The next attempt keeps the window's start; its success clears both.
    let go = Change::file(&v.files[&FileId(1)], FileEvent::RequestStage).unwrap();
    v.apply(&[go]).unwrap();
    assert!(v.files[&FileId(1)].retry.is_some());
    let done = Change::file(&v.files[&FileId(1)], FileEvent::StageDone).unwrap();
    v.apply(&[done]).unwrap();
    assert_eq!(v.files[&FileId(1)].retry, None);
}

#[test]
fn a_retry_policy_that_cannot_work_names_its_key() {
    use repro_core::retry::{Backoff, Backoffs};
    let with = |all: Backoff, phase: Option<(Phase, Backoff)>| Policy {
        retry: Backoffs {
            all,
            phase: phase.into_iter().collect(),
        },
        ..Policy::default()
    };
    let d = Backoff::default();
    for (p, key) in [
        (
            with(
                Backoff {
                    attempts: Some(0),
                    ..d
                },
                None,
            ),
            "retry.attempts",
        ),
        (with(Backoff { factor: 0, ..d }, None), "retry.factor"),
        (
            with(
                d,
                Some((
                    Phase::Reco,
                    Backoff {
                        jitter_percent: 101,
                        ..d
                    },
                )),
            ),
            "retry.reco.jitter_percent",
        ),
    ] {
        assert_eq!(p.validate().unwrap_err().key, key);
    }
    assert!(
        with(
            Backoff {
                jitter_percent: 100,
                factor: 1,
                ..d
            },
            None
        )
        .validate()
        .is_ok()
    );
    // A phase's own backoff and attempts; the others have the policy's.
    let p = with(
        d,
        Some((
            Phase::Merge,
            Backoff {
                attempts: Some(7),
                window_s: 9,
                ..d
            },
        )),
    );
    assert_eq!((p.attempts(Phase::Merge), p.attempts(Phase::Reco)), (7, 3));
    assert_eq!(p.retry.of(Phase::Merge).window_s, 9);
    assert_eq!(p.retry.of(Phase::Cleanup).window_s, 0);
}

#[test]
fn every_kind_of_failure_is_scheduled_and_nothing_without_a_delay_or_window() {
    use repro_core::retry::{Retry, schedule, waiting};
    let mut v = at(
        StageKind::MergeRunning,
        &[
            (FileState::RecoSubmitted, 2, 1),
            (FileState::Deleting, 1, 0),
        ],
    );
    let mut g = MergeGroup::new(GroupNo(1), vec![FileId(2)], 5);
    (g.state, g.attempts) = (GroupState::Merging, 1);
    v.groups.insert(GroupNo(1), g.clone());
    let mut d = g.clone();
    (d.no, d.state, d.output) = (
        GroupNo(2),
        GroupState::Declaring,
        Some(repro_core::MergedFile {
            name: "m2".into(),
            size: 1,
        }),
    );
    v.groups.insert(GroupNo(2), d.clone());
    let failures = || {
        vec![
            Change::file(&v.files[&FileId(1)], FileEvent::RecoFail).unwrap(),
            Change::file(&v.files[&FileId(2)], FileEvent::DeleteFail).unwrap(),
            Change::group(&g, GroupEvent::JobFail).unwrap(),
            Change::group(&d, GroupEvent::DeclareFail).unwrap(),
        ]
    };
    // No delay and no window: the next run tries again, and nothing is stamped.
    let mut plain = failures();
    schedule(&v, &mut plain, &Policy::default().retry, 100);
    assert_eq!(plain, failures());
    let mut c = failures();
    schedule(&v, &mut c, &patient().retry, 100);
    let stamped: Vec<Option<Retry>> = c
        .iter()
        .map(|c| match c {
            Change::File { retry, .. } | Change::Group { retry, .. } => *retry,
            _ => None,
        })
        .collect();
    let r = |at| Some(Retry { at, since: 100 });
    // The file tried once since its re-arm waits an hour; the others too.
    assert_eq!(stamped, [r(3700), r(3700), r(3700), r(3700)]);
    v.apply(&c).unwrap();
    assert_eq!(waiting(&v, 100), Some((4, 3700)));
    assert_eq!(waiting(&v, 3700), None, "nothing waits once it is due");
    // A merge group's success clears its wait.
    let done = Change::group(&v.groups[&GroupNo(1)], GroupEvent::Finish)
        .unwrap()
        .with_output(repro_core::MergedFile {
            name: "m1".into(),
            size: 1,
        });
    v.apply(&[done]).unwrap();
    assert_eq!(v.groups[&GroupNo(1)].retry, None);
    assert_eq!(waiting(&v, 100), Some((3, 3700)));
}

#[test]
fn retry_moves_the_dataset_so_that_what_it_rearms_gets_done() {
    use FileState as F;
    let via = |c: &[Change]| {
        c.iter().find_map(|c| match c {
            Change::Dataset(m) => Some((m.via(), m.reason().map(str::to_owned))),
            _ => None,
        })
    };
    // Reco FAILED with a file lost in prestage: reco starts over and stages it.
    let v = at(
        StageKind::RecoFailed,
        &[(F::StageFailedForGood, 3, 0), (F::RecoFailedForGood, 3, 0)],
    );
    let c = operator::retry(&v, Some(Phase::Prestage), None, None).unwrap();
    assert_eq!(via(&c), Some((Transition::Retry, None)));
    assert_eq!(rearmed_files(&c), [1]);
    // The phase it is in, asked by name, is retried as without a name.
    let v = at(StageKind::MergeFailed, &[(F::Reconstructed, 0, 0)]);
    let mut v2 = v.clone();
    let mut g = MergeGroup::new(GroupNo(1), vec![FileId(1)], 5);
    (g.state, g.attempts) = (GroupState::FailedForGood, 3);
    v2.groups.insert(GroupNo(1), g);
    assert_eq!(
        operator::retry(&v2, Some(Phase::Merge), None, None).unwrap(),
        operator::retry(&v2, None, None, None).unwrap()
    );
    drop(v);
    // A move back without a reason given records why.
    let v = at(StageKind::Cleaned, &[(F::StageFailedForGood, 3, 0)]);
    let c = operator::retry(&v, None, None, None).unwrap();
    assert_eq!(
        via(&c),
        Some((
            Transition::Recover,
            Some("retry of the raw files that failed for good".into())
        ))
    );
    let c = operator::retry(&v, None, Some("tape back"), None).unwrap();
    assert_eq!(via(&c).unwrap().1.as_deref(), Some("tape back"));
}

#[test]
fn a_permanent_merge_job_failure_fails_its_group_for_good_at_once() {
    use repro_core::outcome::record;
    let mut v = at(StageKind::MergeRunning, &[(FileState::Reconstructed, 0, 0)]);
    let mut g = MergeGroup::new(GroupNo(1), vec![FileId(1)], 5);
    (g.state, g.attempts) = (GroupState::Merging, 1);
    v.groups.insert(GroupNo(1), g);
    v.files.get_mut(&FileId(1)).unwrap().group = Some(GroupNo(1));
    let key = JobKey {
        subject: JobSubject::Merge(GroupNo(1)),
        attempt: 1,
    };
    insert_job(&mut v, key, JobState::Running, Some("9"));
    let failed = repro_core::Outcome::JobFailed {
        job: key,
        exit_code: Some(137),
        reason: "out of memory".into(),
        class: repro_core::ErrorClass::Permanent,
    };
    let c = record(&v, &failed).unwrap();
    v.apply(&c).unwrap();
    let g = &v.groups[&GroupNo(1)];
    assert_eq!(g.state, GroupState::FailedForGood, "one attempt of three");
    assert_eq!(
        g.last_error.as_deref(),
        Some("attempt 1: permanent: out of memory")
    );
}
