//! The `strangler` command: the command line, the configuration, and the wiring of the
//! crates — no behaviour of its own. `main.rs` only parses the command line
//! and hands over to [`cli::run`].
//!
//! Layout:
//! - `cli.rs` — the commands (`serve`, `check`, `demo`, `import`, `export`, `ctl`) and their flags;
//! - `catalog_cmd.rs` — `import`/`export` of the catalog declared in a config file;
//! - `ctl.rs` — `strangler ctl`, the admin API from the shell;
//! - `config.rs` — the TOML file, `STRANGLER_*` environment and flags, merged and validated
//!   into [`config::Settings`];
//! - `demo.rs` — `strangler demo`: a sample legacy shop with the facade in front;
//! - `handoff.rs` — reloads and upgrades: the listening sockets handed to a successor process
//!   (the one module allowed unsafe code, to take and pass descriptors by number);
//! - `logging.rs` — the `tracing` subscriber and its run-time filter;
//! - `serve.rs` — starts the facade and the admin listener and stops them on a signal;
//! - `translators.rs` — the Rust translators the binary registers, and `strangler translators test`.
#![deny(unsafe_code)]

pub mod catalog_cmd;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod handoff;
pub mod logging;
pub mod notify;
pub mod serve;
pub mod translators;
