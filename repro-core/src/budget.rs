//! How much new work a run may start: the free part of each limit a site or the campaign
//! sets, given to the planner as data.
//!
//! The core stays pure: a driver counts what is in flight, subtracts it from the limits,
//! and hands the rest to [`crate::plan::plan_within`] as a [`Budget`]. The planner takes
//! from the budget for each stage request and job submission it plans, never more than is
//! left, and says in [`crate::Plan::waiting`] what it held back and for which [`Limit`].
//! One budget passed through the datasets of a site in priority order gives the highest
//! priority the first share.

use std::collections::BTreeMap;
use std::fmt;

/// One limit a campaign can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Stage requests in flight.
    StageRequests,
    /// Bytes staged and not yet cleaned up: the disk cache.
    DiskBytes,
    /// Reco jobs in flight (reserved, submitted or running).
    RecoJobs,
    /// Merge jobs in flight.
    MergeJobs,
    /// Job submissions in one run, so one tick does not flood a scheduler.
    Submissions,
}

impl Limit {
    /// Every limit.
    pub const ALL: &'static [Limit] = &[
        Limit::StageRequests,
        Limit::DiskBytes,
        Limit::RecoJobs,
        Limit::MergeJobs,
        Limit::Submissions,
    ];

    /// What the limit is about, for messages: "waiting: 1,200 files for stage requests".
    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::StageRequests => "stage requests",
            Limit::DiskBytes => "disk budget",
            Limit::RecoJobs => "reco jobs in flight",
            Limit::MergeJobs => "merge jobs in flight",
            Limit::Submissions => "submissions per run",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The free part of each limit; `None` is no limit.
///
/// The disk budget is taken a dataset at a time: a dataset's prestage starts only when all
/// its raw files fit in what is free (every phase waits for the one before it, so a
/// dataset staged in part could never go on), and its bytes count until it is `CLEANED`.
/// A dataset bigger than the whole budget starts when nothing else uses the disk
/// (`disk_idle`), alone, so that no dataset waits forever; and a dataset that waits for
/// disk closes it for the rest of the run, so one after it (lower in priority) does not
/// overtake it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Budget {
    /// Stage requests that may still be made.
    pub stage_requests: Option<u64>,
    /// Bytes that may still be given to datasets starting prestage.
    pub disk_bytes: Option<u64>,
    /// Nothing uses the disk budget now.
    pub disk_idle: bool,
    /// Reco jobs that may still be started.
    pub reco_jobs: Option<u64>,
    /// Merge jobs that may still be started.
    pub merge_jobs: Option<u64>,
    /// Submissions (reco and merge) this run may still make.
    pub submissions: Option<u64>,
}

/// What a plan held back, per limit that held it: raw files for staging and reco, merge
/// groups for merging.
pub type Waiting = BTreeMap<Limit, u64>;

/// `have >= need` for an optional limit.
fn fits(have: Option<u64>, need: u64) -> bool {
    have.is_none_or(|h| h >= need)
}

fn spend(have: &mut Option<u64>, n: u64) {
    if let Some(h) = have {
        *h -= n;
    }
}

impl Budget {
    /// No limit at all: a plan within it is the whole plan.
    pub const UNLIMITED: Budget = Budget {
        stage_requests: None,
        disk_bytes: None,
        disk_idle: false,
        reco_jobs: None,
        merge_jobs: None,
        submissions: None,
    };

