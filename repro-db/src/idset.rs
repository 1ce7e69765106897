//! The set of row ids one history row is about, written compactly: ascending, runs of
//! consecutive ids as `first-last`, single ids alone, separated by commas
//! (`"101-5000,5002,5004-9000"`). A dataset's files are registered together, so a bulk
//! move of 50,000 of them is usually one run, a few bytes; a move of scattered ids (the
//! failed ones, retried) costs a few bytes per id, never more than the ids themselves.

use std::fmt::Write;

/// Writes `ids` (in any order, repeats ignored) as a set.
pub fn encode(ids: &[i64]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut last = first;
        while i + 1 < sorted.len() && sorted[i + 1] == last + 1 {
            i += 1;
            last = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = if first == last {
            write!(out, "{first}")
        } else {
            write!(out, "{first}-{last}")
        };
        i += 1;
    }
    out
}

/// Reads a set [`encode`] wrote of `n` ids, ascending; a text it could not have written
/// (an empty part, a number that does not parse, a range or a part not above the one
/// before) or holding other than `n` ids is an error saying what was wrong. (`n` also
/// bounds what a corrupt text can make this allocate.)
pub fn decode(text: &str, n: u64) -> Result<Vec<i64>, String> {
    let mut out: Vec<i64> = Vec::new();
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a, part)?, number(b, part)?),
            None => {
                let n = number(part, part)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!("range {part:?} runs backwards"));
        }
        if out.last().is_some_and(|&prev| first <= prev) {
            return Err(format!("{part:?} is not above the ids before it"));
        }
        let have = out.len() as u64;
        if (last - first) as u64 >= n.saturating_sub(have) {
            return Err(format!("it holds more than the row's {n} ids"));
        }
        out.extend(first..=last);
    }
    if out.len() as u64 != n {
        return Err(format!("it holds {} ids, the row says {n}", out.len()));
    }
    Ok(out)
}

fn number(s: &str, part: &str) -> Result<i64, String> {
    // Only digits: a sign would make `1--2` ambiguous, and ids are positive.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{part:?} is not an id or a range of ids"));
    }
    s.parse()
        .map_err(|_| format!("{part:?} holds a number too large for an id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runs_are_written_as_ranges() {
        assert_eq!(encode(&[3, 1, 2, 7, 9, 10, 2]), "1-3,7,9-10");
        assert_eq!(encode(&[42]), "42");
        assert_eq!(decode("1-3,7,9-10", 6), Ok(vec![1, 2, 3, 7, 9, 10]));
        assert!(decode("1-3,7,9-10", 5).is_err());
        assert!(decode("1-3,7,9-10", 7).is_err());
        assert!(decode("1-9000000000000000000", 2).is_err());
    }

    #[test]
    fn text_it_could_not_have_written_is_refused() {
        for bad in [
            "",
            ",",
            "1,",
            "a",
            "1-",
            "-1",
            "3-1",
            "1,1",
            "5,2",
            "1-3,2",
            "1--2",
            "+1",
            "99999999999999999999",
        ] {
            assert!(decode(bad, 3).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn a_set_reads_back_as_its_ids_in_order(ids in proptest::collection::vec(0i64..5_000, 1..300)) {
            let mut want = ids.clone();
            want.sort_unstable();
            want.dedup();
            let text = encode(&ids);
            prop_assert_eq!(decode(&text, want.len() as u64), Ok(want.clone()));
            // Never longer than the ids written out one by one.
            let plain: usize = want.iter().map(|i| i.to_string().len() + 1).sum();
            prop_assert!(text.len() < plain);
        }
    }
}
