//! `repro.toml`: which backend, how it behaves, and the policy.
//!
//! Unknown keys, wrong types and impossible values are errors naming the key.

use std::path::{Path, PathBuf};

use repro_core::Policy;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which backend reaches the outside world.
    #[serde(default)]
    pub backend: BackendConfig,
    /// Retry and grouping rules.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// How long a process may hold a dataset.
    #[serde(default)]
    pub lease: LeaseConfig,
}

/// `[backend]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `sim`, `command` or `slurm`.
    #[serde(default = "default_kind")]
    pub kind: BackendKind,
    /// `[backend.sim]`.
    #[serde(default)]
    pub sim: SimConfig,
}

fn default_kind() -> BackendKind {
    BackendKind::Sim
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::Sim,
            sim: SimConfig::default(),
        }
    }
}

/// The backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The deterministic simulation.
    Sim,
    /// Configured command lines (not built yet).
    Command,
    /// A Slurm cluster (not built yet).
    Slurm,
}

/// `[backend.sim]`: the simulated world.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Where every external action is appended as one JSON line, if set.
    pub journal: Option<PathBuf>,
    /// Where the simulated world is kept between runs.
    pub world: PathBuf,
    /// Probability that one staging attempt fails.
    pub stage_failure: f64,
    /// Probability that one reco job fails.
    pub reco_failure: f64,
    /// Probability that one merge job fails.
    pub merge_failure: f64,
    /// Probability that one declaration fails.
    pub declare_failure: f64,
    /// Probability that one deletion fails.
    pub delete_failure: f64,
    /// Probability that a submitted job vanishes.
    pub lost_job: f64,
    /// Seconds until a stage request or job finishes (0: by the next check).
    pub duration_s: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            journal: None,
            world: PathBuf::from("repro-sim-world.json"),
            stage_failure: 0.0,
            reco_failure: 0.05,
            merge_failure: 0.02,
            declare_failure: 0.0,
            delete_failure: 0.0,
            lost_job: 0.01,
            duration_s: 0.0,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Attempts per step.
    pub max_attempts: u32,
    /// TMB files per merge group.
    pub merge_group_files: u32,
    /// TMB bytes per merge group.
    pub merge_group_bytes: Option<u64>,
    /// Merge reco-PARTIAL datasets automatically.
    pub merge_partial: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let p = Policy::default();
        PolicyConfig {
            max_attempts: p.max_attempts,
            merge_group_files: p.merge_group_files,
            merge_group_bytes: p.merge_group_bytes,
            merge_partial: p.merge_partial,
        }
    }
}

/// `[lease]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseConfig {
    /// Seconds a claim on a dataset lasts; a crashed process's work is taken over after it.
    pub ttl_s: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig { ttl_s: 600 }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A value out of range.
    #[error("config {path}: key `{key}` = {value}: {why}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key, dotted.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
}

impl Config {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (read from `path`, for messages) and checks every value.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, value: String, why: &str| ConfigError::Value {
            path: path.to_owned(),
            key: key.to_owned(),
            value,
            why: why.to_owned(),
        };
        let s = &self.backend.sim;
        for (key, p) in [
            ("backend.sim.stage_failure", s.stage_failure),
            ("backend.sim.reco_failure", s.reco_failure),
            ("backend.sim.merge_failure", s.merge_failure),
            ("backend.sim.declare_failure", s.declare_failure),
            ("backend.sim.delete_failure", s.delete_failure),
            ("backend.sim.lost_job", s.lost_job),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(key, p.to_string(), "a probability is between 0 and 1"));
            }
        }
        if !(s.duration_s.is_finite() && s.duration_s >= 0.0) {
            return Err(bad(
                "backend.sim.duration_s",
                s.duration_s.to_string(),
                "a duration is at least 0 seconds",
            ));
        }
        if self.lease.ttl_s == 0 {
            return Err(bad(
                "lease.ttl_s",
                "0".into(),
                "a lease must last at least a second",
            ));
        }
        self.policy()
            .validate()
            .map_err(|e| bad(&format!("policy.{}", e.key), e.value, e.why))?;
        Ok(())
    }

    /// The core's policy.
    pub fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.policy.max_attempts,
            merge_group_files: self.policy.merge_group_files,
            merge_group_bytes: self.policy.merge_group_bytes,
            merge_partial: self.policy.merge_partial,
        }
    }

    /// Makes relative paths in the file relative to the directory it is in.
    pub fn resolve_paths(&mut self, base: &Path) {
        let s = &mut self.backend.sim;
        if s.world.is_relative() {
            s.world = base.join(&s.world);
        }
        if let Some(j) = &mut s.journal
            && j.is_relative()
        {
            *j = base.join(&*j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("repro.toml"))
    }

    #[test]
    fn the_documented_example_parses() {
        let c = parse(
            r#"
[backend]
kind = "sim"
[backend.sim]
seed = 42
journal = "sim-journal.jsonl"
stage_failure = 0.0
reco_failure = 0.05
merge_failure = 0.02
declare_failure = 0.0
delete_failure = 0.0
lost_job = 0.01
duration_s = 0
[policy]
max_attempts = 3
merge_group_files = 50
"#,
        )
        .unwrap();
        assert_eq!(c.backend.sim.reco_failure, 0.05);
        assert_eq!(c.policy().merge_group_files, 50);
    }

    #[test]
    fn unknown_keys_wrong_types_and_impossible_values_name_the_key() {
        let e = parse("[backend.sim]\nreco_failur = 0.1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `reco_failur`"), "{e}");
        let e = parse("[policy]\nmax_attempts = \"three\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_attempts") && e.contains("line 2"), "{e}");
        let e = parse("[backend.sim]\nreco_failure = 1.5\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "config repro.toml: key `backend.sim.reco_failure` = 1.5: a probability is between 0 and 1"
        );
        let e = parse("[policy]\nmax_attempts = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `policy.max_attempts` = 0"), "{e}");
        let e = parse("[backend]\nkind = \"condor\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `condor`"), "{e}");
    }
}
