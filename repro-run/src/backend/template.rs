//! The templated steps of the command and Slurm backends: each step's key in the
//! configuration, the placeholders it fills, and the check that a template asks for no
//! other. A typo such as `{ouptut}` is a configuration error when the file is read, not a
//! batch job writing a file named `{ouptut}`.

use crate::config::{CommandConfig, SlurmConfig};

/// Declares [`Step`] once: each step with its configuration key and its placeholders.
macro_rules! steps {
    ($( $(#[$m:meta])* $step:ident = $key:literal, [$($ph:literal),*]; )+) => {
        /// A step a site's tool (or the Slurm job script) runs, filled from a template.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Step {
            $( $(#[$m])* $step, )+
        }

        impl Step {
            /// Every step.
            pub(crate) const ALL: &'static [Step] = &[$(Step::$step),+];

            /// Its name: the last part of its key (`stage`, `reco_command`).
            pub(crate) fn name(self) -> &'static str {
                match self.key().rsplit_once('.') {
                    Some((_, name)) => name,
                    None => self.key(),
                }
            }

            /// Its dotted key in `repro.toml`.
            pub(crate) const fn key(self) -> &'static str {
                match self {
                    $(Step::$step => $key,)+
                }
            }

            /// The placeholders the backend fills in this step.
            pub(crate) const fn placeholders(self) -> &'static [&'static str] {
                match self {
                    $(Step::$step => &[$($ph),*],)+
                }
            }
        }
    };
}

steps! {
    /// Ask for a raw file to be staged.
    Stage = "backend.command.stage", ["dataset", "file", "attempt"];
    /// Ask whether a raw file is staged.
    StageStatus = "backend.command.stage_status", ["dataset", "file"];
    /// Submit a reco job.
    RecoSubmit = "backend.command.reco_submit", ["dataset", "file", "output", "job", "attempt"];
    /// Submit a merge job.
    MergeSubmit = "backend.command.merge_submit", ["dataset", "files", "output", "job", "attempt"];
    /// A job's state.
    JobStatus = "backend.command.job_status", ["dataset", "job", "batch_id"];
    /// Look a job up by its name.
    JobLookup = "backend.command.job_lookup", ["dataset", "job"];
    /// Kill a job.
    Cancel = "backend.command.cancel", ["dataset", "job", "batch_id"];
    /// Declare a merged file to the catalog.
    Declare = "backend.command.declare", ["dataset", "file", "output", "attempt"];
    /// Delete a raw file's intermediates.
    Delete = "backend.command.delete", ["dataset", "file", "tmb", "attempt"];
    /// Ask for many raw files to be staged.
    StageBulk = "backend.command.stage_bulk", ["dataset", "files"];
    /// Ask whether many raw files are staged.
    StageStatusBulk = "backend.command.stage_status_bulk", ["dataset", "files"];
    /// Delete many raw files' intermediates.
    DeleteBulk = "backend.command.delete_bulk", ["dataset", "files"];
    /// What the site's tools hold for a dataset.
    Cursor = "backend.command.cursor", ["dataset"];
    /// The reco command inside a Slurm job script.
    SlurmReco = "backend.slurm.reco_command", ["input", "output", "dataset", "file", "attempt"];
    /// The merge command inside a Slurm job script.
    SlurmMerge = "backend.slurm.merge_command", ["files", "output", "dataset", "attempt"];
}

