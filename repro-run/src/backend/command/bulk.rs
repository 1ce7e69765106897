//! The command backend's bulk steps: one call for many raw files (a tape system's bulk
//! stage request, its bulk status query, a bulk deletion), with the files listed in a file
//! (`{files}`) and an answer of one line per file: `LFN WORD [reason]`.
//!
//! Exit 0 means a stage request is accepted, or a deletion done, for every file the answer
//! does not name as `FAILED`; a file a status answer leaves out is not lost: it is asked
//! about again on the next poll. A call that fails (exit, timeout) fails each of its files.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use repro_core::{DatasetName, ErrorClass, FileId, Outcome, TmbFile};

use super::{CommandBackend, Failed};
use crate::backend::template::Step;

/// Names each list file of this process apart.
static LISTS: AtomicU64 = AtomicU64::new(0);

/// A tool's answer for each file it named: the word after the LFN and the rest of the line.
/// Lines that name no file, or only a file, are left out.
pub(super) fn parse_answer(stdout: &str) -> HashMap<&str, (String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let lfn = words.next()?;
            let word = words.next()?.to_ascii_uppercase();
            Some((lfn, (word, words.collect::<Vec<_>>().join(" "))))
        })
        .collect()
}

impl CommandBackend {
    /// Runs the bulk `step` on `lines` (one file's line each) for `dataset`: the tool's
    /// stdout, or why the call failed.
    fn bulk_call(
        &self,
        step: Step,
        template: &[String],
        dataset: &DatasetName,
        lines: &[String],
    ) -> Result<String, Failed> {
        let n = LISTS.fetch_add(1, Ordering::SeqCst);
        let name = format!(
            "{}.{}.{}.{n}",
            dataset.as_str(),
            step.name(),
            std::process::id()
        );
        let list = self.layout.list(&name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        super::mkdir_for(&list).map_err(Failed::unknown)?;
        std::fs::write(&list, text)
            .map_err(|e| Failed::unknown(format!("cannot write {}: {e}", list.display())))?;
        let path = list.display().to_string();
        let ran = self.step(
            step,
            template,
            &[("dataset", dataset.as_str()), ("files", &path)],
        );
        // The list is the call's alone; a leftover is harmless, so a failure to remove it
        // is not the call's.
        let _ = std::fs::remove_file(&list);
        ran.map(|r| r.stdout)
    }

    /// Asks for `files` to be staged in calls of `bulk_size`: a refused file fails, the
    /// others are staging (no outcome).
    pub(super) fn stage_bulk(
        &self,
        t: &[String],
        dataset: &DatasetName,
        files: &[(FileId, &str)],
    ) -> Vec<Outcome> {
        let argv0 = t.first().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for chunk in files.chunks(self.cfg.bulk_size.max(1)) {
            let lines: Vec<String> = chunk.iter().map(|(_, lfn)| lfn.to_string()).collect();
            match self.bulk_call(Step::StageBulk, t, dataset, &lines) {
                Err(f) => out.extend(chunk.iter().map(|(file, _)| Outcome::StageFailed {
                    file: *file,
                    reason: f.reason.clone(),
                    class: f.class,
                })),
                Ok(stdout) => {
                    let answer = parse_answer(&stdout);
                    for (file, lfn) in chunk {
                        if let Some((word, why)) = answer.get(lfn)
                            && word == "FAILED"
                        {
                            out.push(Outcome::StageFailed {
                                file: *file,
                                class: self.class(Step::StageBulk, None, why),
                                reason: format!("{argv0}: {why}"),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Asks whether `files` are staged in calls of `bulk_size`; a file the answer leaves
    /// out has no outcome (it is asked again), a word other than the three fails it.
    pub(super) fn stage_status_bulk(
        &self,
        t: &[String],
        dataset: &DatasetName,
        files: &[(FileId, &str)],
    ) -> Vec<Outcome> {
        let argv0 = t.first().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for chunk in files.chunks(self.cfg.bulk_size.max(1)) {
            let lines: Vec<String> = chunk.iter().map(|(_, lfn)| lfn.to_string()).collect();
            let stdout = match self.bulk_call(Step::StageStatusBulk, t, dataset, &lines) {
                Ok(stdout) => stdout,
                Err(f) => {
                    out.extend(chunk.iter().map(|(file, _)| Outcome::StageFailed {
                        file: *file,
                        reason: f.reason.clone(),
                        class: f.class,
                    }));
                    continue;
                }
            };
            let answer = parse_answer(&stdout);
            for (file, lfn) in chunk {
                let file = *file;
                let Some((word, why)) = answer.get(lfn) else {
                    continue;
                };
                out.extend(match word.as_str() {
                    "STAGED" => Some(Outcome::Staged { file }),
                    "PENDING" => None,
                    "FAILED" => Some(Outcome::StageFailed {
                        file,
                        class: self.class(Step::StageStatusBulk, None, why),
                        reason: format!("{argv0}: {why}"),
                    }),
                    _ => Some(Outcome::StageFailed {
                        file,
                        reason: format!(
                            "{argv0} answered {word:?} for {lfn} (STAGED, PENDING or FAILED expected)"
                        ),
                        class: ErrorClass::Unknown,
                    }),
                });
            }
        }
        out
    }

    /// Deletes `files`' intermediates in calls of `bulk_size`: a file the tool names as
    /// failed fails, the others are deleted.
    pub(super) fn delete_bulk(
        &self,
        t: &[String],
        dataset: &DatasetName,
        files: &[(FileId, &str, Option<&TmbFile>)],
    ) -> Vec<Outcome> {
        let argv0 = t.first().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for chunk in files.chunks(self.cfg.bulk_size.max(1)) {
            let lines: Vec<String> = chunk
                .iter()
                .map(|(_, lfn, tmb)| match tmb {
                    Some(t) => format!("{lfn} {}", t.path),
                    None => lfn.to_string(),
                })
                .collect();
            let answer = match self.bulk_call(Step::DeleteBulk, t, dataset, &lines) {
                Ok(stdout) => stdout,
                Err(f) => {
                    out.extend(chunk.iter().map(|(file, ..)| Outcome::DeleteFailed {
                        file: *file,
                        reason: f.reason.clone(),
                        class: f.class,
                    }));
                    continue;
                }
            };
            let answer = parse_answer(&answer);
            for (file, lfn, _) in chunk {
                out.push(match answer.get(lfn) {
                    Some((word, why)) if word == "FAILED" => Outcome::DeleteFailed {
                        file: *file,
                        class: self.class(Step::DeleteBulk, None, why),
                        reason: format!("{argv0}: {why}"),
                    },
                    _ => Outcome::Deleted { file: *file },
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::config::{CommandConfig, ErrorRules};
    use repro_core::{Action, Poll};

    /// A command backend whose `key` bulk step is `script` (`sh -c`, the list as `$1`),
    /// in `dir`, `bulk_size` files a call.
    fn backend(dir: &std::path::Path, key: &str, script: &str, bulk_size: usize) -> CommandBackend {
        let t = Some(vec![
            "sh".into(),
            "-c".into(),
            script.into(),
            "tool".into(),
            "{files}".into(),
        ]);
        let mut cfg = CommandConfig {
            workdir: dir.to_owned(),
            bulk_size,
            ..CommandConfig::default()
        };
        match key {
            "stage_bulk" => cfg.stage_bulk = t,
            "stage_status_bulk" => cfg.stage_status_bulk = t,
            _ => cfg.delete_bulk = t,
        }
        cfg.errors.insert(
            "all".into(),
            ErrorRules {
                transient_exit: vec![75],
                permanent: vec!["no such file".into()],
                ..ErrorRules::default()
            },
        );
        CommandBackend::new(cfg)
    }

    fn ds() -> DatasetName {
        DatasetName::new("p17.bulk").unwrap()
    }

    fn stage(i: u64) -> Action {
        Action::Stage {
            file: FileId(i),
            lfn: format!("/raw/f{i}"),
            attempt: 1,
        }
    }

    #[test]
    fn a_bulk_stage_request_is_one_call_per_chunk_and_fails_only_the_files_it_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let script = format!(
            "cat \"$1\" >> {log}; echo --- >> {log}; grep -x /raw/f2 \"$1\" | sed 's/$/ FAILED no such file/'",
            log = log.display()
        );
        let b = backend(dir.path(), "stage_bulk", &script, 2);
        let actions: Vec<Action> = (1..=5).map(stage).collect();
        let out = b.perform(&ds(), &actions).unwrap();
        assert_eq!(
            out,
            vec![Outcome::StageFailed {
                file: FileId(2),
                reason: "sh: no such file".into(),
                class: ErrorClass::Permanent,
            }]
        );
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls, "/raw/f1\n/raw/f2\n---\n/raw/f3\n/raw/f4\n---\n/raw/f5\n---\n",
            "three calls of at most two files, one LFN a line"
        );
        // The lists are the calls' alone: none is left behind.
        let lists = dir.path().join("lists");
        assert_eq!(std::fs::read_dir(lists).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_bulk_call_fails_each_of_its_files_classed_by_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path(), "stage_bulk", "echo busy >&2; exit 75", 10);
        let out = b.perform(&ds(), &[stage(1), stage(2)]).unwrap();
        assert_eq!(out.len(), 2);
        for o in out {
            assert!(
                matches!(&o, Outcome::StageFailed { class: ErrorClass::Transient, reason, .. } if reason.contains("busy")),
                "{o:?}"
            );
        }
    }

    #[test]
    fn a_bulk_status_answers_each_file_and_a_file_left_out_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let script = "printf '/raw/f1 STAGED\\n/raw/f2 pending\\n\\n/raw/f4 FAILED tape no such file\\n/raw/f5 WHAT\\n/raw/other STAGED\\n'";
        let b = backend(dir.path(), "stage_status_bulk", script, 100);
        let polls: Vec<Poll> = (1..=5)
            .map(|i| Poll::Stage {
                file: FileId(i),
                lfn: format!("/raw/f{i}"),
            })
            .collect();
        let mut out = b.poll(&ds(), &polls).unwrap();
        out.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out.contains(&Outcome::Staged { file: FileId(1) }));
        assert!(out.contains(&Outcome::StageFailed {
            file: FileId(4),
            reason: "sh: tape no such file".into(),
            class: ErrorClass::Permanent,
        }));
        assert!(out.iter().any(|o| matches!(o,
            Outcome::StageFailed { file: FileId(5), class: ErrorClass::Unknown, reason }
                if reason.contains("\"WHAT\"") && reason.contains("/raw/f5"))));
    }

    #[test]
    fn a_bulk_deletion_lists_each_file_with_its_tmb_and_fails_only_those_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("asked");
        let script = format!(
            "cp \"$1\" {}; echo '/raw/f2 FAILED permission denied'",
            copy.display()
        );
        let b = backend(dir.path(), "delete_bulk", &script, 10);
        let delete = |i: u64, tmb: Option<&str>| Action::Delete {
            file: FileId(i),
            lfn: format!("/raw/f{i}"),
            tmb: tmb.map(|p| TmbFile::new(p, 1)),
            attempt: 1,
        };
        let out = b
            .perform(&ds(), &[delete(1, Some("/tmb/f1.tmb")), delete(2, None)])
            .unwrap();
        assert_eq!(
            out,
            vec![
                Outcome::Deleted { file: FileId(1) },
                Outcome::DeleteFailed {
                    file: FileId(2),
                    reason: "sh: permission denied".into(),
                    class: ErrorClass::Unknown,
                },
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "/raw/f1 /tmb/f1.tmb\n/raw/f2\n"
        );
    }
}
