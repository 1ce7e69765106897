//! SeaORM entities, one module per table. Rows hold the stored words as strings; turning
//! them back into typed states happens in [`crate::convert`] only.

pub mod dataset_status;
pub mod file_status;
pub mod merge_group;
pub mod mergejob_status;
pub mod recojob_status;
pub mod site_tick;
pub mod state_count;
pub mod transitions;

/// The entities under short names.
pub mod prelude {
    pub use super::dataset_status::Entity as DatasetStatus;
    pub use super::file_status::Entity as FileStatus;
    pub use super::merge_group::Entity as MergeGroup;
    pub use super::mergejob_status::Entity as MergejobStatus;
    pub use super::recojob_status::Entity as RecojobStatus;
    pub use super::site_tick::Entity as SiteTick;
    pub use super::state_count::Entity as StateCount;
    pub use super::transitions::Entity as Transitions;
}
