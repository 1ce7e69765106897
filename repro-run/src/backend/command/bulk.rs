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
fn parse_answer(stdout: &str) -> HashMap<&str, (String, String)> {
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

/// A raw file in a bulk call: its id, its LFN and, for a deletion, its TMB file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Item<'a> {
    pub(super) file: FileId,
    pub(super) lfn: &'a str,
    pub(super) tmb: Option<&'a TmbFile>,
}

impl Item<'_> {
    /// Its line in the list: the LFN, and a space and the TMB file when it has one.
    fn line(&self) -> String {
        match self.tmb {
            Some(t) => format!("{} {}", self.lfn, t.path),
            None => self.lfn.to_owned(),
        }
    }
}

/// What a bulk call said of one file: the call's failure, or the word and reason the
/// tool printed for it (`None` when it left the file out).
type Answer<'a> = Result<Option<&'a (String, String)>, &'a Failed>;

impl CommandBackend {
    /// Runs the bulk `step` over `items` in calls of `bulk_size`, each file's outcome what
    /// `each` makes of the answer for it.
    fn bulk(
        &self,
        step: Step,
        t: &[String],
        dataset: &DatasetName,
        items: &[Item<'_>],
        each: impl Fn(&Item<'_>, Answer<'_>) -> Option<Outcome>,
    ) -> Vec<Outcome> {
        let mut out = Vec::new();
        for chunk in items.chunks(self.cfg.bulk_size.max(1)) {
            let lines: Vec<String> = chunk.iter().map(Item::line).collect();
            match self.bulk_call(step, t, dataset, &lines) {
                Err(f) => out.extend(chunk.iter().filter_map(|i| each(i, Err(&f)))),
                Ok(stdout) => {
                    let answer = parse_answer(&stdout);
                    out.extend(chunk.iter().filter_map(|i| each(i, Ok(answer.get(i.lfn)))));
                }
            }
        }
        out
    }

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

    /// The failure of a file the tool named as `FAILED why` in `step`, classed by the
    /// step's rules; `None` for any other answer.
    fn named_failure(&self, step: Step, t: &[String], answer: Answer<'_>) -> Option<Failed> {
        match answer {
            Err(f) => Some(f.clone()),
            Ok(Some((word, why))) if word == "FAILED" => Some(Failed {
                class: self.class(step, None, why),
                reason: format!("{}: {why}", t.first().map_or("", String::as_str)),
            }),
            Ok(_) => None,
        }
    }

    /// Asks for `items` to be staged: a refused file fails, the others are staging (no
    /// outcome).
    pub(super) fn stage_bulk(
        &self,
        t: &[String],
        dataset: &DatasetName,
        items: &[Item<'_>],
    ) -> Vec<Outcome> {
        self.bulk(Step::StageBulk, t, dataset, items, |i, answer| {
            let f = self.named_failure(Step::StageBulk, t, answer)?;
            Some(Outcome::StageFailed {
                file: i.file,
                reason: f.reason,
                class: f.class,
            })
        })
    }

    /// Asks whether `items` are staged; a file the answer leaves out has no outcome (it
    /// is asked again), a word other than the three fails it.
    pub(super) fn stage_status_bulk(
        &self,
        t: &[String],
        dataset: &DatasetName,
        items: &[Item<'_>],
    ) -> Vec<Outcome> {
        let step = Step::StageStatusBulk;
        self.bulk(step, t, dataset, items, |i, answer| {
            let file = i.file;
            match answer {
                Ok(Some((word, _))) if word == "STAGED" => Some(Outcome::Staged { file }),
                Ok(Some((word, _))) if word == "PENDING" => None,
                Ok(Some((word, _))) if word != "FAILED" => Some(Outcome::StageFailed {
                    file,
                    reason: format!(
                        "{} answered {word:?} for {} (STAGED, PENDING or FAILED expected)",
                        t.first().map_or("", String::as_str),
                        i.lfn
                    ),
                    class: ErrorClass::Unknown,
                }),
                _ => self
                    .named_failure(step, t, answer)
                    .map(|f| Outcome::StageFailed {
                        file,
                        reason: f.reason,
                        class: f.class,
                    }),
            }
        })
    }

    /// Deletes `items`' intermediates: a file the tool names as failed fails, the others
    /// are deleted.
    pub(super) fn delete_bulk(
        &self,
        t: &[String],
        dataset: &DatasetName,
        items: &[Item<'_>],
    ) -> Vec<Outcome> {
        self.bulk(Step::DeleteBulk, t, dataset, items, |i, answer| {
            Some(match self.named_failure(Step::DeleteBulk, t, answer) {
                Some(f) => Outcome::DeleteFailed {
                    file: i.file,
                    reason: f.reason,
                    class: f.class,
                },
                None => Outcome::Deleted { file: i.file },
            })
        })
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
