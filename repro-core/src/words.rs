//! The predecessor scripts' status words, one small `Copy` type per phase column.
//!
//! These are the only representation of a dataset's state that is ever stored or shown: the
//! database keeps one word per column, the CLI and the web page print them. Each type's
//! `Display` and `FromStr` use the predecessor scripts' exact spelling (`NOT DONE` with its space,
//! `MERGED_DBUP` with its underscore); parsing is exact and case-sensitive so that a stored
//! word either means one thing or is refused.

/// A word that is not one of a column's status words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a {column} state; expected one of {expected}")]
pub struct ParseWordError {
    /// The column being parsed (`lock`, `prestage`, ...).
    pub column: &'static str,
    /// The text that did not parse.
    pub found: String,
    /// The accepted words, comma separated.
    pub expected: &'static str,
}

/// Declares an enum whose values are stored as words: `Display`/`FromStr` in exactly
/// those words (parsing names the kind on failure), `ALL` in declaration order, `COLUMN`
/// (what kind of word it is, for messages) and `Serialize` as the word. The one macro behind
/// every stored word: the predecessor scripts' column words here, file, job and group states elsewhere.
macro_rules! stored_words {
    (
        $(#[$meta:meta])*
        $name:ident, $column:literal, [$( $(#[$vmeta:meta])* $variant:ident = $word:literal ),+ $(,)?]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// What kind of word this is (`reco`, `file`, ...), as messages name it.
            pub const COLUMN: &'static str = $column;

            /// The stored word for this value.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::words::ParseWordError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err($crate::words::ParseWordError {
                        column: $column,
                        found: s.to_owned(),
                        expected: concat!($("`", $word, "` "),+),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_words;

stored_words! {
    /// The `lock` column: whether automation may touch the dataset.
    LockWord, "lock", [
        /// Held by an operator: automation leaves the dataset exactly where it is.
        Lock = "LOCK",
        /// Released to automation.
        Unlock = "UNLOCK",
    ]
}

stored_words! {
    /// The `prestage` column.
    PrestageWord, "prestage", [
        /// Not started.
        NotDone = "NOT DONE",
        /// Stage requests are out.
        Running = "RUNNING",
        /// Every raw file is staged or failed for good, and at least one is staged.
        Prestage = "PRESTAGE",
        /// No raw file could be staged; waits for an operator.
        Failed = "FAILED",
    ]
}

stored_words! {
    /// The `reco` column.
    RecoWord, "reco", [
        /// Not started.
        NotDone = "NOT DONE",
        /// Reco jobs are out.
        Running = "RUNNING",
        /// Every raw file is finished, some failed for good.
        Partial = "PARTIAL",
        /// Every raw file has its TMB file.
        Completed = "COMPLETED",
        /// No raw file could be reconstructed; waits for an operator.
        Failed = "FAILED",
    ]
}

stored_words! {
    /// The `merge` column.
    MergeWord, "merge", [
        /// Not started.
        NotDone = "NOT DONE",
        /// Merge jobs are out (the predecessor scripts' `check_on_merge_running` follows them).
        Running = "RUNNING",
        /// Merged files cover the TMB files that exist (reco ended `PARTIAL`).
        Partial = "PARTIAL",
        /// Merged files cover every raw file.
        Merged = "MERGED",
        /// Every merged file is declared to the catalog.
        MergedDbup = "MERGED_DBUP",
        /// A merge group or a declaration used up its attempts; waits for an operator.
        Failed = "FAILED",
    ]
}

stored_words! {
    /// The `cleanup` column.
    CleanupWord, "cleanup", [
        /// Not finished (deletions may be under way).
        NotDone = "NOT DONE",
        /// Every intermediate file of every merged raw file is deleted.
        Cleaned = "CLEANED",
        /// A deletion used up its attempts; waits for an operator.
        Failed = "FAILED",
    ]
}

/// Every word the five state columns store (the predecessor scripts' words), each once, in
/// column order: `LOCK, UNLOCK, NOT DONE, RUNNING, PRESTAGE, ...`.
pub fn state_words() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Vec::new();
    let all = LockWord::ALL.iter().map(|w| w.as_str());
    let all = all.chain(PrestageWord::ALL.iter().map(|w| w.as_str()));
    let all = all.chain(RecoWord::ALL.iter().map(|w| w.as_str()));
    let all = all.chain(MergeWord::ALL.iter().map(|w| w.as_str()));
    for w in all.chain(CleanupWord::ALL.iter().map(|w| w.as_str())) {
        if !words.contains(&w) {
            words.push(w);
        }
    }
    words
}

/// `n` and `noun`, plural unless `n` is 1, for messages: "1 raw file", "3 raw files".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;
    use std::str::FromStr;

    fn round_trips<T: Copy + fmt::Display + FromStr + PartialEq + fmt::Debug>(all: &[T])
    where
        T::Err: fmt::Debug,
    {
        for w in all {
            assert_eq!(w.to_string().parse::<T>().unwrap(), *w);
        }
    }

    #[test]
    fn counts_are_plural_unless_one() {
        assert_eq!(count(1, "raw file"), "1 raw file");
        assert_eq!(count(0, "raw file"), "0 raw files");
        assert_eq!(count(3, "merge group"), "3 merge groups");
    }

    #[test]
    fn every_word_round_trips_through_its_text() {
        round_trips(LockWord::ALL);
        round_trips(PrestageWord::ALL);
        round_trips(RecoWord::ALL);
        round_trips(MergeWord::ALL);
        round_trips(CleanupWord::ALL);
    }

    #[test]
    fn words_are_the_seeds_spelling() {
        assert_eq!(PrestageWord::NotDone.to_string(), "NOT DONE");
        assert_eq!(MergeWord::MergedDbup.to_string(), "MERGED_DBUP");
        assert_eq!(format!("{:<9}|", LockWord::Lock), "LOCK     |");
    }

    #[test]
    fn parsing_is_exact_and_names_the_column() {
        assert!("not done".parse::<RecoWord>().is_err());
        assert!("NOT  DONE".parse::<RecoWord>().is_err());
        let err = "MERGED".parse::<RecoWord>().unwrap_err();
        assert_eq!(err.column, "reco");
        assert!(err.to_string().contains("\"MERGED\" is not a reco state"));
        assert!(err.to_string().contains("`COMPLETED`"));
    }
}
