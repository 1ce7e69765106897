//! Arbitrary strings into every stored-word parser: never a panic, and whatever parses
//! prints back to exactly the same text (one word, one meaning).
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_core::{
    CleanupWord, DatasetName, FileState, GroupState, JobState, LockWord, MergeWord, Phase,
    PrestageWord, RecoWord,
};

fn round_trip<T: std::str::FromStr + std::fmt::Display>(s: &str) {
    if let Ok(v) = s.parse::<T>() {
        assert_eq!(v.to_string(), s);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<LockWord>(s);
    round_trip::<PrestageWord>(s);
    round_trip::<RecoWord>(s);
    round_trip::<MergeWord>(s);
    round_trip::<CleanupWord>(s);
    round_trip::<FileState>(s);
    round_trip::<JobState>(s);
    round_trip::<GroupState>(s);
    round_trip::<Phase>(s);
    round_trip::<DatasetName>(s);
    // Five words separated by '|' as a stored row: accepted only if it is a legal state.
    let cols: Vec<&str> = s.split('|').collect();
    if let [l, p, r, m, c] = cols[..]
        && let (Ok(lock), Ok(prestage), Ok(reco), Ok(merge), Ok(cleanup)) =
            (l.parse(), p.parse(), r.parse(), m.parse(), c.parse())
    {
        let columns = repro_core::Columns {
            lock,
            prestage,
            reco,
            merge,
            cleanup,
        };
        if let Ok(status) = repro_core::Status::from_columns(columns) {
            assert_eq!(status.columns(), columns);
        }
    }
});
