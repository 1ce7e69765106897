//! A site's service refusing a whole step at once: an outage, not many failures.
//!
//! When every outcome of one step in a batch is a transient failure, and there are at
//! least [`Breaker::failures`] of them or they are all the dataset had left of that step
//! (the catalog is down, the tape system refuses every request), the step's breaker opens for the dataset ([`trip`]): the failures spend no
//! attempts (each is excused, [`FileEvent::Excuse`]), nothing of that step is tried until
//! the breaker's next try ([`Outage::until`]), and one line says so. At the next try the
//! step is tried again as a whole: if it still fails as a whole the breaker opens again
//! for longer (doubling up to [`Breaker::max_delay_s`]); the first success closes it.
//!
//! Like the rest of the core this is pure: the breaker is stored with the dataset
//! ([`DatasetView::outages`]) and changed by [`Change::Outage`], so racing hosts and
//! restarts agree, and time comes in as a value.

use std::collections::BTreeMap;

use crate::file::{FileEvent, FileId};
use crate::group::GroupEvent;
use crate::job::{JobEvent, JobSubject};
use crate::outcome::ErrorClass;
use crate::retry::Retry;
use crate::state::Phase;
use crate::view::{Change, DatasetView, GroupNo};
use crate::words::stored_words;

stored_words! {
    /// A step a site's service performs, each with a breaker of its own.
    Step, "step", [
        /// Staging raw files (the tape system).
        Stage = "stage",
        /// Reco jobs (the batch system).
        Reco = "reco",
        /// Merge jobs (the batch system).
        Merge = "merge",
        /// Declaring merged files (the catalog).
        Declare = "declare",
        /// Deleting intermediate files (the storage system).
        Delete = "delete",
    ]
}

impl Step {
    /// The phase whose attempts and backoff the step's failures follow.
    pub const fn phase(self) -> Phase {
        match self {
            Step::Stage => Phase::Prestage,
            Step::Reco => Phase::Reco,
            Step::Merge | Step::Declare => Phase::Merge,
            Step::Delete => Phase::Cleanup,
        }
    }

    /// What a site calls the service that performs it.
    pub const fn service(self) -> &'static str {
        match self {
            Step::Stage => "tape system",
            Step::Reco | Step::Merge => "batch system",
            Step::Declare => "catalog",
            Step::Delete => "storage system",
        }
    }
}

/// When a step counts as out, and how long it then waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Breaker {
    /// Transient failures of one step in one batch, with no success, that open its
    /// breaker (fewer do when they are all the dataset had left of the step); 0: never
    /// (each failure follows the retry policy alone).
    pub failures: u32,
    /// Seconds from the outage's first sight to the next try.
    pub first_delay_s: u64,
    /// The wait doubles at each failed try, up to this.
    pub max_delay_s: u64,
}

impl Default for Breaker {
    /// Off: failures follow the retry policy alone.
    fn default() -> Self {
        Breaker {
            failures: 0,
            first_delay_s: 300,
            max_delay_s: 3600,
        }
    }
}

impl Breaker {
    /// The wait after the `trips`-th time the step was found out (1 for the first).
    pub fn delay_s(&self, trips: u32) -> u64 {
        let doubled = (1..trips.max(1)).fold(self.first_delay_s, |d, _| d.saturating_mul(2));
        doubled.min(self.max_delay_s.max(self.first_delay_s))
    }
}

/// A step of one dataset found out: since when, until when nothing of it is tried, and
/// what it answered last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outage {
    /// The step.
    pub step: Step,
    /// First seen failing as a whole (seconds since the epoch).
    pub since: i64,
    /// Its next try.
    pub until: i64,
    /// How many tries in a row found it out.
    pub trips: u32,
    /// Its last error, as stored (with its class).
    pub error: String,
}

