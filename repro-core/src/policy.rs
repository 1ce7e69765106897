//! The knobs the decisions obey.

/// How the decisions retry and group work.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    /// Attempts per step (staging a file, its reco job, a merge job, a declaration, a
    /// deletion) before it is failed for good. At least 1.
    pub max_attempts: u32,
    /// At most this many TMB files per merge group. At least 1.
    pub merge_group_files: u32,
    /// At most this many TMB bytes per merge group, if set; a single TMB file larger than
    /// this forms a group of its own.
    pub merge_group_bytes: Option<u64>,
    /// Whether automation merges a dataset whose reco ended `PARTIAL` (the seed's
    /// `merge_partial` cron job). When false, such datasets wait for an explicit partial merge.
    pub merge_partial: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 3,
            merge_group_files: 50,
            merge_group_bytes: None,
            merge_partial: true,
        }
    }
}

/// A policy value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy key `{key}` = {value}: {why}")]
pub struct PolicyError {
    /// The offending key.
    pub key: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Policy {
    /// Checks that every value can work.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_attempts == 0 {
            return Err(PolicyError {
                key: "max_attempts",
                value: "0".into(),
                why: "at least one attempt is needed",
            });
        }
        if self.merge_group_files == 0 {
            return Err(PolicyError {
                key: "merge_group_files",
                value: "0".into(),
                why: "a merge group needs at least one file",
            });
        }
        if self.merge_group_bytes == Some(0) {
            return Err(PolicyError {
                key: "merge_group_bytes",
                value: "0".into(),
                why: "a merge group needs room for at least one byte",
            });
        }
        Ok(())
    }
}
