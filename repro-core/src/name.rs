//! Validated names: of datasets, and of the samples that group them.

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

/// The longest sample name, in characters.
pub const MAX_SAMPLE_LEN: usize = 100;

/// A sample's name: the group of datasets an operator thinks in ("all the p17 W/Z
/// datasets"), with the alphabet of dataset names and at most [`MAX_SAMPLE_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct SampleName(String);

/// Why a string is not a valid [`DatasetName`] or [`SampleName`]; `what` says which kind
/// of name it was meant to be (`"dataset"`, `"sample"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("{what} name is empty")]
    Empty {
        /// The kind of name.
        what: &'static str,
    },
    /// The name was longer than `max` characters.
    #[error("{what} name is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// The kind of name.
        what: &'static str,
        /// Length found, in characters.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The name holds a character outside letters, digits and `_ - . +`.
    #[error(
        "{what} name {name:?} contains {found:?} at position {position}; only letters, digits and `_ - . +` are allowed"
    )]
    BadChar {
        /// The kind of name.
        what: &'static str,
        /// The name as given.
        name: String,
        /// The first offending character.
        found: char,
        /// Its position, counted in characters from 1.
        position: usize,
    },
}

/// Checks `name` against the alphabet and `max`.
fn validate(what: &'static str, name: String, max: usize) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    let len = name.chars().count();
    if len > max {
        return Err(NameError::TooLong { what, len, max });
    }
    if let Some((i, found)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')))
    {
        return Err(NameError::BadChar {
            what,
            name,
            found,
            position: i + 1,
        });
    }
    Ok(name)
}

/// `new` (validating as a `$what` name of at most `$max` characters), `as_str`, `Display`
/// (honouring width and alignment, like a `str`), `FromStr` and `AsRef<str>`.
macro_rules! name_type {
    ($name:ident, $what:literal, $max:expr) => {
        impl $name {
            /// Validates `name`.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                validate($what, name.into(), $max).map(Self)
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(DatasetName, "dataset", MAX_NAME_LEN);
name_type!(SampleName, "sample", MAX_SAMPLE_LEN);

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
        assert_eq!(
            DatasetName::new(""),
            Err(NameError::Empty { what: "dataset" })
        );
        assert_eq!(
            DatasetName::new("x".repeat(201)),
            Err(NameError::TooLong {
                what: "dataset",
                len: 201,
                max: MAX_NAME_LEN
            })
        );
        let err = DatasetName::new("bad name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dataset name \"bad name\" contains ' ' at position 4; only letters, digits and `_ - . +` are allowed"
        );
        assert!(DatasetName::new("a/b").is_err());
        assert!(DatasetName::new("<script>").is_err());
    }

    #[test]
    fn a_sample_name_has_the_dataset_alphabet_and_says_it_is_a_sample() {
        assert_eq!(SampleName::new("p17.wz").unwrap().as_str(), "p17.wz");
        assert!(SampleName::new("x".repeat(MAX_SAMPLE_LEN)).is_ok());
        assert_eq!(
            SampleName::new("x".repeat(MAX_SAMPLE_LEN + 1))
                .unwrap_err()
                .to_string(),
            "sample name is 101 characters long; at most 100 are allowed"
        );
        assert_eq!(
            SampleName::new("p17 W/Z").unwrap_err().to_string(),
            "sample name \"p17 W/Z\" contains ' ' at position 4; only letters, digits and `_ - . +` are allowed"
        );
        assert_eq!(
            SampleName::new("").unwrap_err().to_string(),
            "sample name is empty"
        );
    }
}
