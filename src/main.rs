//! The `strangler` binary.
#![forbid(unsafe_code)]

use clap::Parser;

/// jemalloc rather than glibc's allocator: see `.cargo/config.toml` for why and how it is set.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    strangler::cli::run(strangler::cli::Cli::parse())
}
