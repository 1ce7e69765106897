//! What about a dataset needs a person, in words an operator acts on, each line with the
//! command that answers it.

use repro_core::file::FileState;
use repro_core::outage::Outage;
use repro_core::view::{GroupState, RawFile};
use repro_core::words::count;
use repro_core::{DatasetName, DatasetView, Phase};

/// The raw files that failed for good, by the phase they failed in, each with its last
/// error: "3 raw files failed for good in prestage (last: …), 1 in reco (last: …)".
/// `None` when there are none.
pub fn lost_files<'a>(files: impl IntoIterator<Item = &'a RawFile>) -> Option<String> {
    let mut by_phase: Vec<(Phase, u64, Option<&str>)> = Vec::new();
    for f in files.into_iter().filter(|f| f.state.failed_for_good()) {
        let phase = f.state.phase();
        match by_phase.iter_mut().find(|(p, ..)| *p == phase) {
            Some((_, n, last)) => {
                *n += 1;
                *last = f.current_error().or(*last);
            }
            None => by_phase.push((phase, 1, f.current_error())),
        }
    }
    by_phase.sort_by_key(|(p, ..)| *p);
    let parts: Vec<String> = by_phase
        .iter()
        .enumerate()
        .map(|(i, (phase, n, last))| {
            let last = last.unwrap_or("no reason recorded");
            if i == 0 {
                let what = count(*n, "raw file");
                format!("{what} failed for good in {phase} (last: {last})")
            } else {
                format!("{n} in {phase} (last: {last})")
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The answers to files lost for good: a retry, or accepting the loss.
pub fn lost_answer(name: &DatasetName) -> String {
    format!(
        "`repro retry {name}` gives them fresh attempts, or `repro accept {name} --reason \"why\"` accepts the loss"
    )
}

/// Why `view` needs a person, with the command that answers it; empty when it does not.
///
/// A phase that is `FAILED` comes first, with the error that made it so. Raw files that
/// failed for good ask for a person whatever the dataset's phase, even after `CLEANED`,
/// until they are retried or more of them than `accepted` (the losses an operator
/// accepted with `repro accept`) are left.
pub fn needs_a_person(view: &DatasetView, accepted: u64) -> Vec<String> {
    let name = &view.name;
    let mut out = Vec::new();
    let phase = view.status.state.phase();
    let lost = view.files.values().filter(|f| f.state.failed_for_good());
    let n_lost = lost.clone().count() as u64;
    if view.status.state.kind().is_failed() {
        let why = match phase {
            Phase::Prestage | Phase::Reco => lost_files(lost.clone()),
            Phase::Merge => Some(stuck_groups(view)),
            Phase::Cleanup => Some(undeleted(view)),
        };
        let why = why.unwrap_or_else(|| "no reason recorded".into());
        out.push(format!(
            "{phase} FAILED: {why}; fix the cause, then `repro retry {name}`"
        ));
        if matches!(phase, Phase::Prestage | Phase::Reco) {
            return out;
        }
    }
    if n_lost > accepted
        && let Some(what) = lost_files(lost)
    {
        out.push(format!("{what}; {}", lost_answer(name)));
    }
    out
}

/// Merge groups that failed for good or could not be declared, with the last error.
fn stuck_groups(view: &DatasetView) -> String {
    let stuck: Vec<_> = view
        .groups
        .values()
        .filter(|g| matches!(g.state, GroupState::FailedForGood | GroupState::Merged))
        .collect();
    let last = stuck
        .iter()
        .rev()
        .find_map(|g| g.last_error.as_deref())
        .unwrap_or("no reason recorded");
    format!(
        "{} failed for good or could not be declared (last: {last})",
        count(stuck.len() as u64, "merge group")
    )
}

/// Intermediate files whose deletion ran out of attempts, with the last error.
fn undeleted(view: &DatasetView) -> String {
    let stuck: Vec<_> = view
        .files
        .values()
        .filter(|f| f.state == FileState::Merged)
        .collect();
    let last = stuck
        .iter()
        .rev()
        .find_map(|f| f.current_error())
        .unwrap_or("no reason recorded");
    format!(
        "{} could not be deleted (last: {last})",
        count(stuck.len() as u64, "intermediate file")
    )
}

/// What of a listed dataset needs a person, from its counts alone (no file is read), with
/// the command that answers it; `None` when nothing does.
pub fn from_counts(d: &repro_db::DatasetSummary) -> Option<String> {
    if !d.needs_a_person() {
        return None;
    }
    let kind = d.status.state.kind();
    let name = &d.name;
    let files = count(d.files.failed_for_good(), "raw file");
    Some(if kind.is_failed() {
        format!(
            "{} FAILED ({files} failed for good); see its page for why, fix the cause, then `repro retry {name}`",
            kind.phase()
        )
    } else {
        format!(
            "{files} failed for good; see its page for why; {}",
            lost_answer(name)
        )
    })
}

/// One line for a step found out: `catalog (declare) unavailable since 2026-12-07 14:02
/// UTC (transient: HTTP 503), next try 2026-12-07 14:32 UTC`.
pub fn outage_line(o: &Outage) -> String {
    format!(
        "{} ({}) unavailable since {} ({}), next try {}",
        o.step.service(),
        o.step,
        utc(o.since),
        o.error,
        utc(o.until)
    )
}

/// When the first of what waits is to be tried again (what `repro plan` says, from the
/// dataset's row when a tick settled it).
pub fn next_retry(first: i64) -> String {
    format!("waiting to be tried again, the first at {}", utc(first))
}

/// Seconds since the epoch as `2026-12-07 14:20 UTC`.
pub fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// Runs the `[alerts]` command once for each of `alerts`; what went wrong with it, one line
/// each (the alerts themselves are printed all the same).
pub fn send(config: &crate::config::AlertsConfig, alerts: &[&crate::driver::Alert]) -> Vec<String> {
    let Some(command) = &config.command else {
        return Vec::new();
    };
    let argv0 = command.first().cloned().unwrap_or_default();
    let timeout = std::time::Duration::from_secs(config.timeout_s);
    alerts
        .iter()
        .filter_map(|a| {
            let line = a.to_string();
            let env = [
                ("REPRO_ALERT", line.as_str()),
                ("REPRO_DATASET", a.dataset.as_str()),
                ("REPRO_CLASS", a.class.as_str()),
            ];
            match crate::backend::process::run_with(command, &env, timeout) {
                Ok(r) if r.ok() => None,
                Ok(r) => Some(r.failure(&argv0)),
                Err(e) => Some(e.to_string()),
            }
        })
        .collect()
}
