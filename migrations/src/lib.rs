//! SeaORM migrations for the `repro` schema. Skeleton: the migrations land with the database issue.
