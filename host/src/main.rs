//! The `redback` binary: the command line in `redback::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    redback::cli::run(redback::cli::Cli::parse())
}
