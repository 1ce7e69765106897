//! Small machinery shared by the file, job and merge-group lifecycles: stored words and a
//! transition table per lifecycle, with one runtime step that obeys it.

/// Declares an enum whose variants are stored as snake_case words, with `Display`, `FromStr`
/// (exact, naming the kind on failure) and `ALL`.
macro_rules! snake_words {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal, [$( $(#[$vmeta:meta])* $variant:ident = $word:literal ),+ $(,)?]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored word.
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
                        column: $what,
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
pub(crate) use snake_words;

/// One legal move of an entity lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule<S, E> {
    /// State before.
    pub from: S,
    /// What happens.
    pub event: E,
    /// State after.
    pub to: S,
}

/// A move that an entity's lifecycle table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} {entity} {id}: it is {found}")]
pub struct IllegalMove {
    /// What kind of thing: `raw file`, `job`, `merge group`.
    pub entity: &'static str,
    /// Which one.
    pub id: String,
    /// The state found.
    pub found: String,
    /// The move tried.
    pub event: String,
}

/// Looks `event` up from `from` in `table`.
pub(crate) fn lookup<S: Copy + PartialEq, E: Copy + PartialEq>(
    table: &[Rule<S, E>],
    from: S,
    event: E,
) -> Option<S> {
    table
        .iter()
        .find(|r| r.from == from && r.event == event)
        .map(|r| r.to)
}
