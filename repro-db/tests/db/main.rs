//! The database suite: every test runs on SQLite, and on MariaDB and PostgreSQL when
//! `REPRO_TEST_MYSQL_URL` / `REPRO_TEST_POSTGRES_URL` are set.

mod support;

mod test_api_properties;
mod test_bulk;
mod test_concurrency;
mod test_copy;
mod test_corrupt_rows;
mod test_counts;
mod test_glance;
mod test_lifecycle;
mod test_limits;
mod test_migrations;
mod test_refusals;
mod test_retry;
mod test_samples;
mod test_settled;
