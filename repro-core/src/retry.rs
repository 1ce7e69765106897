//! When a failed attempt is tried again.
//!
//! Each phase has a [`Backoff`]: how many attempts, the delay after the first failure,
//! how it grows (times `factor` per failure, up to `max_delay_s`, give or take `jitter`
//! so that a thousand files failed together do not come back in the same second), and a
//! window: a file or merge group is failed for good only when its attempts are spent
//! *and* it has been failing for longer than the window. When each may next be tried
//! ([`Retry`]) is recorded with the failure ([`schedule`]) and stored with the row, so
//! racing hosts and restarts agree; the planner leaves it alone until then ([`Due`]).
//!
//! Time is a value here: seconds since the epoch, given by the caller (the sim's clock
//! in a simulation). The core reads no clock.

use std::collections::BTreeMap;

use crate::file::FileEvent;
use crate::group::GroupEvent;
use crate::state::Phase;
use crate::view::{Change, DatasetView};

/// When a failed step may be tried again, and since when it has been failing (the start
/// of its window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Retry {
    /// Not before this time (seconds since the epoch).
    pub at: i64,
    /// Failing since this time: the first failure since the step last succeeded.
    pub since: i64,
}

/// How one phase's failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Backoff {
    /// Attempts per step; `None`: the policy's `max_attempts`.
    pub attempts: Option<u32>,
    /// Seconds from the first failure to the next attempt; 0: the next run.
    pub first_delay_s: u64,
    /// Each further failure multiplies the delay by this (at least 1).
    pub factor: u32,
    /// The delay never grows past this.
    pub max_delay_s: u64,
    /// Each delay is this many percent longer or shorter (0 to 100), the same for the same
    /// file and attempt on every host.
    pub jitter_percent: u32,
    /// Seconds a step keeps being retried after its first failure, even with its attempts
    /// spent; 0: the attempts alone decide.
    pub window_s: u64,
}

impl Default for Backoff {
    /// Retried at the next run, up to the policy's attempts: no delay, no window.
    fn default() -> Self {
        Backoff {
            attempts: None,
            first_delay_s: 0,
            factor: 2,
            max_delay_s: 6 * 3600,
            jitter_percent: 0,
            window_s: 0,
        }
    }
}

/// What a failed step may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Try again now.
    Now,
    /// Wait until then.
    At(i64),
    /// Attempts spent and the window over: failed for good.
    GiveUp,
}

impl Backoff {
    /// Whether a failure waits (a delay) or is kept trying (a window).
    pub fn waits(&self) -> bool {
        self.first_delay_s > 0 || self.window_s > 0
    }

    /// The delay after the `failures`-th failure of a step (1 for the first), jittered by
    /// `key` (the same key, the same delay).
    pub fn delay_s(&self, failures: u32, key: u64) -> u64 {
        let grown = (1..failures.max(1)).fold(self.first_delay_s, |d, _| {
            d.saturating_mul(u64::from(self.factor.max(1)))
        });
        let base = grown.min(self.max_delay_s.max(self.first_delay_s));
        let spread = base * u64::from(self.jitter_percent.min(100)) / 100;
        if spread == 0 {
            return base;
        }
        base - spread + mix(key) % (2 * spread + 1)
    }

    /// What a step that made `tried` of its `attempts` (since the last re-arm), and
    /// recorded `retry` with its last failure, may do at `now`.
    pub fn due(&self, attempts: u32, tried: u32, retry: Option<Retry>, now: i64) -> Due {
        let in_window = retry.is_some_and(|r| now < r.since.saturating_add(secs(self.window_s)));
        if tried >= attempts && !in_window {
            return Due::GiveUp;
        }
        match retry {
            Some(r) if now < r.at => Due::At(r.at),
            _ => Due::Now,
        }
    }