impl Step {
    /// The template configured for this step, if any.
    pub(crate) fn template<'a>(
        self,
        command: &'a CommandConfig,
        slurm: &'a SlurmConfig,
    ) -> Option<&'a [String]> {
        let t = match self {
            Step::Stage => command.stage.as_deref(),
            Step::StageStatus => command.stage_status.as_deref(),
            Step::RecoSubmit => command.reco_submit.as_deref(),
            Step::MergeSubmit => command.merge_submit.as_deref(),
            Step::JobStatus => command.job_status.as_deref(),
            Step::JobLookup => command.job_lookup.as_deref(),
            Step::Cancel => command.cancel.as_deref(),
            Step::Declare => command.declare.as_deref(),
            Step::Delete => command.delete.as_deref(),
            Step::StageBulk => command.stage_bulk.as_deref(),
            Step::StageStatusBulk => command.stage_status_bulk.as_deref(),
            Step::DeleteBulk => command.delete_bulk.as_deref(),
            Step::Cursor => command.cursor.as_deref(),
            Step::SlurmReco => Some(slurm.reco_command.as_slice()),
            Step::SlurmMerge => Some(slurm.merge_command.as_slice()),
        };
        t.filter(|t| !t.is_empty())
    }

    /// Fills this step's placeholders in `template`. `vars` are exactly the step's
    /// placeholders (a debug build checks it, so a step and its declaration cannot drift).
    pub(crate) fn render(self, template: &[String], vars: &[(&str, &str)]) -> Vec<String> {
        debug_assert!(
            vars.len() == self.placeholders().len()
                && vars.iter().all(|(k, _)| self.placeholders().contains(k)),
            "{} fills {:?}, declared {:?}",
            self.key(),
            vars.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            self.placeholders()
        );
        template
            .iter()
            .map(|arg| {
                let mut a = arg.clone();
                for (k, v) in vars {
                    a = a.replace(&format!("{{{k}}}"), v);
                }
                a
            })
            .collect()
    }

    /// The first placeholder in `template` this step does not fill, with why.
    pub(crate) fn unfilled(self, template: &[String]) -> Option<(String, String)> {
        let ph = template
            .iter()
            .flat_map(|a| placeholders(a))
            .find(|p| !self.placeholders().contains(p))?;
        let known = Step::ALL.iter().any(|s| s.placeholders().contains(&ph));
        let has: Vec<String> = self
            .placeholders()
            .iter()
            .map(|p| format!("{{{p}}}"))
            .collect();
        let why = if known {
            format!("this step has no {{{ph}}}; it fills {}", has.join(", "))
        } else {
            format!(
                "{{{ph}}} is not a placeholder; this step fills {}",
                has.join(", ")
            )
        };
        Some((format!("{{{ph}}}"), why))
    }
}

/// The `{name}` placeholders in one argument: a brace, a lowercase word, a brace.
/// Other braces (`{}`, `${HOME}`, `{print $1}`) are the tool's own and left alone.
fn placeholders(arg: &str) -> impl Iterator<Item = &str> {
    arg.split('{').skip(1).filter_map(|rest| {
        let (word, _) = rest.split_once('}')?;
        let ok = word.starts_with(|c: char| c.is_ascii_lowercase())
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        ok.then_some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_typo_and_another_steps_placeholder_are_named() {
        let (ph, why) = Step::RecoSubmit
            .unfilled(&argv(&["sbatch", "--wrap=reco {file} {ouptut}"]))
            .unwrap();
        assert_eq!(ph, "{ouptut}");
        assert!(why.contains("not a placeholder"), "{why}");
        assert!(why.contains("{output}"), "{why}");
        let (ph, why) = Step::Stage
            .unfilled(&argv(&["stage", "{file}", "{tmb}"]))
            .unwrap();
        assert_eq!(ph, "{tmb}");
        assert!(why.starts_with("this step has no {tmb}"), "{why}");
    }

    #[test]
    fn the_tools_own_braces_are_not_placeholders() {
        let t = argv(&["awk", "{print $1}", "${HOME}/{file}", "{}", "{Upper}", "{x"]);
        assert_eq!(Step::StageStatus.unfilled(&t), None);
    }

    #[test]
    fn rendering_fills_every_declared_placeholder() {
        for &step in Step::ALL {
            let t: Vec<String> = step
                .placeholders()
                .iter()
                .map(|p| format!("<{{{p}}}>"))
                .collect();
            let vars: Vec<(&str, &str)> = step.placeholders().iter().map(|p| (*p, "v")).collect();
            let out = step.render(&t, &vars);
            assert!(out.iter().all(|a| a == "<v>"), "{}: {out:?}", step.key());
            assert_eq!(step.unfilled(&t), None);
        }
    }
}
