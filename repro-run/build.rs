//! Which database servers the tests may use (see `repro-db/servers.rs`).

include!("../repro-db/servers.rs");
