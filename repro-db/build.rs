//! Which database servers the tests may use (see `servers.rs`).

include!("servers.rs");
