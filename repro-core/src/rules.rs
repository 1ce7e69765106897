//! Small machinery shared by the file, job and merge-group lifecycles: a transition table
//! per lifecycle, with one runtime step that obeys it.

/// The entity lifecycles' states and events are stored words too (snake_case).
pub(crate) use crate::words::stored_words as snake_words;

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
