//! The `repro` command. Skeleton: the commands land with the CLI issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "repro {}: the command-line operations are not built yet; the lifecycle library is repro-core",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(1)
}