    /// Whether nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.stage_requests.is_none()
            && self.disk_bytes.is_none()
            && self.reco_jobs.is_none()
            && self.merge_jobs.is_none()
            && self.submissions.is_none()
    }

    /// Takes the disk a dataset of `bytes` of raw files needs to start prestage, or says
    /// it must wait. With the disk idle, a dataset bigger than what is free starts anyway.
    pub fn take_disk(&mut self, bytes: u64) -> Result<(), Limit> {
        let Some(free) = self.disk_bytes else {
            return Ok(());
        };
        if free < bytes && !self.disk_idle {
            // Closed for the rest of the run: a smaller dataset after this one (lower in
            // priority) does not overtake it.
            self.disk_bytes = Some(0);
            return Err(Limit::DiskBytes);
        }
        self.disk_bytes = Some(free.saturating_sub(bytes));
        self.disk_idle = false;
        Ok(())
    }

    /// Takes one stage request, or says it must wait.
    pub fn take_stage(&mut self) -> Result<(), Limit> {
        if !fits(self.stage_requests, 1) {
            return Err(Limit::StageRequests);
        }
        spend(&mut self.stage_requests, 1);
        Ok(())
    }

    /// Takes one reco job and one submission, or names the limit without room.
    pub fn take_reco(&mut self) -> Result<(), Limit> {
        if !fits(self.reco_jobs, 1) {
            return Err(Limit::RecoJobs);
        }
        if !fits(self.submissions, 1) {
            return Err(Limit::Submissions);
        }
        spend(&mut self.reco_jobs, 1);
        spend(&mut self.submissions, 1);
        Ok(())
    }

    /// Takes one merge job and one submission, or names the limit without room.
    pub fn take_merge(&mut self) -> Result<(), Limit> {
        if !fits(self.merge_jobs, 1) {
            return Err(Limit::MergeJobs);
        }
        if !fits(self.submissions, 1) {
            return Err(Limit::Submissions);
        }
        spend(&mut self.merge_jobs, 1);
        spend(&mut self.submissions, 1);
        Ok(())
    }
}

/// What a plan takes its stage requests, jobs and disk from: one [`Budget`], or several
/// at once (`[Budget]`: a site's and the campaign's total), where a piece of work is
/// started only when every one of them has room for it and then takes from each.
pub trait Draw {
    /// Takes the disk for a dataset of `bytes` of raw files, or names the limit it waits for.
    fn take_disk(&mut self, bytes: u64) -> Result<(), Limit>;
    /// Takes one stage request.
    fn take_stage(&mut self) -> Result<(), Limit>;
    /// Takes one reco job and one submission.
    fn take_reco(&mut self) -> Result<(), Limit>;
    /// Takes one merge job and one submission.
    fn take_merge(&mut self) -> Result<(), Limit>;
}

impl Draw for Budget {
    fn take_disk(&mut self, bytes: u64) -> Result<(), Limit> {
        Budget::take_disk(self, bytes)
    }
    fn take_stage(&mut self) -> Result<(), Limit> {
        Budget::take_stage(self)
    }
    fn take_reco(&mut self) -> Result<(), Limit> {
        Budget::take_reco(self)
    }
    fn take_merge(&mut self) -> Result<(), Limit> {
        Budget::take_merge(self)
    }
}

/// Every budget or none: the first that has no room names the limit, and nothing is taken.
fn from_all(
    budgets: &mut [Budget],
    take: impl Fn(&mut Budget) -> Result<(), Limit>,
) -> Result<(), Limit> {
    for b in budgets.iter() {
        take(&mut b.clone())?;
    }
    for b in budgets.iter_mut() {
        take(b)?;
    }
    Ok(())
}

impl Draw for [Budget] {
    /// The dataset starts when each budget has room for it (or is idle); when one has not,
    /// that one closes for the rest of the run (those after the dataset in priority do not
    /// overtake it there) and the others stay open.
    fn take_disk(&mut self, bytes: u64) -> Result<(), Limit> {
        let room = |b: &Budget| b.disk_bytes.is_none_or(|free| free >= bytes || b.disk_idle);
        if self.iter().all(room) {
            return from_all(self, |b| b.take_disk(bytes));
        }
        for b in self.iter_mut().filter(|b| !room(b)) {
            let _closed = b.take_disk(bytes);
        }
        Err(Limit::DiskBytes)
    }
    fn take_stage(&mut self) -> Result<(), Limit> {
        from_all(self, Budget::take_stage)
    }
    fn take_reco(&mut self) -> Result<(), Limit> {
        from_all(self, Budget::take_reco)
    }
    fn take_merge(&mut self) -> Result<(), Limit> {
        from_all(self, Budget::take_merge)
    }
}

/// Limits as configured; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Stage requests in flight.
    pub stage_requests: Option<u64>,
    /// Bytes of raw files (of datasets whose prestage started) and TMB files not yet
    /// cleaned up. A dataset starts prestage only when its raw files fit in what is free;
    /// its TMB files, whose sizes are known only once written, count from then on, so the
    /// disk can hold more than this by the TMB files of running datasets.
    pub disk_bytes: Option<u64>,
    /// Reco jobs reserved, submitted or running.
    pub reco_jobs: Option<u64>,
    /// Merge jobs reserved, submitted or running.
    pub merge_jobs: Option<u64>,
    /// Job submissions in one run.
    pub submissions: Option<u64>,
}

