//! Arbitrary text as what `sbatch`, `squeue`, `sacct` and `scontrol` print: never a panic;
//! every batch id taken from it is a plausible id that was in the text; every state maps
//! to a meaning, and a failure's reason says it came from Slurm.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_run::backend::command::parse_batch_id;
use repro_run::backend::slurm::{
    Meaning, SlurmJob, meaning, parse_sacct, parse_scontrol, parse_squeue,
};

fn plausible(id: &str, text: &str) {
    assert!(text.contains(id), "{id:?} is not in the output");
    assert!(id.chars().any(|c| c.is_ascii_digit()), "{id:?}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "{id:?}"
    );
}

fn judged(job: &SlurmJob) {
    if let Meaning::Failed(why, _) = meaning(job) {
        assert!(why.starts_with("slurm: "), "{why}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(id) = parse_batch_id(text) {
        plausible(&id, text);
    }
    for (id, job) in parse_squeue(text) {
        plausible(&id, text);
        assert!(!job.state.is_empty());
        judged(&job);
    }
    for (id, (name, job)) in parse_sacct(text) {
        assert!(!id.is_empty() && text.contains(&id));
        assert!(text.contains(&name));
        judged(&job);
    }
    if let Some(job) = parse_scontrol(text) {
        assert!(text.contains(&format!("JobState={}", job.state)));
        judged(&job);
    }
});
