//! The command line: `strangler serve`, `strangler check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use strangler_control::{contract, reconcile};

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
    /// Import the catalog declared in a config file into the store (idempotent).
    Import {
        #[command(flatten)]
        args: ServeArgs,
        /// Why, for the audit log
        #[arg(long, default_value = "import of the configuration file")]
        reason: String,
    },
    /// Write the catalog in the store as the catalog part of a config file.
    Export {
        #[command(flatten)]
        args: ServeArgs,
        /// Write to this file instead of standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Drive a running Strangler through its admin API.
    Ctl(crate::ctl::CtlArgs),
    /// Work with anti-corruption translators.
    #[command(subcommand)]
    Translators(TranslatorsCommand),
    /// Contract tests from recorded traffic: export a context's matched exchanges, replay them.
    #[command(subcommand)]
    Tests(TestsCommand),
    /// Read a context's resources from legacy and from the new service (through the
    /// translator) and report what differs or is missing on one side; exit 1 if anything is.
    Reconcile {
        #[command(flatten)]
        args: ServeArgs,
        /// The context
        #[arg(long, value_name = "NAME")]
        context: String,
        /// Read at most this many resources
        #[arg(long, value_name = "N", default_value_t = 50)]
        sample: usize,
        /// A resource to read (a path and query), besides the context's collections and
        /// recorded reads; may be repeated
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// Print the findings as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TestsCommand {
    /// Write a context's recorded matched exchanges as a contract test suite.
    Export {
        #[command(flatten)]
        args: ServeArgs,
        /// The context
        #[arg(long, value_name = "NAME")]
        context: String,
        /// `json` (for `strangler tests replay`) or `hurl`
        #[arg(long, default_value = "json", value_parser = ["json", "hurl"])]
        format: String,
        /// Write to this file instead of standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also writes (replaying them changes the service's data)
        #[arg(long)]
        include_writes: bool,
    },
    /// Send a suite's requests to a service and compare its answers with legacy's.
    Replay {
        #[command(flatten)]
        args: ServeArgs,
        /// The context whose recorded exchanges to replay (from the catalog)…
        #[arg(long, value_name = "NAME", required_unless_present = "file")]
        context: Option<String>,
        /// …or a suite written by `strangler tests export`
        #[arg(long, value_name = "FILE", conflicts_with = "context")]
        file: Option<PathBuf>,
        /// The service to test, e.g. http://127.0.0.1:8001
        #[arg(long, value_name = "URL")]
        target: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TranslatorsCommand {
    /// Run the translators' example pairs (NAME.tests.toml beside NAME.toml) and show what differs.
    Test {
        /// The directory of translators
        #[arg(long, value_name = "DIR", default_value = "translators")]
        dir: PathBuf,
        /// Only this context's translator (NAME.toml)
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
    },
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

/// Loads the settings (exit 2 when they are bad) and runs `f` (exit 1 when it fails).
fn with_settings(
    args: &ServeArgs,
    f: impl FnOnce(config::Settings) -> anyhow::Result<()>,
) -> ExitCode {
    // The catalog commands need no legacy app; give a placeholder so the check passes.
    let mut overrides = args.overrides();
    if overrides.legacy.is_none() && std::env::var("STRANGLER_LEGACY_URL").is_err() {
        overrides.legacy = Some("http://127.0.0.1:1".to_owned());
    }
    let settings = match config::load(args.config.as_deref(), &ProcessEnv, &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match f(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Runs a parsed command line. Exit codes: 0 success, 1 runtime failure, 2 bad configuration.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Tests(TestsCommand::Export {
            args,
            context,
            format,
            out,
            include_writes,
        }) => with_settings(&args, |settings| {
            let suite = block_on(async {
                let store = crate::serve::open_store(&settings).await?;
                contract::suite(&store, &context, include_writes).await
            })?;
            let text = if format == "hurl" {
                contract::hurl(&suite)
            } else {
                serde_json::to_string_pretty(&suite)? + "\n"
            };
            match out {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }),
        Command::Tests(TestsCommand::Replay {
            args,
            context,
            file,
            target,
        }) => with_settings(&args, |settings| {
            let suite = match (&file, &context) {
                (Some(path), _) => contract::read(path)?,
                (None, Some(name)) => block_on(async {
                    let store = crate::serve::open_store(&settings).await?;
                    contract::suite(&store, name, false).await
                })?,
                (None, None) => anyhow::bail!("give --context NAME or --file SUITE"),
            };
            let registry = crate::translators::registry();
            let (passed, failed) = block_on(contract::replay(&suite, &target, &registry))?;
            println!("{passed} passed, {} failed", failed.len());
            if failed.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{} of {} exchanges answered differently from legacy",
                    failed.len(),
                    passed + failed.len()
                )
            }
        }),
        Command::Reconcile {
            args,
            context,
            sample,
            paths,
            json,
        } => with_settings(&args, |settings| {
            let legacy = settings.facade.legacy.origin.to_prefix();
            let findings = block_on(async {
                let store = crate::serve::open_store(&settings).await?;
                let catalog = strangler_store::CatalogStore::load(&store).await?;
                if !catalog.contexts.contains_key(&context) {
                    anyhow::bail!(
                        "no context `{context}` in the catalog; `strangler ctl status` lists them"
                    );
                }
                let paths =
                    reconcile::candidates(&store, &catalog, &context, &paths, sample.max(1))
                        .await?;
                if paths.is_empty() {
                    anyhow::bail!("nothing to read for `{context}`: give resources with --path (e.g. --path /orders/1), or let it record some traffic first");
                }
                let registry = crate::translators::registry();
                // Every pair of the catalog: a command that runs once is not bounded by the
                // facade's setting.
                let ids = strangler_facade::ids::IdMap::new(usize::MAX);
                ids.catch_up(&strangler_control::outbox::StoreOutbox(store.clone()))
                    .await
                    .map_err(|e| anyhow::anyhow!("the id map could not be read: {e}"))?;
                let findings =
                    reconcile::reconcile(&catalog, &context, &legacy, &paths, &registry, &ids)
                        .await?;
                reconcile::record(&store, &context, &findings).await?;
                Ok(findings)
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&findings)?);
            } else {
                for f in &findings {
                    let status = |s: Option<u16>| s.map_or("—".to_owned(), |s| s.to_string());
                    let what = match &f.verdict {
                        reconcile::Verdict::Same => "same".to_owned(),
                        reconcile::Verdict::Differs { differences } => {
                            format!("differs: {}", differences.join("; "))
                        }
                        reconcile::Verdict::MissingOnNew => "missing on the new service".to_owned(),
                        reconcile::Verdict::MissingOnLegacy => "missing on legacy".to_owned(),
                        reconcile::Verdict::Unreadable { why } => format!("not read: {why}"),
                    };
                    println!(
                        "{:<40} legacy {:>3}  new {:>3}  {what}",
                        f.path,
                        status(f.legacy_status),
                        status(f.new_status)
                    );
                }
            }
            let amiss = findings
                .iter()
                .filter(|f| f.verdict != reconcile::Verdict::Same)
                .count();
            if amiss == 0 {
                eprintln!(
                    "{} resources read from both sides: nothing amiss",
                    findings.len()
                );
                Ok(())
            } else {
                anyhow::bail!(
                    "{amiss} of {} resources differ or are missing on one side",
                    findings.len()
                )
            }
        }),
        Command::Translators(TranslatorsCommand::Test { dir, context }) => {
            crate::translators::test(&dir, context.as_deref())
        }
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
        Command::Ctl(args) => crate::ctl::run(args),
        Command::Import { args, reason } => with_settings(&args, |settings| {
            let line = block_on(crate::catalog_cmd::import(&settings, &reason))?;
            println!("{line}");
            Ok(())
        }),
        Command::Export { args, out } => with_settings(&args, |settings| {
            let text = block_on(crate::catalog_cmd::export(&settings))?;
            match out {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }),
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