/// What is in flight, counted against [`Limits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Raw files staging.
    pub stage_requests: u64,
    /// Bytes of raw files held on disk (or reserved for a running prestage).
    pub disk_bytes: u64,
    /// Bytes of TMB files not yet cleaned up.
    pub tmb_bytes: u64,
    /// Live reco jobs.
    pub reco_jobs: u64,
    /// Live merge jobs.
    pub merge_jobs: u64,
}

impl Usage {
    /// What one dataset has in flight.
    pub fn of(view: &crate::DatasetView) -> Usage {
        let mut u = Usage::default();
        let holding = Usage::holds_disk(view.status.state.kind());
        for f in view.files.values() {
            let tmb = f.tmb.as_ref().map_or(0, |t| t.size);
            u.add_files(f.state, holding, 1, f.size, tmb);
        }
        for j in view.jobs.values() {
            u.add_jobs(
                matches!(j.key.subject, crate::JobSubject::Reco(_)),
                j.state,
                1,
            );
        }
        u
    }

    /// Whether a dataset at `kind` holds disk for its raw files: from the start of its
    /// prestage until it is CLEANED, for every raw file it has or may still stage (a
    /// FAILED one keeps its share for the operator's retry).
    pub fn holds_disk(kind: crate::state::StageKind) -> bool {
        use crate::state::StageKind;
        !matches!(kind, StageKind::PrestageNotDone | StageKind::Cleaned)
    }

    /// Counts `n` raw files in `state` of a dataset that is `holding` disk
    /// ([`Usage::holds_disk`]), with `raw` bytes of raw files and `tmb` of their TMB files.
    pub fn add_files(
        &mut self,
        state: crate::FileState,
        holding: bool,
        n: u64,
        raw: u64,
        tmb: u64,
    ) {
        use crate::FileState as F;
        if state == F::Staging {
            self.stage_requests += n;
        }
        if holding && !matches!(state, F::Cleaned | F::StageFailedForGood) {
            self.disk_bytes = self.disk_bytes.saturating_add(raw);
        }
        // TMB files of any dataset, until cleaned.
        if state.has_tmb() && state != F::Cleaned {
            self.tmb_bytes = self.tmb_bytes.saturating_add(tmb);
        }
    }

    /// Counts `n` reco (`reco`) or merge jobs in `state`: the live ones are in flight.
    pub fn add_jobs(&mut self, reco: bool, state: crate::job::JobState, n: u64) {
        if !state.is_live() {
            return;
        }
        if reco {
            self.reco_jobs += n;
        } else {
            self.merge_jobs += n;
        }
    }

    /// What `after` no longer holds of this: each part that went down, by how much
    /// (0 for a part that went up).
    pub fn freed_by(self, after: Usage) -> Usage {
        Usage {
            stage_requests: self.stage_requests.saturating_sub(after.stage_requests),
            disk_bytes: self.disk_bytes.saturating_sub(after.disk_bytes),
            tmb_bytes: self.tmb_bytes.saturating_sub(after.tmb_bytes),
            reco_jobs: self.reco_jobs.saturating_sub(after.reco_jobs),
            merge_jobs: self.merge_jobs.saturating_sub(after.merge_jobs),
        }
    }

    /// The sum of two usages.
    pub fn plus(self, o: Usage) -> Usage {
        Usage {
            stage_requests: self.stage_requests + o.stage_requests,
            disk_bytes: self.disk_bytes.saturating_add(o.disk_bytes),
            tmb_bytes: self.tmb_bytes.saturating_add(o.tmb_bytes),
            reco_jobs: self.reco_jobs + o.reco_jobs,
            merge_jobs: self.merge_jobs + o.merge_jobs,
        }
    }
}

/// Limits per site: a site's own, or else the default for every site; and the total over
/// every site together.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SiteLimits {
    /// For every site without limits of its own (and datasets at no site).
    pub default: Limits,
    /// Per site.
    pub sites: BTreeMap<String, Limits>,
    /// Over all datasets of every site (and of none) together: a tape system or batch
    /// system the sites share. Work starts only within its site's limits and these.
    pub total: Limits,
}

