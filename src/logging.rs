//! Log output through `tracing`, with a filter and a destination that the logging
//! extension can change while the server runs.

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::server::settings::{LogApplier, LogSettings};

/// Writes to the log file when one is set, else to stderr.
#[derive(Clone, Default)]
struct Destination(Arc<Mutex<Option<std::fs::File>>>);

impl Destination {
    fn set(&self, path: &str) -> Result<(), String> {
        let file = if path.is_empty() {
            None
        } else {
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open log file '{path}': {e}"))?,
            )
        };
        *self.0.lock() = file;
        Ok(())
    }
}

struct DestinationWriter(Arc<Mutex<Option<std::fs::File>>>);

impl Write for DestinationWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().as_mut() {
            Some(f) => f.write(buf),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().as_mut() {
            Some(f) => f.flush(),
            None => std::io::stderr().flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Destination {
    type Writer = DestinationWriter;
    fn make_writer(&'a self) -> Self::Writer {
        DestinationWriter(self.0.clone())
    }
}

/// Installs the global subscriber; returns the function that applies new settings.
pub fn init(settings: &LogSettings) -> anyhow::Result<LogApplier> {
    let filter = |s: &LogSettings| {
        // RUST_LOG, when set, refines the configured level (e.g. RUST_LOG=despina=trace).
        let base = s.filter();
        match std::env::var("RUST_LOG") {
            Ok(extra) if !extra.is_empty() => EnvFilter::new(format!("{base},{extra}")),
            _ => EnvFilter::new(base),
        }
    };
    let (layer, handle) = reload::Layer::new(filter(settings));
    let dest = Destination::default();
    dest.set(&settings.file).map_err(anyhow::Error::msg)?;
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(dest.clone())
                .with_ansi(false)
                .with_target(false),
        )
        .try_init()?;
    Ok(Box::new(move |s: &LogSettings| {
        dest.set(&s.file)?;
        handle.reload(filter(s)).map_err(|e| e.to_string())
    }))
}
