//! Logging: `tracing` to stderr, pretty or JSON, with a filter that the admin API can change
//! at run time.

use std::sync::{Arc, Mutex};

use strangler_dashboard::api::LogControl;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::config::{LogFormat, Settings};

/// The live filter.
pub struct Filter {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
    /// Appended to every filter so the access log stays on when configured.
    access: bool,
}

impl Filter {
    fn full(&self, filter: &str) -> String {
        if self.access {
            format!("{filter},strangler::access=info")
        } else {
            filter.to_owned()
        }
    }
}

impl LogControl for Filter {
    fn current(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn check(&self, filter: &str) -> Result<(), String> {
        EnvFilter::try_new(self.full(filter))
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "`{filter}` is not a log filter ({e}); use trace, debug, info, warn or error"
                )
            })
    }

    fn set(&self, filter: &str) -> Result<String, String> {
        self.check(filter)?;
        let new = EnvFilter::try_new(self.full(filter)).map_err(|e| e.to_string())?;
        self.handle.reload(new).map_err(|e| e.to_string())?;
        let mut current = self.current.lock().map_err(|e| e.to_string())?;
        Ok(std::mem::replace(&mut *current, filter.to_owned()))
    }
}

/// Installs the global subscriber (once per process) and returns its filter control.
pub fn init(settings: &Settings) -> Option<Arc<Filter>> {
    let access = settings.facade.access_log;
    let level = settings.log.level.clone();
    let first = if access {
        format!("{level},strangler::access=info")
    } else {
        level.clone()
    };
    let filter = EnvFilter::try_new(&first).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = match settings.log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .ok()?;
    Some(Arc::new(Filter {
        handle,
        current: Mutex::new(level),
        access,
    }))
}