    /// When a step that failed its `tried`-th attempt at `now` is tried again; `before`
    /// is what its previous failure recorded, if it was failing already.
    pub fn next(&self, tried: u32, before: Option<Retry>, now: i64, key: u64) -> Retry {
        Retry {
            at: now.saturating_add(secs(self.delay_s(tried, key))),
            since: before.map_or(now, |r| r.since),
        }
    }
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// SplitMix64's finaliser: a well-spread number from a key.
fn mix(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The backoff of every phase: one for all, and the phases that differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backoffs {
    /// Every phase's, unless it has its own.
    pub all: Backoff,
    /// The phases with their own.
    pub phase: BTreeMap<Phase, Backoff>,
}

impl Backoffs {
    /// The backoff of `phase`.
    pub fn of(&self, phase: Phase) -> &Backoff {
        self.phase.get(&phase).unwrap_or(&self.all)
    }
}

/// The phase whose backoff a failure event follows, if it is one.
fn failure_phase(change: &Change) -> Option<Phase> {
    match change {
        Change::File { event, .. } => match event {
            FileEvent::StageFail => Some(Phase::Prestage),
            FileEvent::RecoFail => Some(Phase::Reco),
            FileEvent::DeleteFail => Some(Phase::Cleanup),
            _ => None,
        },
        Change::Group {
            event: GroupEvent::JobFail | GroupEvent::DeclareFail,
            ..
        } => Some(Phase::Merge),
        _ => None,
    }
}

/// Stamps each failure among `changes` (recorded from `view`) with when it may be tried
/// again under `backoffs`, failed at `now`. A phase with neither a delay nor a window
/// retries at the next run on its attempts alone: nothing to stamp.
pub fn schedule(view: &DatasetView, changes: &mut [Change], backoffs: &Backoffs, now: i64) {
    for c in changes {
        let Some(phase) = failure_phase(c) else {
            continue;
        };
        let b = backoffs.of(phase);
        if !b.waits() {
            continue;
        }
        match c {
            Change::File {
                id,
                attempts,
                retry,
                ..
            } => {
                let Some(f) = view.files.get(id) else {
                    continue;
                };
                let tried = attempts.saturating_sub(f.attempt_base);
                let key = id.0.wrapping_mul(31).wrapping_add(u64::from(*attempts));
                *retry = Some(b.next(tried, f.retry, now, key));
            }
            Change::Group {
                no,
                attempts,
                retry,
                ..
            } => {
                let Some(g) = view.groups.get(no) else {
                    continue;
                };
                let tried = attempts.saturating_sub(g.attempt_base);
                // Apart from the files' keys: the number in the high half.
                let key = u64::from(no.0)
                    .rotate_left(32)
                    .wrapping_add(u64::from(*attempts));
                *retry = Some(b.next(tried, g.retry, now, key));
            }
            _ => {}
        }
    }
}

/// What of `view` waits to be retried at `now`: how many files and groups, and the
/// earliest time one of them (or a step found out, [`crate::outage`]) is due.
pub fn waiting(view: &DatasetView, now: i64) -> Option<(u64, i64)> {
    let times = view
        .files
        .values()
        .filter_map(|f| f.retry)
        .chain(view.groups.values().filter_map(|g| g.retry))
        .map(|r| r.at)
        .filter(|at| *at > now);
    let rows = times.fold(None, |acc, at| match acc {
        None => Some((1, at)),
        Some((n, first)) => Some((n + 1, first.min(at))),
    });
    let out = view
        .outages
        .iter()
        .map(|o| o.until)
        .filter(|at| *at > now)
        .min();
    match (rows, out) {
        (Some((n, first)), out) => Some((n, out.map_or(first, |o| first.min(o)))),
        (None, out) => out.map(|o| (0, o)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six jittered delays, as every version must draw them.
    const PINNED: [u64; 6] = [600, 740, 924, 691, 884, 1238];

    fn b(first: u64, factor: u32, max: u64, jitter: u32, window: u64) -> Backoff {
        Backoff {
            attempts: Some(3),
            first_delay_s: first,
            factor,
            max_delay_s: max,
            jitter_percent: jitter,
            window_s: window,
        }
    }

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let b = b(60, 2, 300, 0, 0);
        let d: Vec<u64> = (1..=5).map(|n| b.delay_s(n, 7)).collect();
        assert_eq!(d, [60, 120, 240, 300, 300]);
        assert_eq!(Backoff::default().delay_s(3, 7), 0, "no delay by default");
    }

    #[test]
    fn a_delay_alone_or_a_window_alone_makes_a_failure_wait() {
        assert!(!Backoff::default().waits());
        assert!(b(60, 2, 60, 0, 0).waits());
        assert!(b(0, 2, 0, 0, 60).waits());
    }

    #[test]
    fn jitter_of_one_second_takes_each_of_the_three_values_and_no_other() {
        let one = b(100, 1, 100, 1, 0);
        let d: std::collections::BTreeSet<u64> = (0..200).map(|k| one.delay_s(1, k)).collect();
        assert_eq!(d.into_iter().collect::<Vec<_>>(), [99, 100, 101]);
        // The same draw for the same key, on every host and in every version: the
        // keys' spread is part of what is stored.
        let pinned: Vec<u64> = (0..6)
            .map(|k| b(1000, 1, 1000, 50, 0).delay_s(1, k))
            .collect();
        assert_eq!(pinned, PINNED);
    }

    #[test]
    fn jitter_spreads_delays_within_its_bounds_the_same_on_every_host() {
        let b = b(1000, 1, 1000, 10, 0);
        let d: Vec<u64> = (0..1000).map(|k| b.delay_s(1, k)).collect();
        assert!(d.iter().all(|d| (900..=1100).contains(d)), "{d:?}");
        let distinct: std::collections::BTreeSet<_> = d.iter().collect();
        assert!(
            distinct.len() > 150,
            "a thousand files come back spread out"
        );
        assert_eq!(b.delay_s(1, 42), b.delay_s(1, 42));
    }

    #[test]
    fn a_step_waits_for_its_time_and_gives_up_only_with_attempts_spent_and_window_over() {
        let b = b(60, 2, 3600, 0, 7200);
        let r = Some(Retry {
            at: 160,
            since: 100,
        });
        assert_eq!(b.due(3, 1, r, 150), Due::At(160));
        assert_eq!(b.due(3, 1, r, 160), Due::Now);
        // Attempts spent, but failing for less than the window: tried again when due.
        assert_eq!(b.due(3, 3, r, 7000), Due::Now);
        assert_eq!(b.due(3, 3, r, 7300), Due::GiveUp);
        // Without a window, attempts alone decide; without a retry time, now.
        let plain = Backoff::default();
        assert_eq!(plain.due(3, 3, r, 120), Due::GiveUp);
        assert_eq!(plain.due(3, 2, None, 0), Due::Now);
        // An attempts override wins over the policy's cap.
        let policy = crate::Policy {
            max_attempts: 9,
            retry: Backoffs {
                all: b,
                phase: BTreeMap::new(),
            },
            ..crate::Policy::default()
        };
        assert_eq!(policy.due(Phase::Reco, 3, None, 0), Due::GiveUp);
    }

    #[test]
    fn the_window_starts_at_the_first_failure_and_is_kept_by_the_next() {
        let b = b(60, 2, 3600, 0, 0);
        let first = b.next(1, None, 1000, 1);
        assert_eq!(
            first,
            Retry {
                at: 1060,
                since: 1000
            }
        );
        let second = b.next(2, Some(first), 1100, 1);
        assert_eq!(
            second,
            Retry {
                at: 1220,
                since: 1000
            }
        );
    }
}
