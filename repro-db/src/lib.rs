//! Persistence of the `repro` lifecycle. Skeleton: the schema and the store land with the
//! database issue; until then this crate only re-exports the core so dependants can build.

pub use repro_core as core;
