//! Property tests of planning within limits: several datasets of one site share a budget,
//! planned in priority order each run, as a driver does. At every step what is in flight
//! stays within every limit, a run never submits more than its share, a dataset never gets
//! budget that one before it in priority waits for, and every campaign reaches rest.

mod support;

use proptest::prelude::*;
use repro_core::budget::{Limits, Usage};
use repro_core::plan::{Action, at_rest, plan, plan_within};
use repro_core::{Budget, DatasetView, Limit, Policy};
use support::{Rng, World, check, dataset, record_all};

/// Whether `used` is within `limits`, and when raw files are over the disk limit, only
/// one dataset holds disk (one bigger than the budget runs alone).
fn within(limits: &Limits, views: &[&DatasetView]) -> Result<(), String> {
    let used = views
        .iter()
        .fold(Usage::default(), |u, v| u.plus(Usage::of(v)));
    limits
        .admit(&used)
        .map_err(|l| format!("{l} over its limit: {used:?}"))?;
    let on_disk = views.iter().filter(|v| Usage::of(v).disk_bytes > 0).count();
    if limits.disk_bytes.is_some_and(|max| used.disk_bytes > max) && on_disk > 1 {
        return Err(format!("{on_disk} datasets on disk, over the disk budget"));
    }
    Ok(())
}

const REGRESSIONS: &str = "proptest-regressions/budget.txt";

fn limits_strategy() -> impl Strategy<Value = Limits> {
    (
        proptest::option::of(1u64..6),
        proptest::option::of(1_000u64..40_000),
        proptest::option::of(1u64..6),
        proptest::option::of(1u64..3),
        proptest::option::of(1u64..8),
    )
        .prop_map(
            |(stage_requests, disk_bytes, reco_jobs, merge_jobs, submissions)| Limits {
                stage_requests,
                disk_bytes,
                reco_jobs,
                merge_jobs,
                submissions,
            },
        )
}

fn usage(views: &[DatasetView]) -> Usage {
    views
        .iter()
        .fold(Usage::default(), |u, v| u.plus(Usage::of(v)))
}

/// How many datasets hold disk.
fn on_disk(views: &[DatasetView]) -> usize {
    views.iter().filter(|v| Usage::of(v).disk_bytes > 0).count()
}

fn spends(a: &Action) -> Option<Limit> {
    match a {
        Action::Stage { .. } => Some(Limit::StageRequests),
        Action::SubmitReco { .. } => Some(Limit::RecoJobs),
        Action::SubmitMerge { .. } => Some(Limit::MergeJobs),
        _ => None,
    }
}

