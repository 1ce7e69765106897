//! The compact id sets of bulk history rows (`repro_db::idset`): any text, as a corrupted or
//! hand-edited row could hold it, reads as exactly the ids the row says or is an error,
//! never a panic or a huge allocation; any ids written read back as themselves.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use repro_db::idset::{decode, encode};

#[derive(Debug, Arbitrary)]
enum Input {
    Text(String, u16),
    Ids(Vec<u32>),
}

fuzz_target!(|input: Input| match input {
    Input::Text(text, n) => {
        if let Ok(ids) = decode(&text, u64::from(n)) {
            assert_eq!(ids.len(), usize::from(n));
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{text:?} -> {ids:?}");
            assert_eq!(decode(&encode(&ids), u64::from(n)), Ok(ids));
        }
    }
    Input::Ids(raw) => {
        let ids: Vec<i64> = raw.iter().map(|&i| i64::from(i)).collect();
        let mut want = ids.clone();
        want.sort_unstable();
        want.dedup();
        if !want.is_empty() {
            assert_eq!(decode(&encode(&ids), want.len() as u64), Ok(want));
        }
    }
});
