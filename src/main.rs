//! The `strangler` binary.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    strangler::cli::run(strangler::cli::Cli::parse())
}
