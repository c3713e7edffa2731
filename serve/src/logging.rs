//! Serve's log: `tracing` events on standard error, one line each.
//!
//! `--log-format text` (the default) keeps the line format operators already
//! grep: `2026-12-02T19:00:00.123Z imgscan serve: [error: |warning: ]message`;
//! `--log-format json` writes one JSON object per event (`timestamp`,
//! `level`, `fields.message`, and any structured fields) for log shippers.
//! Only serve's own events are written: the HTTP and TLS crates' events are
//! filtered out, as they were before serve used `tracing`. Never log a secret.

use std::fmt;

use clap::ValueEnum;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::{one_line, rfc3339, store};

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Installs the process-wide subscriber. A second call (in-process tests)
/// keeps the first.
pub(crate) fn init(format: LogFormat) {
    let only_serve = Targets::new().with_target(env!("CARGO_CRATE_NAME"), Level::INFO);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(only_serve);
    let _ = match format {
        LogFormat::Text => registry.with(layer.event_format(Line)).try_init(),
        LogFormat::Json => registry
            .with(layer.json().flatten_event(false).with_current_span(false))
            .try_init(),
    };
}

/// The text line: timestamp, `imgscan serve:`, a level word for warnings and
/// errors, the message and fields folded onto one line (errors from the
/// other side may hold newlines).
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut msg = String::new();
        ctx.format_fields(Writer::new(&mut msg), event)?;
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        writeln!(
            w,
            "{} imgscan serve: {level}{}",
            rfc3339(store::now_ms()),
            one_line(&msg)
        )
    }
}
