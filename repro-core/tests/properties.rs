//! Property tests of the lifecycle: random sequences of driver rounds, outside-world
//! outcomes (successes, failures, lost jobs, crashes between writing and acting) and
//! operator actions, checked against the world model in `tests/support/mod.rs` at every step.
//!
//! Case count: `PROPTEST_CASES` (default 1000); sequence length: `REPRO_PROPTEST_STEPS`
//! (default 100).

mod support;

use proptest::prelude::*;
use repro_core::operator;
use repro_core::plan::{at_rest, plan};
use repro_core::state::Phase;
use repro_core::{Change, CleanupWord, MergeWord, Policy, RecoWord};
use support::{Rng, World, broken_invariants, check, dataset, repeated_reservations, tick};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn max_steps() -> usize {
    std::env::var("REPRO_PROPTEST_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    /// A driver round: plan, write, act.
    Tick,
    /// A driver round that dies after writing, before acting.
    Crash,
    /// A check: poll and record.
    Check,
    /// Plan twice from one snapshot and once more after writing; nothing may repeat.
    Replan,
    Lock,
    Unlock,
    Retry(Option<Phase>),
    Reset(Phase),
    Recover,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => Just(Step::Tick),
        3 => Just(Step::Crash),
        30 => Just(Step::Check),
        5 => Just(Step::Replan),
        2 => Just(Step::Lock),
        4 => Just(Step::Unlock),
        4 => proptest::option::of(prop_oneof![
            Just(Phase::Prestage),
            Just(Phase::Reco),
            Just(Phase::Merge),
            Just(Phase::Cleanup)
        ])
        .prop_map(Step::Retry),
        2 => prop_oneof![Just(Phase::Prestage), Just(Phase::Reco)].prop_map(Step::Reset),
        1 => Just(Step::Recover),
    ]
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (
        1u32..4,
        1u32..6,
        proptest::option::of(1000u64..5000),
        any::<bool>(),
    )
        .prop_map(
            |(max_attempts, merge_group_files, merge_group_bytes, merge_partial)| Policy {
                max_attempts,
                merge_group_files,
                merge_group_bytes,
                merge_partial,
                ..Policy::default()
            },
        )
}

/// Where proptest reads and writes this file's failure seeds, relative to the package (the
/// directory `cargo test` runs it in). Committed, so every run replays them first.
const REGRESSIONS: &str = "proptest-regressions/properties.txt";

