//! Arbitrary output of the command backend's site tools (`submit`, `job_status`): never a
//! panic; a submission either carries a plausible batch id printed by the tool or fails
//! the attempt with a reason naming the tool; a status line maps to one report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repro_core::Outcome;
use repro_core::file::FileId;
use repro_core::job::{JobKey, JobSubject};
use repro_run::backend::command::{Reported, parse_status, submission};
use repro_run::backend::process::Ran;

fuzz_target!(|data: &[u8]| {
    let Some((&code, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (stdout, stderr) = text.split_once('\u{0}').unwrap_or((&text, ""));
    let job = JobKey {
        subject: JobSubject::Reco(FileId(1)),
        attempt: 1,
    };
    let ran = Ran {
        code: (code != 255).then_some(i32::from(code)),
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
    };
    match submission(job, "site-submit", Ok(ran)) {
        Outcome::Submitted { job: j, batch_id } => {
            assert_eq!(j, job);
            assert!(stdout.contains(&batch_id), "{batch_id:?}");
            assert!(!batch_id.is_empty() && !batch_id.contains(char::is_whitespace));
        }
        Outcome::JobFailed { job: j, reason, .. } => {
            assert_eq!(j, job);
            assert!(
                reason.starts_with("site-submit printed no job id"),
                "{reason}"
            );
        }
        other => panic!("a submission became {other:?}"),
    }
    match parse_status(stdout) {
        Some(Reported::Failed(_, reason)) => {
            assert!(stdout.contains(reason.split(' ').next().unwrap_or("")))
        }
        Some(_) | None => {}
    }
});