impl SiteLimits {
    /// The limits of `site` (`None`: datasets registered at no site).
    pub fn of(&self, site: Option<&str>) -> Limits {
        site.and_then(|s| self.sites.get(s))
            .copied()
            .unwrap_or(self.default)
    }

    /// No limit anywhere.
    pub fn is_none(&self) -> bool {
        self.default.is_none() && self.sites.values().all(Limits::is_none) && self.total.is_none()
    }
}

impl Limits {
    /// No limits.
    pub fn is_none(&self) -> bool {
        *self == Limits::default()
    }

    /// What is free of each limit with `used` in flight, for one run.
    pub fn free(&self, used: &Usage) -> Budget {
        let left = |limit: Option<u64>, used: u64| limit.map(|l| l.saturating_sub(used));
        Budget {
            stage_requests: left(self.stage_requests, used.stage_requests),
            disk_bytes: left(
                self.disk_bytes,
                used.disk_bytes.saturating_add(used.tmb_bytes),
            ),
            disk_idle: used.disk_bytes == 0 && used.tmb_bytes == 0,
            reco_jobs: left(self.reco_jobs, used.reco_jobs),
            merge_jobs: left(self.merge_jobs, used.merge_jobs),
            submissions: self.submissions,
        }
    }

    /// Whether `used` is within every limit (submissions are per run, not in flight).
    pub fn admit(&self, used: &Usage) -> Result<(), Limit> {
        let over = |limit: Option<u64>, used: u64| limit.is_some_and(|l| used > l);
        if over(self.stage_requests, used.stage_requests) {
            return Err(Limit::StageRequests);
        }
        if over(self.reco_jobs, used.reco_jobs) {
            return Err(Limit::RecoJobs);
        }
        if over(self.merge_jobs, used.merge_jobs) {
            return Err(Limit::MergeJobs);
        }
        Ok(())
    }
}

/// Which budgets a batch of changes spends: the limits a store checks it against once it
/// is written and before it is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spends {
    /// It requests staging.
    pub stage: bool,
    /// It starts a prestage, which holds the disk for the dataset's raw files.
    pub disk: bool,
    /// It reserves reco jobs.
    pub reco: bool,
    /// It reserves merge jobs.
    pub merge: bool,
}

impl Spends {
    /// What `changes` spend.
    pub fn of(changes: &[crate::Change]) -> Spends {
        use crate::Change;
        use crate::file::FileEvent;
        let mut s = Spends::default();
        for c in changes {
            match c {
                Change::File {
                    event: FileEvent::RequestStage,
                    ..
                } => s.stage = true,
                Change::NewJob { key } => match key.subject {
                    crate::JobSubject::Reco(_) => s.reco = true,
                    crate::JobSubject::Merge(_) => s.merge = true,
                },
                Change::Dataset(m) if m.via() == crate::Transition::StartPrestage => {
                    s.disk = true;
                }
                _ => {}
            }
        }
        s
    }

    /// Whether it spends any budget.
    pub fn any(self) -> bool {
        self.stage || self.disk || self.reco || self.merge
    }
}

impl Limits {
    /// The limit a write that `spends` takes past, with what is then in flight and the
    /// limit; `None` if it stays within them. `used` is what the datasets these limits are
    /// for (a site's, or all) hold with the write in; `others`, needed when it spends
    /// disk, what the other datasets among them hold: a dataset that starts prestage may
    /// go past the disk budget only when no other dataset holds disk (one bigger than the
    /// budget then runs alone). Without `others`, the others are taken to hold some.
    pub fn breach(
        &self,
        spends: Spends,
        used: &Usage,
        others: Option<&Usage>,
    ) -> Option<(Limit, u64, u64)> {
        let over = |limit: Limit, used: u64, max: Option<u64>| {
            max.filter(|&max| used > max).map(|max| (limit, used, max))
        };
        let counted = [
            (
                spends.stage,
                Limit::StageRequests,
                used.stage_requests,
                self.stage_requests,
            ),
            (spends.reco, Limit::RecoJobs, used.reco_jobs, self.reco_jobs),
            (
                spends.merge,
                Limit::MergeJobs,
                used.merge_jobs,
                self.merge_jobs,
            ),
        ];
        if let Some(b) = counted
            .into_iter()
            .filter(|(spent, ..)| *spent)
            .find_map(|(_, limit, used, max)| over(limit, used, max))
        {
            return Some(b);
        }
        if !spends.disk {
            return None;
        }
        let alone = others.is_some_and(|o| o.disk_bytes == 0 && o.tmb_bytes == 0);
        let total = used.disk_bytes.saturating_add(used.tmb_bytes);
        over(Limit::DiskBytes, total, self.disk_bytes).filter(|_| !alone)
    }
}

