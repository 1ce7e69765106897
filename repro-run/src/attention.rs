//! What about a dataset needs a person, in words an operator acts on.

use repro_core::file::FileState;
use repro_core::view::GroupState;
use repro_core::{DatasetView, Phase};

/// Why `view` needs a person, with the command that fixes it; empty when it does not.
///
/// A phase that is `FAILED` comes first, with the error that made it so; files or merge
/// groups that failed for good while the phase goes on come after.
pub fn needs_a_person(view: &DatasetView) -> Vec<String> {
    let name = &view.name;
    let mut out = Vec::new();
    let kind = view.status.state.kind();
    let failed_files: Vec<_> = view
        .files
        .values()
        .filter(|f| f.state.failed_for_good())
        .collect();
    let last_file_error = failed_files
        .iter()
        .rev()
        .find_map(|f| f.current_error())
        .unwrap_or("no reason recorded");
    let phase = view.status.state.phase();
    let failed_phase = kind.is_failed();
    if failed_phase {
        let why = match phase {
            Phase::Prestage | Phase::Reco => format!(
                "{} raw file(s) failed for good (last: {last_file_error})",
                failed_files.len()
            ),
            Phase::Merge => {
                // Merging failed for good, or declaring ran out of attempts.
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
                    "{} merge group(s) failed for good or could not be declared (last: {last})",
                    stuck.len()
                )
            }
            Phase::Cleanup => {
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
                    "{} intermediate file(s) could not be deleted (last: {last})",
                    stuck.len()
                )
            }
        };
        out.push(format!(
            "{phase} FAILED: {why}; fix the cause, then `repro retry {name}`"
        ));
    } else if !failed_files.is_empty() && matches!(phase, Phase::Prestage | Phase::Reco) {
        out.push(format!(
            "{} raw file(s) failed for good in {phase} (last: {last_file_error}); `repro retry {name}` gives them fresh attempts",
            failed_files.len()
        ));
    }
    out
}

/// The `FAILED` phase of a listed dataset, from its counts alone (no file is read), with
/// the command that fixes it; `None` when no phase failed.
pub fn failed_phase(d: &repro_db::DatasetSummary) -> Option<String> {
    let kind = d.status.state.kind();
    if !kind.is_failed() {
        return None;
    }
    let failed =
        d.files.get(FileState::StageFailedForGood) + d.files.get(FileState::RecoFailedForGood);
    let name = &d.name;
    Some(format!(
        "{} FAILED ({failed} raw file(s) failed for good); see its page for why, fix the cause, then `repro retry {name}`",
        kind.phase()
    ))
}
