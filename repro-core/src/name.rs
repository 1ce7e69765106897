//! Validated dataset names.

use std::fmt;
use std::str::FromStr;

/// The longest dataset name the spec allows, in characters.
pub const MAX_NAME_LEN: usize = 200;

/// A dataset name: 1 to 200 characters from letters, digits and `_ - . +`.
///
/// The restriction keeps names safe to use as job names, file-name prefixes and URL path
/// segments without quoting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DatasetName(String);

/// Why a string is not a valid [`DatasetName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("dataset name is empty")]
    Empty,
    /// The name was longer than [`MAX_NAME_LEN`] characters.
    #[error("dataset name is {len} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong {
        /// Length found, in characters.
        len: usize,
    },
    /// The name holds a character outside letters, digits and `_ - . +`.
    #[error(
        "dataset name {name:?} contains {found:?} at position {position}; only letters, digits and `_ - . +` are allowed"
    )]
    BadChar {
        /// The name as given.
        name: String,
        /// The first offending character.
        found: char,
        /// Its position, counted in characters from 1.
        position: usize,
    },
}

impl DatasetName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let len = name.chars().count();
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong { len });
        }
        if let Some((i, found)) = name
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')))
        {
            return Err(NameError::BadChar {
                name,
                found,
                position: i + 1,
            });
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for DatasetName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for DatasetName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_honours_width_and_alignment_like_a_str() {
        let n = super::DatasetName::new("p17.wz").unwrap();
        assert_eq!(format!("[{n:<8}]"), "[p17.wz  ]");
        assert_eq!(format!("[{n:>8}]"), "[  p17.wz]");
    }

    use super::*;

    #[test]
    fn accepts_the_spec_alphabet() {
        for ok in ["p17.reco-v2+fix_1", "A", &"x".repeat(MAX_NAME_LEN)] {
            assert_eq!(DatasetName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_empty_long_and_odd_characters_naming_the_problem() {
        assert_eq!(DatasetName::new(""), Err(NameError::Empty));
        assert_eq!(
            DatasetName::new("x".repeat(201)),
            Err(NameError::TooLong { len: 201 })
        );
        let err = DatasetName::new("bad name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset name \"bad name\" contains ' ' at position 4; only letters, digits and `_ - . +` are allowed"
        );
        assert!(DatasetName::new("a/b").is_err());
        assert!(DatasetName::new("<script>").is_err());
    }
}
