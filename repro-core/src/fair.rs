//! The order in which a run gives datasets budget, so that one big sample does not starve
//! the others.
//!
//! Highest priority first, always. Within one priority, the sample furthest below its
//! weighted share of the work in flight goes first: samples are ordered by their files in
//! flight (staging, or in a live reco job) divided by their weight, lowest first, and each
//! sample's datasets by the order given (the oldest first). The order is decided afresh
//! each run from what is in flight, so it needs no memory: a sample that got the budget in
//! one run has more in flight in the next and lets the others go first. Over runs each
//! sample with due work holds about its weight's share of what a limit lets through, and
//! a sample with nothing in flight is never behind one that has work in flight.

use std::collections::BTreeMap;

use crate::SampleName;

/// Weights per sample; a sample not listed, and the datasets in no sample, weigh 1.
pub type Weights = BTreeMap<SampleName, u32>;

/// One dataset as the run order sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// Its priority: higher goes first.
    pub priority: i32,
    /// Its sample, if any (the datasets in none are one group of their own).
    pub sample: Option<&'a SampleName>,
    /// Its files in flight: staging, or in a live reco job.
    pub in_flight: u64,
}

/// The weight of `sample` (at least 1).
pub fn weight(weights: &Weights, sample: Option<&SampleName>) -> u32 {
    sample
        .and_then(|s| weights.get(s))
        .copied()
        .unwrap_or(1)
        .max(1)
}

/// The order in which a run plans `claims` (given oldest first), as indices into it:
/// highest priority first; within a priority, the sample with the fewest files in flight
/// per unit of weight first; then the order given.
pub fn run_order(claims: &[Claim<'_>], weights: &Weights) -> Vec<usize> {
    let mut flight: BTreeMap<(i32, Option<&SampleName>), u64> = BTreeMap::new();
    for c in claims {
        let f = flight.entry((c.priority, c.sample)).or_default();
        *f = f.saturating_add(c.in_flight);
    }
    // in_flight(a) / weight(a) against in_flight(b) / weight(b), without division.
    let share = |c: &Claim<'_>, other: &Claim<'_>| {
        u128::from(flight[&(c.priority, c.sample)]) * u128::from(weight(weights, other.sample))
    };
    let mut order: Vec<usize> = (0..claims.len()).collect();
    order.sort_by(|&a, &b| {
        let (ca, cb) = (&claims[a], &claims[b]);
        cb.priority
            .cmp(&ca.priority)
            .then_with(|| share(ca, cb).cmp(&share(cb, ca)))
            .then(a.cmp(&b))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(s: &str) -> SampleName {
        SampleName::new(s).unwrap()
    }

    #[test]
    fn a_sample_below_its_share_goes_before_a_big_one_of_the_same_priority_only() {
        let (big, small) = (sample("big"), sample("small"));
        let claims = [
            Claim {
                priority: 0,
                sample: Some(&big),
                in_flight: 30,
            },
            Claim {
                priority: 0,
                sample: Some(&big),
                in_flight: 10,
            },
            Claim {
                priority: 5,
                sample: Some(&big),
                in_flight: 99,
            },
            Claim {
                priority: 0,
                sample: Some(&small),
                in_flight: 5,
            },
            Claim {
                priority: 0,
                sample: None,
                in_flight: 0,
            },
        ];
        let even = Weights::new();
        assert_eq!(run_order(&claims, &even), vec![2, 4, 3, 0, 1]);
        // Weighted 10 to 1, big's 40 in flight are 4 a unit of weight, below small's 5.
        let weights: Weights = [(big.clone(), 10)].into();
        assert_eq!(run_order(&claims, &weights), vec![2, 4, 0, 1, 3]);
        assert_eq!(weight(&weights, Some(&small)), 1);
        assert_eq!(weight(&[(small.clone(), 0)].into(), Some(&small)), 1);
    }
}
