//! What a user of `repro` sees: stdout, stderr and exit status, command by command.

mod support;

mod test_command_backend;
mod test_crash_recovery;
mod test_cron_concurrency;
mod test_dataset;
mod test_limits;
mod test_misc;
mod test_operations;
mod test_operator;
mod test_simulate;