#[test]
fn the_committed_regression_seeds_are_where_proptest_replays_them() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(REGRESSIONS);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let seeds = text.lines().filter(|l| l.starts_with("cc ")).count();
    assert!(seeds >= 1, "no seeds in {}", path.display());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(REGRESSIONS),
        )),
        ..ProptestConfig::default()
    })]

    /// Any history of driver rounds, crashes, outcomes and operator actions keeps every
    /// invariant at every step.
    #[test]
    fn invariants_hold_under_any_history(
        files in 1u64..12,
        policy in policy_strategy(),
        failure in prop_oneof![Just(0u8), 10u8..60],
        seed in any::<u64>(),
        steps in proptest::collection::vec(step_strategy(), 1..=max_steps()),
    ) {
        let mut v = dataset(files);
        let mut w = World::new(failure);
        let mut rng = Rng::new(seed);
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Tick => { tick(&mut v, &mut w, &policy, &mut rng, false); }
                Step::Crash => { tick(&mut v, &mut w, &policy, &mut rng, true); }
                Step::Check => check(&mut v, &mut w, &mut rng),
                Step::Replan => {
                    let first = plan(&v, &policy);
                    let again = plan(&v, &policy);
                    prop_assert_eq!(&first, &again, "planning is not deterministic");
                    prop_assert!(v.applies(&first.changes), "a plan that does not apply");
                    let mut once = v.clone();
                    once.apply(&first.changes).unwrap();
                    if !first.changes.is_empty() {
                        // Applying the same decisions twice: the second is a conflict and writes nothing.
                        let mut twice = once.clone();
                        prop_assert!(!once.applies(&first.changes), "applies twice");
                        prop_assert!(twice.apply(&first.changes).is_err());
                        prop_assert_eq!(&twice, &once);
                        // Each step alone, tried on the rows it names, as `apply` on the whole.
                        for c in &first.changes {
                            let one = std::slice::from_ref(c);
                            prop_assert_eq!(v.applies(one), v.clone().apply(one).is_ok(), "{}", c);
                            prop_assert_eq!(once.applies(one), once.clone().apply(one).is_ok(), "{}", c);
                            // A dataset move's status, found without applying it.
                            if matches!(c, Change::Dataset(_)) {
                                for at in [&v, &once] {
                                    let mut whole = at.clone();
                                    let applied = whole.apply(one).map(|()| whole.status);
                                    prop_assert_eq!(at.status_after(at.status, c).ok(), applied.ok(), "{}", c);
                                }
                            }
                        }
                    }
                    let next = plan(&once, &policy);
                    let repeated = repeated_reservations(&first.changes, &next.changes);
                    prop_assert!(repeated.is_empty(), "replanning repeats {:?}", repeated);
                    // Leave the world as it was: the next tick does the real work.
                }
                Step::Lock => { if let Ok(c) = operator::lock(&v, None) { v.apply(&c).unwrap(); } }
                Step::Unlock => { if let Ok(c) = operator::unlock(&v, None) { v.apply(&c).unwrap(); } }
                Step::Retry(p) => { if let Ok(c) = operator::retry(&v, *p, Some("prop"), None) { v.apply(&c).unwrap(); } }
                Step::Reset(p) => { if let Ok(c) = operator::reset(&v, *p, "prop") { v.apply(&c).unwrap(); } }
                Step::Recover => { if let Ok(c) = operator::recover(&v, "prop") { v.apply(&c).unwrap(); } }
            }
            let bad = broken_invariants(&v, &w, files);
            prop_assert!(bad.is_empty(), "after step {} ({:?}): {:?}\n{:#?}", i, s, bad, v);
        }
    }

    /// With nothing failing and nobody interfering, every dataset ends CLEANED with merge
    /// MERGED, having staged, reconstructed and deleted each file exactly once.
    #[test]
    fn without_failures_every_dataset_is_cleaned(
        files in 1u64..40,
        policy in policy_strategy(),
        seed in any::<u64>(),
    ) {
        let mut v = dataset(files);
        let mut w = World::new(0);
        let mut rng = Rng::new(seed);
        for _ in 0..200 {
            tick(&mut v, &mut w, &policy, &mut rng, false);
            check(&mut v, &mut w, &mut rng);
            prop_assert!(broken_invariants(&v, &w, files).is_empty());
            if at_rest(v.status.state) { break; }
        }
        let c = v.status.columns();
        prop_assert_eq!(c.cleanup, CleanupWord::Cleaned, "{}", c);
        prop_assert_eq!(c.reco, RecoWord::Completed, "merge MERGED needs reco COMPLETED: {}", c);
        prop_assert_eq!(c.merge, MergeWord::MergedDbup);
        for action in ["stage", "reco_submit", "delete"] {
            let n = w.journal.iter().filter(|(a, _, _)| *a == action).count();
            prop_assert_eq!(n as u64, files, "{} ran {} times for {} files", action, n, files);
        }
        let per_group = policy.merge_group_files as u64;
        prop_assert!(w.merged.len() as u64 >= files.div_ceil(per_group));
        prop_assert_eq!(w.catalog.len(), w.merged.len());
    }

    /// With failures and no operator, automation never stalls: every dataset comes to rest,
    /// CLEANED or FAILED, and a FAILED one has nothing left that automation could do.
    #[test]
    fn with_failures_automation_comes_to_rest(
        files in 1u64..20,
        policy in policy_strategy(),
        failure in 10u8..70,
        seed in any::<u64>(),
    ) {
        let mut v = dataset(files);
        let mut w = World::new(failure);
        let mut rng = Rng::new(seed);
        for _ in 0..500 {
            tick(&mut v, &mut w, &policy, &mut rng, false);
            check(&mut v, &mut w, &mut rng);
            if at_rest(v.status.state) { break; }
            if !policy.merge_partial && v.status.state.kind() == repro_core::StageKind::MergeNotDone { break; }
        }
        prop_assert!(broken_invariants(&v, &w, files).is_empty());
        let waiting_for_partial_merge = !policy.merge_partial
            && v.status.state.kind() == repro_core::StageKind::MergeNotDone;
        prop_assert!(at_rest(v.status.state) || waiting_for_partial_merge, "stalled at {}", v.status.columns());
        prop_assert!(plan(&v, &policy).is_empty(), "at rest but a plan remains");
        if v.status.columns().cleanup == CleanupWord::Cleaned {
            // Every file that has a TMB file was merged and cleaned; the rest failed for good.
            for f in v.files.values() {
                prop_assert!(f.state == repro_core::FileState::Cleaned || f.state.failed_for_good(), "{} is {}", f.id, f.state);
            }
        }
    }
}

#[test]
fn a_locked_dataset_gets_an_empty_plan() {
    let mut v = dataset(3);
    v.apply(&operator::lock(&v, Some("hold")).unwrap()).unwrap();
    assert!(plan(&v, &Policy::default()).is_empty());
    assert!(repro_core::plan::polls(&v).is_empty());
}

#[test]
fn a_new_dataset_plans_its_prestage_for_every_file() {
    let v = dataset(3);
    let p = plan(&v, &Policy::default());
    assert_eq!(
        p.transitions().collect::<Vec<_>>(),
        [repro_core::Transition::StartPrestage]
    );
    assert_eq!(p.actions.len(), 3);
    assert!(
        p.changes
            .iter()
            .filter(|c| matches!(c, Change::File { .. }))
            .count()
            == 3
    );
}

/// Found by the property test: a retry while prestage was running re-armed a file by
/// resetting its attempt count, so its next stage request reused attempt number 1.
#[test]
fn rearm_never_reuses_an_attempt_number() {
    let policy = Policy {
        max_attempts: 1,
        ..Policy::default()
    };
    let mut v = dataset(1);
    let mut w = World::new(100); // every stage request fails
    let mut rng = Rng::new(1);
    while tick(&mut v, &mut w, &policy, &mut rng, false) > 0 {}
    assert_eq!(v.status.columns().prestage.to_string(), "FAILED");
    v.apply(&operator::retry(&v, None, Some("tape fixed"), None).unwrap())
        .unwrap();
    w.failure = 0;
    tick(&mut v, &mut w, &policy, &mut rng, false);
    let stages: Vec<u32> = w
        .journal
        .iter()
        .filter(|(a, _, _)| *a == "stage")
        .map(|(_, _, n)| *n)
        .collect();
    assert_eq!(stages, [1, 2]);
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}