/// "waiting: 1,200 files for stage requests, 3 groups for merge jobs in flight".
pub fn describe(waiting: &Waiting) -> Option<String> {
    describe_where(waiting, |_| None)
}

/// [`describe`], each limit followed by where it held the work back when `scope` says
/// ("waiting: 1,200 files for stage requests at fnal, 3 merge groups for merge jobs in
/// flight over all sites").
pub fn describe_where(
    waiting: &Waiting,
    scope: impl Fn(Limit) -> Option<String>,
) -> Option<String> {
    if waiting.is_empty() {
        return None;
    }
    let parts: Vec<String> = waiting
        .iter()
        .map(|(limit, n)| {
            let what = match (limit, n) {
                (Limit::MergeJobs, 1) => "merge group",
                (Limit::MergeJobs, _) => "merge groups",
                (_, 1) => "file",
                _ => "files",
            };
            let at = scope(*limit).map(|s| format!(" {s}")).unwrap_or_default();
            format!("{} {what} for {limit}{at}", thousands(*n))
        })
        .collect();
    Some(format!("waiting: {}", parts.join(", ")))
}

impl Budget {
    /// Gives back what was `freed` since this budget was read (work that ended).
    /// Submissions are per run and are not given back.
    pub fn credit(&mut self, freed: &Usage) {
        let add = |left: &mut Option<u64>, n: u64| {
            if let Some(l) = left {
                *l = l.saturating_add(n);
            }
        };
        add(&mut self.stage_requests, freed.stage_requests);
        add(
            &mut self.disk_bytes,
            freed.disk_bytes.saturating_add(freed.tmb_bytes),
        );
        add(&mut self.reco_jobs, freed.reco_jobs);
        add(&mut self.merge_jobs, freed.merge_jobs);
    }

    /// Whether `limit` has nothing left here (a closed disk included).
    pub fn is_spent(&self, limit: Limit) -> bool {
        let left = match limit {
            Limit::StageRequests => self.stage_requests,
            Limit::DiskBytes => self.disk_bytes,
            Limit::RecoJobs => self.reco_jobs,
            Limit::MergeJobs => self.merge_jobs,
            Limit::Submissions => self.submissions,
        };
        left == Some(0)
    }
}