/// One run over every dataset in priority order (their index) with one shared budget;
/// checks what the run spent against the limits and the priority order.
fn run(
    views: &mut [DatasetView],
    worlds: &mut [World],
    policy: &Policy,
    limits: &Limits,
    rng: &mut Rng,
) -> Result<(), TestCaseError> {
    let mut budget = limits.free(&usage(views));
    let mut submitted = 0u64;
    let mut waited: Vec<Limit> = Vec::new();
    for (v, w) in views.iter_mut().zip(worlds.iter_mut()) {
        let p = plan_within(v, policy, i64::MAX, |_| true, &mut budget);
        v.apply(&p.changes).expect("a plan applies to its view");
        for a in &p.actions {
            if let Some(l) = spends(a) {
                prop_assert!(
                    !waited.contains(&l),
                    "{l} went to a dataset after one that waited for it"
                );
                submitted += u64::from(l != Limit::StageRequests);
            }
        }
        if p.changes.iter().any(|c| {
            matches!(c, repro_core::Change::Dataset(m)
                if m.via() == repro_core::Transition::StartPrestage)
        }) {
            prop_assert!(
                !waited.contains(&Limit::DiskBytes),
                "a dataset started prestage after one that waited for disk"
            );
        }
        waited.extend(p.waiting.keys().copied());
        let outcomes: Vec<_> = p
            .actions
            .iter()
            .filter_map(|a| w.perform(v, a, rng))
            .collect();
        record_all(v, &outcomes);
    }
    if let Some(max) = limits.submissions {
        prop_assert!(
            submitted <= max,
            "a run submitted {submitted} jobs, limit {max}"
        );
    }
    let used = usage(views);
    // Counted again from the files and jobs themselves, so a wrong Usage::of cannot make
    // the limits look kept.
    let staging = views
        .iter()
        .flat_map(|v| v.files.values())
        .filter(|f| f.state == repro_core::FileState::Staging)
        .count() as u64;
    let live = |reco: bool| {
        views
            .iter()
            .flat_map(|v| v.jobs.values())
            .filter(|j| {
                j.state.is_live()
                    && matches!(j.key.subject, repro_core::JobSubject::Reco(_)) == reco
            })
            .count() as u64
    };
    prop_assert_eq!(
        (used.stage_requests, used.reco_jobs, used.merge_jobs),
        (staging, live(true), live(false)),
        "Usage::of against the files and jobs"
    );
    prop_assert_eq!(limits.admit(&used), Ok(()), "in flight {:?}", used);
    if let Some(max) = limits.disk_bytes
        && used.disk_bytes > max
    {
        prop_assert_eq!(
            on_disk(views),
            1,
            "raw files over the disk budget with more than one dataset on disk"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(REGRESSIONS),
        )),
        ..ProptestConfig::default()
    })]

    /// Limits hold at every step and priorities are honoured; without failures every
    /// dataset reaches rest (with them, a dataset FAILED for an operator keeps what it has
    /// on disk, and those behind it may wait for that person).
    #[test]
    fn limits_hold_priorities_are_kept_and_nothing_starves(
        sizes in proptest::collection::vec(1u64..10, 1..4),
        limits in limits_strategy(),
        failure in prop_oneof![Just(0u8), 10u8..40],
        seed in any::<u64>(),
    ) {
        let policy = Policy { max_attempts: 2, merge_group_files: 3, ..Policy::default() };
        let mut views: Vec<DatasetView> = sizes.iter().map(|n| dataset(*n)).collect();
        let mut worlds: Vec<World> = sizes.iter().map(|_| World::new(failure)).collect();
        let mut rng = Rng::new(seed);
        for _ in 0..400 {
            run(&mut views, &mut worlds, &policy, &limits, &mut rng)?;
            for (v, w) in views.iter_mut().zip(worlds.iter_mut()) {
                check(v, w, &mut rng);
            }
            if views.iter().all(|v| at_rest(v.status.state)) {
                break;
            }
        }
        if failure > 0 {
            return Ok(());
        }
        let stuck: Vec<String> = views
            .iter()
            .filter(|v| !at_rest(v.status.state))
            .map(|v| format!("{:?}", v.status.state))
            .collect();
        prop_assert!(stuck.is_empty(), "not at rest after 400 runs: {:?}", stuck);
    }

    /// Datasets at two sites, each site with its limits and the campaign with a total:
    /// each run plans every dataset under its site's budget and the total's at once.
    /// Neither site's limits nor the total are ever exceeded, and everything reaches rest.
    #[test]
    fn site_limits_and_the_total_both_hold(
        datasets in proptest::collection::vec((1u64..8, 0usize..2), 1..5),
        sites in [limits_strategy(), limits_strategy()],
        total in limits_strategy(),
        seed in any::<u64>(),
    ) {
        let policy = Policy { merge_group_files: 3, ..Policy::default() };
        let mut views: Vec<DatasetView> = datasets.iter().map(|(n, _)| dataset(*n)).collect();
        let mut worlds: Vec<World> = datasets.iter().map(|_| World::new(0)).collect();
        let at: Vec<usize> = datasets.iter().map(|(_, s)| *s).collect();
        let mut rng = Rng::new(seed);
        for _ in 0..400 {
            let of_site = |views: &[DatasetView], s: usize| -> Vec<DatasetView> {
                views.iter().zip(&at).filter(|(_, a)| **a == s).map(|(v, _)| v.clone()).collect()
            };
            let mut site_budgets = [
                sites[0].free(&usage(&of_site(&views, 0))),
                sites[1].free(&usage(&of_site(&views, 1))),
            ];
            let mut total_budget = total.free(&usage(&views));
            for (i, (v, w)) in views.iter_mut().zip(worlds.iter_mut()).enumerate() {
                let mut both = [site_budgets[at[i]], total_budget];
                let p = plan_within(v, &policy, i64::MAX, |_| true, &mut both[..]);
                [site_budgets[at[i]], total_budget] = both;
                v.apply(&p.changes).expect("a plan applies to its view");
                let outcomes: Vec<_> = p.actions.iter().filter_map(|a| w.perform(v, a, &mut rng)).collect();
                record_all(v, &outcomes);
            }
            for (s, limits) in sites.iter().enumerate() {
                let here: Vec<&DatasetView> = views.iter().zip(&at).filter(|(_, a)| **a == s).map(|(v, _)| v).collect();
                prop_assert_eq!(within(limits, &here), Ok(()), "site {}", s);
            }
            let all: Vec<&DatasetView> = views.iter().collect();
            prop_assert_eq!(within(&total, &all), Ok(()), "the total");
            for (v, w) in views.iter_mut().zip(worlds.iter_mut()) {
                check(v, w, &mut rng);
            }
            if views.iter().all(|v| at_rest(v.status.state)) {
                break;
            }
        }
        let stuck: Vec<String> = views
            .iter()
            .filter(|v| !at_rest(v.status.state))
            .map(|v| format!("{:?}", v.status.state))
            .collect();
        prop_assert!(stuck.is_empty(), "not at rest after 400 runs: {:?}", stuck);
    }

    /// The run order: every dataset once; priorities never rise along it; within a
    /// priority, samples come by files in flight per unit of weight, lowest first (so one
    /// with nothing in flight is never behind one with work in flight); and a sample's
    /// datasets keep the order given (the oldest first).
    #[test]
    fn the_run_order_is_by_priority_then_share_then_age(
        claims in proptest::collection::vec((-1i32..2, 0usize..4, 0u64..50), 0..12),
        weights in proptest::collection::vec(1u32..5, 4),
    ) {
        use repro_core::fair::{Claim, Weights, run_order, weight};
        let names: Vec<repro_core::SampleName> = ["a", "b", "c"].iter().map(|n| repro_core::SampleName::new(*n).unwrap()).collect();
        let sample = |i: usize| names.get(i);
        let w: Weights = names.iter().cloned().zip(weights.iter().copied()).collect();
        let cs: Vec<Claim<'_>> = claims.iter().map(|&(priority, s, in_flight)| Claim { priority, sample: sample(s), in_flight }).collect();
        let order = run_order(&cs, &w);
        let mut seen = order.clone();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..cs.len()).collect::<Vec<_>>());
        let flight = |c: &Claim<'_>| -> f64 {
            cs.iter().filter(|o| o.priority == c.priority && o.sample == c.sample).map(|o| o.in_flight).sum::<u64>() as f64
                / f64::from(weight(&w, c.sample))
        };
        for pair in order.windows(2) {
            let (a, b) = (&cs[pair[0]], &cs[pair[1]]);
            prop_assert!(a.priority >= b.priority, "priority {} before {}", a.priority, b.priority);
            if a.priority == b.priority {
                prop_assert!(flight(a) <= flight(b), "share {} before {}", flight(a), flight(b));
                if a.sample == b.sample {
                    prop_assert!(pair[0] < pair[1], "a sample's datasets keep their order");
                }
            }
        }
    }

    /// Within no limits the plan is the whole plan; with a budget it is never more.
    #[test]
    fn an_unlimited_budget_plans_everything_and_a_budget_never_more(
        files in 1u64..12,
        limits in limits_strategy(),
        seed in any::<u64>(),
        ticks in 0usize..6,
    ) {
        let policy = Policy::default();
        let mut v = dataset(files);
        let mut w = World::new(20);
        let mut rng = Rng::new(seed);
        for _ in 0..ticks {
            let p = plan(&v, &policy);
            v.apply(&p.changes).unwrap();
            let outcomes: Vec<_> = p.actions.iter().filter_map(|a| w.perform(&v, a, &mut rng)).collect();
            record_all(&mut v, &outcomes);
            check(&mut v, &mut w, &mut rng);
        }
        let mut free = Budget::UNLIMITED;
        let whole = plan_within(&v, &policy, i64::MAX, |_| true, &mut free);
        prop_assert_eq!(&whole, &plan(&v, &policy));
        prop_assert!(whole.waiting.is_empty());
        let mut budget = limits.free(&Usage::of(&v));
        let before = budget;
        let part = plan_within(&v, &policy, i64::MAX, |_| true, &mut budget);
        prop_assert!(part.actions.len() <= whole.actions.len());
        let count = |l: Limit| part.actions.iter().filter(|a| spends(a) == Some(l)).count() as u64;
        for (l, had, left) in [
            (Limit::StageRequests, before.stage_requests, budget.stage_requests),
            (Limit::RecoJobs, before.reco_jobs, budget.reco_jobs),
            (Limit::MergeJobs, before.merge_jobs, budget.merge_jobs),
        ] {
            if let (Some(had), Some(left)) = (had, left) {
                prop_assert_eq!(had - left, count(l), "{} taken and planned differ", l);
            }
        }
        // What waits is what the whole plan does beyond the part.
        let held: u64 = part.waiting.iter().filter(|(l, _)| **l != Limit::DiskBytes).map(|(_, n)| n).sum();
        if part.waiting.keys().all(|l| *l != Limit::DiskBytes) {
            let extra = (whole.actions.len() - part.actions.len()) as u64;
            prop_assert!(held >= extra.min(1) || extra == 0, "held {held}, the whole plan does {extra} more");
        }
    }
}

