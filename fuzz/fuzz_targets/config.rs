//! Arbitrary text as the configuration file: never a panic; a refusal names the file; an
//! accepted configuration yields a policy and resolves its paths without a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use repro_run::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("config fuzz.toml"), "{msg}");
        }
        Ok(mut config) => {
            let policy = config.policy();
            assert!(policy.max_attempts >= 1, "{policy:?}");
            assert!(policy.merge_group_files >= 1, "{policy:?}");
            config.resolve_paths(Path::new("/base"));
        }
    }
});
