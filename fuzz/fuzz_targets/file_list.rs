//! Arbitrary text as a dataset's file list: never a panic; a refusal names the list (and
//! the line, when one is at fault); an accepted list has unique, non-empty names without
//! whitespace or control characters, and printed back as `LFN SIZE` lines it parses to
//! exactly the same files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_run::filelist::{MAX_LFN, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text, "fuzz.list") {
        Err(e) => assert!(e.to_string().starts_with("fuzz.list"), "{e}"),
        Ok(files) => {
            assert!(!files.is_empty());
            let mut seen = std::collections::HashSet::new();
            for f in &files {
                assert!(!f.lfn.is_empty() && f.lfn.len() <= MAX_LFN, "{:?}", f.lfn);
                assert!(!f.lfn.contains(char::is_whitespace), "{:?}", f.lfn);
                assert!(!f.lfn.contains(char::is_control), "{:?}", f.lfn);
                assert!(!f.lfn.contains('#'), "{:?}", f.lfn);
                assert!(i64::try_from(f.size).is_ok());
                assert!(seen.insert(f.lfn.as_str()), "{:?} twice", f.lfn);
            }
            let printed: String = files
                .iter()
                .map(|f| format!("{} {}\n", f.lfn, f.size))
                .collect();
            assert_eq!(parse(&printed, "again").as_ref(), Ok(&files));
        }
    }
});