/// Applies `changes` to `view` with an undo log, checking the contract a store relies on
/// when it checks only the limits a batch spends: a budget the batch does not spend is
/// not raised by it. Then the log puts the view back exactly, and the batch is applied
/// for good.
fn spend_checked(
    view: &mut DatasetView,
    changes: &[repro_core::Change],
    planned: bool,
) -> Result<(), TestCaseError> {
    use repro_core::budget::Spends;
    let before = view.clone();
    let used = Usage::of(view);
    let spends = Spends::of(changes);
    let log = view
        .apply_undoable(changes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let after = Usage::of(view);
    let raised = |a: u64, b: u64| b > a;
    prop_assert!(
        !raised(used.stage_requests, after.stage_requests) || spends.stage,
        "{spends:?}: {used:?} -> {after:?}"
    );
    prop_assert!(
        !raised(used.disk_bytes, after.disk_bytes) || spends.disk,
        "{spends:?}: {used:?} -> {after:?}"
    );
    prop_assert!(
        !raised(used.reco_jobs, after.reco_jobs) || spends.reco,
        "{spends:?}: {used:?} -> {after:?}"
    );
    prop_assert!(
        !raised(used.merge_jobs, after.merge_jobs) || spends.merge,
        "{spends:?}: {used:?} -> {after:?}"
    );
    // Recording what the world said spends nothing; only plans do, and a plan spends a
    // budget only when it raises it (a store never refuses a batch for a budget the
    // batch does not take).
    prop_assert!(
        planned || !spends.any(),
        "a recorded outcome spends {spends:?}"
    );
    prop_assert!(
        !spends.stage || raised(used.stage_requests, after.stage_requests),
        "{spends:?}: {used:?} -> {after:?}"
    );
    prop_assert!(
        !spends.disk || raised(used.disk_bytes, after.disk_bytes),
        "{spends:?}: {used:?} -> {after:?}"
    );
    prop_assert!(
        !spends.reco || raised(used.reco_jobs, after.reco_jobs),
        "{spends:?}: {used:?} -> {after:?}"
    );
    prop_assert!(
        !spends.merge || raised(used.merge_jobs, after.merge_jobs),
        "{spends:?}: {used:?} -> {after:?}"
    );
    let changed = *view != before;
    view.undo(log);
    prop_assert_eq!(&*view, &before, "the undo log puts the view back");
    view.apply(changes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(changed, !changes.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(REGRESSIONS),
        )),
        ..ProptestConfig::default()
    })]

    /// Every batch of a campaign, planned or recorded, raises only the budgets it says it
    /// spends ([`Spends::of`]); a plan says it spends only what it raises, and recorded
    /// outcomes spend nothing. Its undo log puts the view back as it was.
    #[test]
    fn a_batch_spends_the_budgets_it_raises_and_no_other(seed in any::<u64>(), files in 1u64..24, failure in 0u8..40) {
        let mut view = dataset(files);
        let mut world = World::new(failure);
        let mut rng = Rng::new(seed);
        let policy = Policy { max_attempts: 2, ..Policy::default() };
        let mut spent = repro_core::budget::Spends::default();
        for _ in 0..300 {
            let p = plan(&view, &policy);
            let s = repro_core::budget::Spends::of(&p.changes);
            spent = repro_core::budget::Spends {
                stage: spent.stage || s.stage,
                disk: spent.disk || s.disk,
                reco: spent.reco || s.reco,
                merge: spent.merge || s.merge,
            };
            spend_checked(&mut view, &p.changes, true)?;
            let mut outcomes: Vec<_> = p.actions.iter().filter_map(|a| world.perform(&view, a, &mut rng)).collect();
            outcomes.extend(repro_core::plan::polls(&view).iter().filter_map(|q| world.answer(&view, q, &mut rng)));
            for o in &outcomes {
                if let Ok(changes) = repro_core::outcome::record(&view, o) {
                    spend_checked(&mut view, &changes, false)?;
                }
            }
            if at_rest(view.status.state) {
                break;
            }
        }
        // A campaign that got anywhere spent each budget on the way.
        if view.status.columns().cleanup.to_string() == "CLEANED" {
            prop_assert_eq!(spent, repro_core::budget::Spends { stage: true, disk: true, reco: true, merge: true });
        }
    }
}