/// `1200` as `1,200`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_work_frees_is_given_back_to_the_limited_parts_of_a_budget_only() {
        let before = Usage {
            stage_requests: 5,
            disk_bytes: 1000,
            tmb_bytes: 50,
            reco_jobs: 4,
            merge_jobs: 1,
        };
        let after = Usage {
            stage_requests: 2,
            disk_bytes: 1000,
            tmb_bytes: 80,
            reco_jobs: 1,
            merge_jobs: 1,
        };
        let freed = before.freed_by(after);
        assert_eq!(
            freed,
            Usage {
                stage_requests: 3,
                reco_jobs: 3,
                ..Usage::default()
            },
            "a part that went up frees nothing"
        );
        let mut b = Budget {
            stage_requests: Some(1),
            reco_jobs: Some(0),
            disk_bytes: Some(10),
            submissions: Some(7),
            ..Budget::UNLIMITED
        };
        b.credit(&Usage {
            disk_bytes: 5,
            tmb_bytes: 2,
            ..freed
        });
        assert_eq!(b.stage_requests, Some(4));
        assert_eq!(b.reco_jobs, Some(3));
        assert_eq!(b.disk_bytes, Some(17), "raw and TMB bytes both free disk");
        assert_eq!(b.merge_jobs, None, "an unlimited part stays unlimited");
        assert_eq!(b.submissions, Some(7), "submissions are per run");
    }

    #[test]
    fn site_limits_are_none_only_when_nothing_anywhere_is_limited() {
        let some = Limits {
            merge_jobs: Some(1),
            ..Limits::default()
        };
        assert!(SiteLimits::default().is_none());
        let mut l = SiteLimits::default();
        l.sites.insert("fnal".into(), Limits::default());
        assert!(l.is_none(), "a site with no keys set limits nothing");
        for limited in [
            SiteLimits {
                default: some,
                ..SiteLimits::default()
            },
            SiteLimits {
                sites: [("fnal".to_owned(), some)].into(),
                ..SiteLimits::default()
            },
            SiteLimits {
                total: some,
                ..SiteLimits::default()
            },
        ] {
            assert!(!limited.is_none(), "{limited:?}");
        }
    }

    #[test]
    fn several_budgets_start_work_only_when_each_has_room_and_then_each_pays() {
        let site = Budget {
            reco_jobs: Some(3),
            submissions: Some(10),
            ..Budget::UNLIMITED
        };
        let total = Budget {
            reco_jobs: Some(2),
            stage_requests: Some(1),
            ..Budget::UNLIMITED
        };
        let mut both = [site, total];
        assert_eq!(Draw::take_reco(&mut both[..]), Ok(()));
        assert_eq!(Draw::take_reco(&mut both[..]), Ok(()));
        assert_eq!(
            Draw::take_reco(&mut both[..]),
            Err(Limit::RecoJobs),
            "the total is spent though the site has room"
        );
        assert_eq!(both[0].reco_jobs, Some(1), "the refused job took nothing");
        assert_eq!(both[0].submissions, Some(8));
        assert_eq!(both[1].reco_jobs, Some(0));
        assert_eq!(Draw::take_stage(&mut both[..]), Ok(()));
        assert_eq!(Draw::take_stage(&mut both[..]), Err(Limit::StageRequests));
        assert_eq!(both[0].stage_requests, None, "an unlimited budget stays so");
        let mut merges = [
            Budget {
                merge_jobs: Some(1),
                ..Budget::UNLIMITED
            },
            Budget {
                submissions: Some(0),
                ..Budget::UNLIMITED
            },
        ];
        assert_eq!(Draw::take_merge(&mut merges[..]), Err(Limit::Submissions));
        assert_eq!(merges[0].merge_jobs, Some(1));
    }

    #[test]
    fn a_dataset_waiting_for_one_budgets_disk_closes_that_one_only() {
        let roomy = Budget {
            disk_bytes: Some(100),
            ..Budget::UNLIMITED
        };
        let tight = Budget {
            disk_bytes: Some(5),
            ..Budget::UNLIMITED
        };
        let mut both = [roomy, tight];
        assert_eq!(Draw::take_disk(&mut both[..], 8), Err(Limit::DiskBytes));
        assert_eq!(both[0].disk_bytes, Some(100), "the roomy one stays open");
        assert_eq!(both[1].disk_bytes, Some(0), "the short one closes");
        let idle = Budget {
            disk_bytes: Some(5),
            disk_idle: true,
            ..Budget::UNLIMITED
        };
        let mut both = [roomy, idle];
        assert_eq!(
            Draw::take_disk(&mut both[..], 8),
            Ok(()),
            "an idle disk takes a dataset bigger than it, if the other has room"
        );
        assert_eq!(both[0].disk_bytes, Some(92));
        assert_eq!(both[1].disk_bytes, Some(0));
        assert!(!both[1].disk_idle);
        let mut one = [roomy];
        assert_eq!(Draw::take_disk(&mut one[..], 100), Ok(()));
        assert_eq!(one[0].disk_bytes, Some(0));
    }

    #[test]
    fn stage_requests_are_taken_one_by_one() {
        let mut b = Budget {
            stage_requests: Some(2),
            ..Budget::UNLIMITED
        };
        assert_eq!(b.take_stage(), Ok(()));
        assert_eq!(b.take_stage(), Ok(()));
        assert_eq!(b.take_stage(), Err(Limit::StageRequests));
        assert_eq!(b.stage_requests, Some(0));
    }

    #[test]
    fn disk_is_taken_a_dataset_at_a_time_and_an_idle_disk_takes_any_dataset() {
        let mut b = Budget {
            disk_bytes: Some(10),
            ..Budget::UNLIMITED
        };
        assert_eq!(b.take_disk(6), Ok(()));
        assert_eq!(b.take_disk(6), Err(Limit::DiskBytes));
        assert_eq!(
            b.take_disk(4),
            Err(Limit::DiskBytes),
            "a dataset that waits closes the disk to those after it"
        );
        let mut b = Budget {
            disk_bytes: Some(10),
            ..Budget::UNLIMITED
        };
        assert_eq!(b.take_disk(10), Ok(()));
        assert_eq!(b.disk_bytes, Some(0));
        let mut idle = Budget {
            disk_bytes: Some(10),
            disk_idle: true,
            ..Budget::UNLIMITED
        };
        assert_eq!(
            idle.take_disk(25),
            Ok(()),
            "too big for the budget, but alone"
        );
        assert_eq!((idle.disk_bytes, idle.disk_idle), (Some(0), false));
        assert_eq!(idle.take_disk(1), Err(Limit::DiskBytes));
    }

    #[test]
    fn jobs_take_their_kind_and_a_submission() {
        let mut b = Budget {
            reco_jobs: Some(5),
            submissions: Some(2),
            ..Budget::UNLIMITED
        };
        assert_eq!(b.take_reco(), Ok(()));
        assert_eq!(b.take_merge(), Ok(()));
        assert_eq!(b.take_reco(), Err(Limit::Submissions));
        assert_eq!(b.reco_jobs, Some(4), "a refused take spends nothing");
        let mut m = Budget {
            merge_jobs: Some(0),
            ..Budget::UNLIMITED
        };
        assert_eq!(m.take_merge(), Err(Limit::MergeJobs));
        let mut free = Budget::UNLIMITED;
        assert_eq!(free.take_reco(), Ok(()));
        assert!(free.is_unlimited(), "taking from no limit leaves no limit");
        assert!(Budget::default().is_unlimited());
        // Any one limit makes a budget limited.
        for one in [
            Budget {
                stage_requests: Some(1),
                ..Budget::UNLIMITED
            },
            Budget {
                disk_bytes: Some(1),
                ..Budget::UNLIMITED
            },
            Budget {
                reco_jobs: Some(1),
                ..Budget::UNLIMITED
            },
            Budget {
                merge_jobs: Some(1),
                ..Budget::UNLIMITED
            },
            Budget {
                submissions: Some(1),
                ..Budget::UNLIMITED
            },
        ] {
            assert!(!one.is_unlimited(), "{one:?}");
        }
    }

    #[test]
    fn a_spent_limit_is_one_with_nothing_left() {
        let b = Budget {
            stage_requests: Some(0),
            disk_bytes: Some(1),
            merge_jobs: Some(0),
            submissions: Some(0),
            ..Budget::UNLIMITED
        };
        assert!(b.is_spent(Limit::StageRequests));
        assert!(!b.is_spent(Limit::DiskBytes));
        assert!(!b.is_spent(Limit::RecoJobs), "no limit is never spent");
        assert!(b.is_spent(Limit::MergeJobs));
        assert!(b.is_spent(Limit::Submissions));
        let w: Waiting = [(Limit::StageRequests, 1200), (Limit::MergeJobs, 3)].into();
        assert_eq!(
            describe_where(&w, |l| (l == Limit::MergeJobs)
                .then(|| "over all sites".into()))
            .as_deref(),
            Some(
                "waiting: 1,200 files for stage requests, 3 merge groups for merge jobs in flight over all sites"
            )
        );
    }

    #[test]
    fn waiting_reads_as_a_sentence() {
        assert_eq!(describe(&Waiting::new()), None);
        let w = Waiting::from([(Limit::StageRequests, 1200), (Limit::MergeJobs, 3)]);
        assert_eq!(
            describe(&w).unwrap(),
            "waiting: 1,200 files for stage requests, 3 merge groups for merge jobs in flight"
        );
        let one = Waiting::from([(Limit::RecoJobs, 1), (Limit::MergeJobs, 1)]);
        assert_eq!(
            describe(&one).unwrap(),
            "waiting: 1 file for reco jobs in flight, 1 merge group for merge jobs in flight"
        );
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }
}