impl Outage {
    /// The stored form: `step since until trips error`, one outage a line.
    pub fn store(outages: &[Outage]) -> Option<String> {
        let lines: Vec<String> = outages
            .iter()
            .map(|o| {
                let error = o.error.replace(['\n', '\r'], " ");
                format!("{} {} {} {} {error}", o.step, o.since, o.until, o.trips)
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// The outages of a stored form, or what is wrong with it.
    pub fn parse_stored(text: &str) -> Result<Vec<Outage>, String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let mut w = line.splitn(5, ' ');
                let mut next = |what: &str| w.next().ok_or(format!("{line:?} has no {what}"));
                let step = next("step")?;
                let step = step.parse::<Step>().map_err(|e| e.to_string())?;
                let num = |s: &str, what: &str| s.parse().map_err(|_| format!("{what} {s:?}"));
                Ok(Outage {
                    step,
                    since: num(next("since")?, "since")?,
                    until: num(next("until")?, "until")?,
                    trips: next("trips")?
                        .parse()
                        .map_err(|_| format!("trips in {line:?}"))?,
                    error: w.next().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }
}

/// The step a change's event is a success or a failure of, and which.
fn verdict(change: &Change) -> Option<(Step, bool)> {
    use FileEvent as F;
    use GroupEvent as G;
    match change {
        Change::File { event, .. } => match event {
            F::StageDone => Some((Step::Stage, true)),
            F::StageFail => Some((Step::Stage, false)),
            F::RecoDone => Some((Step::Reco, true)),
            F::RecoFail => Some((Step::Reco, false)),
            F::Clean => Some((Step::Delete, true)),
            F::DeleteFail => Some((Step::Delete, false)),
            _ => None,
        },
        Change::Group { event, .. } => match event {
            G::Finish => Some((Step::Merge, true)),
            G::JobFail => Some((Step::Merge, false)),
            G::Declare => Some((Step::Declare, true)),
            G::DeclareFail => Some((Step::Declare, false)),
            _ => None,
        },
        // The batch system took a job: it is there, whatever the job then does.
        Change::Job {
            key,
            event: JobEvent::Submit,
            ..
        } => Some(match key.subject {
            JobSubject::Reco(_) => (Step::Reco, true),
            JobSubject::Merge(_) => (Step::Merge, true),
        }),
        _ => None,
    }
}

/// What one batch did to one step.
#[derive(Default)]
struct Tally {
    succeeded: bool,
    /// Any failure not known to be transient.
    other: bool,
    files: Vec<FileId>,
    groups: Vec<GroupNo>,
    error: Option<String>,
}

/// What a batch of recorded outcomes (`batch`, already applied to `view`) does to the
/// dataset's breakers at `now`: a step whose every outcome failed transiently, at least
/// `breaker.failures` times, or every item the dataset had left of it, or while its
/// breaker was open already, is out until its next
/// try, and its failures are excused with that next try as their retry time; a step with
/// a success is back. The changes to append, applied after `batch`.
pub fn trip(view: &DatasetView, batch: &[Change], breaker: &Breaker, now: i64) -> Vec<Change> {
    if breaker.failures == 0 {
        return Vec::new();
    }
    let mut steps: BTreeMap<Step, Tally> = BTreeMap::new();
    for c in batch {
        let Some((step, ok)) = verdict(c) else {
            continue;
        };
        let t = steps.entry(step).or_default();
        if ok {
            t.succeeded = true;
            continue;
        }
        let error = failure_error(c);
        t.other |= error.is_none_or(|e| ErrorClass::of_stored(e) != ErrorClass::Transient);
        match c {
            Change::File { id, .. } => t.files.push(*id),
            Change::Group { no, .. } => t.groups.push(*no),
            _ => {}
        }
        t.error = error.map(str::to_owned).or(t.error.take());
    }
    let mut out = Vec::new();
    let mut outages = view.outages.clone();
    for (step, t) in steps {
        let open = outages.iter().position(|o| o.step == step);
        if t.succeeded || t.other {
            if t.succeeded
                && let Some(i) = open
            {
                outages.remove(i);
            }
            continue;
        }
        let failures = t.files.len() + t.groups.len();
        if open.is_none() && failures < breaker.failures as usize && failures < pending(view, step)
        {
            continue;
        }
        let before = open.map(|i| outages.remove(i));
        let trips = before.as_ref().map_or(1, |o| o.trips + 1);
        let o = Outage {
            step,
            since: before.as_ref().map_or(now, |o| o.since),
            until: now.saturating_add(i64::try_from(breaker.delay_s(trips)).unwrap_or(i64::MAX)),
            trips,
            error: t.error.unwrap_or_default(),
        };
        let retry = |r: Option<Retry>| Retry {
            at: o.until,
            since: r.map_or(now, |r| r.since),
        };
        excuse(view, &t.files, &t.groups, retry, &mut out);
        outages.push(o);
    }
    if outages != view.outages {
        outages.sort_by_key(|o| o.step);
        out.push(Change::Outage(outages));
    }
    out
}

/// How much of `step` the dataset has not done yet: what a batch failing all of it failed
/// as a whole, however few (the one merged file of a small dataset, its catalog down).
fn pending(view: &DatasetView, step: Step) -> usize {
    use crate::file::FileState as F;
    use crate::group::GroupState as G;
    let files = |states: &[F]| {
        view.files
            .values()
            .filter(|f| states.contains(&f.state))
            .count()
    };
    let groups = |states: &[G]| {
        view.groups
            .values()
            .filter(|g| states.contains(&g.state))
            .count()
    };
    match step {
        Step::Stage => files(&[F::Registered, F::Staging, F::StageFailed]),
        Step::Reco => files(&[F::Staged, F::RecoSubmitted, F::RecoFailed]),
        Step::Merge => groups(&[G::Merging]),
        Step::Declare => groups(&[G::Merged, G::Declaring]),
        Step::Delete => files(&[F::Merged, F::Deleting]),
    }
}

/// The error a failure change records: on the change itself, or for a job's file, on it.
fn failure_error(c: &Change) -> Option<&str> {
    match c {
        Change::File { error, .. } | Change::Group { error, .. } => error.as_deref(),
        _ => None,
    }
}

/// The excuses of the failed `files` and `groups`: their attempt given back, and `retry`
/// of what each had recorded as when it is tried again.
fn excuse(
    view: &DatasetView,
    files: &[FileId],
    groups: &[GroupNo],
    retry: impl Fn(Option<Retry>) -> Retry,
    out: &mut Vec<Change>,
) {
    for f in files.iter().filter_map(|id| view.files.get(id)) {
        let c = Change::file(f, FileEvent::Excuse);
        out.extend(c.map(|c| c.with_retry(Some(retry(f.retry)))));
    }
    for g in groups.iter().filter_map(|no| view.groups.get(no)) {
        let c = Change::group(g, GroupEvent::Excuse);
        out.extend(c.map(|c| c.with_retry(Some(retry(g.retry)))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::FileState;
    use crate::{Action, DatasetName, Outcome, Policy, RawFile, operator, outcome, plan_within};

    const BREAKER: Breaker = Breaker {
        failures: 3,
        first_delay_s: 600,
        max_delay_s: 1800,
    };

    fn policy() -> Policy {
        Policy {
            outage: BREAKER,
            ..Policy::default()
        }
    }

    /// Five files, the first four asked to stage (a budget of four) at time 0.
    fn staging() -> DatasetView {
        let files = (1..=5).map(|i| RawFile::new(FileId(i), format!("raw_{i}"), 10));
        let mut v = DatasetView::new(DatasetName::new("p17.wz").unwrap(), files);
        v.apply(&operator::unlock(&v, None).unwrap()).unwrap();
        let mut budget = crate::Budget {
            stage_requests: Some(4),
            ..crate::Budget::UNLIMITED
        };
        let p = plan_within(&v, &policy(), 0, |_| true, &mut budget);
        v.apply(&p.changes).unwrap();
        v
    }

    fn stage_requests(v: &DatasetView, now: i64) -> Vec<FileId> {
        let p = plan_within(
            v,
            &policy(),
            now,
            |_| true,
            &mut crate::Budget::UNLIMITED.clone(),
        );
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Stage { file, .. } => Some(*file),
                _ => None,
            })
            .collect()
    }

    /// Records `outcomes` at `now` as a driver does: each, then the breaker's verdict.
    fn record(v: &mut DatasetView, outcomes: &[Outcome], now: i64) {
        let mut batch = Vec::new();
        for o in outcomes {
            let c = outcome::record(v, o).unwrap();
            v.apply(&c).unwrap();
            batch.extend(c);
        }
        let more = trip(v, &batch, &BREAKER, now);
        v.apply(&more).unwrap();
    }

    fn refused(ids: &[u64], class: ErrorClass) -> Vec<Outcome> {
        ids.iter()
            .map(|i| Outcome::StageFailed {
                file: FileId(*i),
                reason: "HTTP 503".into(),
                class,
            })
            .collect()
    }

    #[test]
    fn a_step_failing_as_a_whole_waits_as_a_whole_and_spends_no_attempts() {
        let mut v = staging();
        record(&mut v, &refused(&[1, 2, 3, 4], ErrorClass::Transient), 100);
        let o = v.out(Step::Stage, 100).expect("the tape system is out");
        assert_eq!((o.since, o.until, o.trips), (100, 700, 1));
        assert_eq!(o.error, "transient: HTTP 503");
        for i in 1..=4 {
            let f = &v.files[&FileId(i)];
            assert_eq!((f.state, f.tried()), (FileState::StageFailed, 0), "{f:?}");
        }
        // Nothing of the step is tried before its next try, not even the file never tried.
        assert_eq!(stage_requests(&v, 699), []);
        assert_eq!(stage_requests(&v, 700).len(), 5);
        assert_eq!(crate::retry::waiting(&v, 100).map(|w| w.1), Some(700));
    }

    #[test]
    fn a_step_still_out_waits_twice_as_long_and_the_first_success_ends_it() {
        let mut v = staging();
        record(&mut v, &refused(&[1, 2, 3, 4], ErrorClass::Transient), 100);
        let p = plan_within(
            &v,
            &policy(),
            700,
            |_| true,
            &mut crate::Budget::UNLIMITED.clone(),
        );
        v.apply(&p.changes).unwrap();
        // Two failures alone would not open it; with it open they keep it open.
        record(&mut v, &refused(&[1, 2], ErrorClass::Transient), 700);
        let o = v.out(Step::Stage, 700).unwrap();
        assert_eq!((o.since, o.until, o.trips), (100, 1900, 2));
        assert_eq!(v.files[&FileId(1)].tried(), 0);
        record(&mut v, &[Outcome::Staged { file: FileId(3) }], 800);
        assert!(v.outages.is_empty(), "a success ends the outage");
        assert_eq!(BREAKER.delay_s(5), 1800, "capped");
    }

    #[test]
    fn failures_that_are_few_mixed_or_not_transient_follow_the_retry_policy_alone() {
        for (ids, class) in [
            (&[1, 2][..], ErrorClass::Transient),
            (&[1, 2, 3, 4], ErrorClass::Unknown),
            (&[1, 2, 3, 4], ErrorClass::Permanent),
        ] {
            let mut v = staging();
            record(&mut v, &refused(ids, class), 100);
            assert!(v.outages.is_empty(), "{ids:?} {class:?}");
        }
        let mut v = staging();
        let mut mixed = refused(&[1, 2, 3], ErrorClass::Transient);
        mixed.push(Outcome::Staged { file: FileId(4) });
        record(&mut v, &mixed, 100);
        assert!(v.outages.is_empty());
        assert_eq!(v.files[&FileId(1)].tried(), 1, "an attempt spent");
        // Off: nothing trips.
        let v = staging();
        assert!(trip(&v, &[], &Breaker::default(), 0).is_empty());
    }

    #[test]
    fn fewer_failures_are_an_outage_when_they_are_all_the_dataset_had_left_of_the_step() {
        let mut v = staging();
        let staged: Vec<Outcome> = (1..=3)
            .map(|i| Outcome::Staged { file: FileId(i) })
            .collect();
        record(&mut v, &staged, 50);
        // One failure of the two files left (the fifth still waits for its request).
        record(&mut v, &refused(&[4], ErrorClass::Transient), 100);
        assert!(v.outages.is_empty());
        let p = plan_within(
            &v,
            &policy(),
            100,
            |_| true,
            &mut crate::Budget::UNLIMITED.clone(),
        );
        v.apply(&p.changes).unwrap();
        // Then both left fail together, fewer than three: the step failed as a whole.
        record(&mut v, &refused(&[4, 5], ErrorClass::Transient), 200);
        assert_eq!(v.out(Step::Stage, 200).map(|o| o.until), Some(800));
        assert_eq!(
            v.files[&FileId(4)].tried(),
            1,
            "only the excused attempt is given back"
        );
    }

    #[test]
    fn exactly_the_threshold_of_failures_opens_the_breaker() {
        let mut v = staging();
        record(&mut v, &refused(&[1, 2, 3], ErrorClass::Transient), 100);
        assert!(v.out(Step::Stage, 100).is_some(), "3 of 3 needed");
    }

    #[test]
    fn each_event_is_the_success_or_failure_of_its_step() {
        use crate::job::{JobKey, JobState};
        use crate::view::{Job, MergeGroup};
        let file = |state, event| {
            let mut f = RawFile::new(FileId(1), "raw", 10);
            f.state = state;
            verdict(&Change::file(&f, event).unwrap())
        };
        use FileEvent as F;
        use FileState as S;
        assert_eq!(file(S::Staging, F::StageDone), Some((Step::Stage, true)));
        assert_eq!(file(S::Staging, F::StageFail), Some((Step::Stage, false)));
        assert_eq!(
            file(S::RecoSubmitted, F::RecoDone),
            Some((Step::Reco, true))
        );
        assert_eq!(
            file(S::RecoSubmitted, F::RecoFail),
            Some((Step::Reco, false))
        );
        assert_eq!(file(S::Deleting, F::Clean), Some((Step::Delete, true)));
        assert_eq!(
            file(S::Deleting, F::DeleteFail),
            Some((Step::Delete, false))
        );
        assert_eq!(file(S::Registered, F::RequestStage), None);
        let group = |state, event| {
            let mut g = MergeGroup::new(GroupNo(1), vec![FileId(1)], 10);
            g.state = state;
            verdict(&Change::group(&g, event).unwrap())
        };
        use crate::group::GroupState as G;
        use GroupEvent as E;
        assert_eq!(group(G::Merging, E::Finish), Some((Step::Merge, true)));
        assert_eq!(group(G::Merging, E::JobFail), Some((Step::Merge, false)));
        assert_eq!(group(G::Declaring, E::Declare), Some((Step::Declare, true)));
        assert_eq!(
            group(G::Declaring, E::DeclareFail),
            Some((Step::Declare, false))
        );
        assert_eq!(group(G::Merging, E::SubmitMerge), None);
        let submitted = |subject| {
            let key = JobKey {
                subject,
                attempt: 1,
            };
            let j = Job {
                key,
                state: JobState::Reserved,
                batch_id: None,
                exit_code: None,
                error: None,
            };
            verdict(&Change::job(&j, JobEvent::Submit).unwrap())
        };
        assert_eq!(
            submitted(JobSubject::Reco(FileId(1))),
            Some((Step::Reco, true))
        );
        assert_eq!(
            submitted(JobSubject::Merge(GroupNo(1))),
            Some((Step::Merge, true))
        );
        let services: Vec<&str> = Step::ALL.iter().map(|s| s.service()).collect();
        assert_eq!(
            services,
            [
                "tape system",
                "batch system",
                "batch system",
                "catalog",
                "storage system"
            ]
        );
    }

    #[test]
    fn a_catalog_refusing_every_declaration_gives_the_groups_their_attempt_back() {
        use crate::group::GroupState as G;
        use crate::view::MergeGroup;
        let mut v = staging();
        for no in 1..=2 {
            let mut g = MergeGroup::new(GroupNo(no), vec![FileId(u64::from(no))], 10);
            g.state = G::Declaring;
            g.attempts = 2;
            g.attempt_base = 1;
            v.groups.insert(g.no, g);
        }
        let failed: Vec<Outcome> = (1..=2)
            .map(|no| Outcome::DeclareFailed {
                group: GroupNo(no),
                reason: "HTTP 503".into(),
                class: ErrorClass::Transient,
            })
            .collect();
        // Two of the two declarations left: the catalog is out.
        record(&mut v, &failed, 100);
        assert_eq!(v.out(Step::Declare, 100).map(|o| o.until), Some(700));
        for g in v.groups.values() {
            assert_eq!(
                (g.state, g.attempts, g.attempt_base),
                (G::Merged, 2, 2),
                "{g:?}"
            );
            assert_eq!(g.retry.map(|r| (r.at, r.since)), Some((700, 100)));
        }
        // An excuse never gives back an attempt that was not made.
        let g = &v.groups[&GroupNo(1)];
        let again = Change::group(g, GroupEvent::Excuse).unwrap();
        v.apply(std::slice::from_ref(&again)).unwrap();
        assert_eq!(v.groups[&GroupNo(1)].attempt_base, 2);
        let mut f = RawFile::new(FileId(9), "raw_9", 10);
        (f.state, f.attempts, f.attempt_base) = (FileState::StageFailed, 1, 1);
        assert_eq!(FileEvent::Excuse.base_after(f.attempts, f.attempt_base), 1);
    }

    #[test]
    fn outages_are_one_a_step_in_order_and_only_a_coming_try_waits() {
        let o = |step, until| Outage {
            step,
            since: 0,
            until,
            trips: 1,
            error: String::new(),
        };
        let twice = Change::Outage(vec![o(Step::Stage, 10), o(Step::Stage, 20)]);
        assert!(twice.check().is_err());
        let unordered = Change::Outage(vec![o(Step::Declare, 10), o(Step::Stage, 20)]);
        assert!(unordered.check().is_err());
        assert!(
            Change::Outage(vec![o(Step::Stage, 10), o(Step::Declare, 20)])
                .check()
                .is_ok()
        );
        let mut v = staging();
        v.outages = vec![o(Step::Stage, 50), o(Step::Declare, 80)];
        assert_eq!(crate::retry::waiting(&v, 40).map(|w| w.1), Some(50));
        assert_eq!(
            crate::retry::waiting(&v, 50).map(|w| w.1),
            Some(80),
            "a try that came"
        );
        assert_eq!(crate::retry::waiting(&v, 80), None);
        // A breaker needs a wait to be on.
        let mut p = Policy::default();
        p.outage.first_delay_s = 0;
        assert!(p.validate().is_ok(), "off, the delay does not matter");
        p.outage.failures = 1;
        assert!(p.validate().is_err());
        p.outage.first_delay_s = 1;
        assert!(p.validate().is_ok());
    }

    #[test]
    fn outages_are_stored_as_lines_and_a_corrupt_line_is_named() {
        let o = Outage {
            step: Step::Declare,
            since: 10,
            until: 20,
            trips: 2,
            error: "transient: HTTP 503\nService Unavailable".into(),
        };
        let stored = Outage::store(std::slice::from_ref(&o)).unwrap();
        let back = Outage::parse_stored(&stored).unwrap();
        assert_eq!(back[0].error, "transient: HTTP 503 Service Unavailable");
        assert_eq!((back[0].step, back[0].until), (Step::Declare, 20));
        assert_eq!(Outage::store(&[]), None);
        let err = Outage::parse_stored("declare 10 soon 1 x").unwrap_err();
        assert!(err.contains("soon"), "{err}");
        assert!(Outage::parse_stored("tape 1 2 3 x").is_err());
    }
}