/// A write is refused for the first limit it spends and takes past; at a limit is within
/// it; the disk counts raw and TMB bytes together and may be overrun by a dataset alone.
#[test]
fn a_write_is_refused_for_the_first_limit_it_spends_and_takes_past() {
    use repro_core::budget::Spends;
    let limits = Limits {
        stage_requests: Some(3),
        disk_bytes: Some(1000),
        reco_jobs: Some(2),
        merge_jobs: Some(1),
        submissions: Some(1),
    };
    let used = Usage {
        stage_requests: 4,
        disk_bytes: 1500,
        tmb_bytes: 0,
        reco_jobs: 3,
        merge_jobs: 2,
    };
    let all = Spends {
        stage: true,
        disk: true,
        reco: true,
        merge: true,
    };
    let only = |f: fn(&mut Spends)| {
        let mut s = Spends::default();
        f(&mut s);
        s
    };
    assert!(all.any() && !Spends::default().any());
    assert!(only(|s| s.stage = true).any() && only(|s| s.disk = true).any());
    assert!(only(|s| s.reco = true).any() && only(|s| s.merge = true).any());
    assert_eq!(
        limits.breach(all, &used, None),
        Some((Limit::StageRequests, 4, 3))
    );
    assert_eq!(
        limits.breach(
            Spends {
                stage: false,
                ..all
            },
            &used,
            None
        ),
        Some((Limit::RecoJobs, 3, 2))
    );
    assert_eq!(
        limits.breach(only(|s| s.merge = true), &used, None),
        Some((Limit::MergeJobs, 2, 1))
    );
    assert_eq!(
        limits.breach(Spends::default(), &used, None),
        None,
        "nothing spent, nothing refused"
    );
    assert_eq!(
        Limits::default().breach(all, &used, None),
        None,
        "no limits"
    );
    let at = Usage {
        stage_requests: 3,
        disk_bytes: 600,
        tmb_bytes: 400,
        reco_jobs: 2,
        merge_jobs: 1,
    };
    assert_eq!(
        limits.breach(all, &at, None),
        None,
        "at a limit is within it"
    );
    let disk = only(|s| s.disk = true);
    let over = Usage {
        tmb_bytes: 401,
        ..at
    };
    assert_eq!(
        limits.breach(disk, &over, None),
        Some((Limit::DiskBytes, 1001, 1000))
    );
    assert_eq!(
        limits.breach(only(|s| s.stage = true), &over, None),
        None,
        "disk not spent"
    );
    let holding = |u: Usage| limits.breach(disk, &over, Some(&u));
    assert_eq!(
        holding(Usage {
            disk_bytes: 1,
            ..Usage::default()
        }),
        Some((Limit::DiskBytes, 1001, 1000))
    );
    assert_eq!(
        holding(Usage {
            tmb_bytes: 1,
            ..Usage::default()
        }),
        Some((Limit::DiskBytes, 1001, 1000))
    );
    assert_eq!(
        holding(Usage {
            reco_jobs: 5,
            ..Usage::default()
        }),
        None,
        "alone on disk"
    );
}
