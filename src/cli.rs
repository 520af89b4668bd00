//! The command line: `strangler serve`, `strangler check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Overrides, ProcessEnv};

/// Strangler: a strangler-fig migration facade in front of a legacy HTTP app.
#[derive(Debug, Parser)]
#[command(name = "strangler", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the facade in front of the legacy app, and the admin listener.
    Serve(ServeArgs),
    /// Check a configuration (file, environment and flags) without serving.
    Check(ServeArgs),
    /// Start a sample legacy shop and the facade in front of it.
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The legacy app's origin, e.g. http://127.0.0.1:8000 [env: STRANGLER_LEGACY_URL]
    #[arg(long, value_name = "URL")]
    pub legacy: Option<String>,
    /// Public listener address [default: 0.0.0.0:8080] [env: STRANGLER_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Admin listener address (metrics, health) [default: 127.0.0.1:9090] [env: STRANGLER_ADMIN]
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// TOML configuration file
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Runtime worker threads [default: one per core] [env: STRANGLER_WORKERS]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            legacy: self.legacy.clone(),
            listen: self.listen.clone(),
            admin: self.admin.clone(),
            workers: self.workers,
        }
    }
}

/// Runs a parsed command line. Exit codes: 0 success, 1 runtime failure, 2 bad configuration.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(args) => {
            match config::load(args.config.as_deref(), &ProcessEnv, &args.overrides()) {
                Ok(settings) => {
                    println!(
                        "configuration is valid: facade on {}, admin on {}, legacy at {}",
                        settings.listen,
                        settings.admin,
                        settings.facade.legacy.origin.to_prefix()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo(args) => match crate::demo::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => {
            let settings =
                match config::load(args.config.as_deref(), &ProcessEnv, &args.overrides()) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
            match crate::serve::run(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
