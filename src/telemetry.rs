//! Logs and traces: human-readable logs on a terminal, JSON for collectors, and OpenTelemetry
//! spans exported over OTLP/gRPC when an endpoint is configured.
//!
//! Baton's spans are at `DEBUG`, so logs at the default `info` neither carry nor pay for them;
//! the OTLP layer takes them whatever the log filter says. Without an endpoint no OTLP layer is
//! installed and a disabled span costs a branch.

use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

/// The name spans are exported under unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "baton";

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter for `{endpoint}`")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot install the log subscriber")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// What must outlive the server: the trace pipeline, flushed by [`Telemetry::shutdown`].
#[must_use = "spans still queued are lost unless `shutdown` flushes them"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

/// Installs the global subscriber. The log filter comes from `BATON_LOG` (`RUST_LOG` syntax)
/// and defaults to `info`. With `otlp_endpoint` (a gRPC URL such as `http://collector:4317`),
/// spans are batched and exported; the caller's runtime carries the export connection.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match format {
        LogFormat::Human => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    }
    .with_filter(filter);
    let tracer = otlp_endpoint.map(tracer_provider).transpose()?;
    let spans = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SERVICE_NAME))
            // Each of these adds attributes or clock reads to every span; on a decision that
            // takes tens of microseconds they cost more than the span itself.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            // Spans only: events stay in the logs, where the log filter governs them.
            .with_filter(
                filter_fn(|meta| meta.is_span() && meta.target().starts_with("baton"))
                    .with_max_level_hint(tracing::level_filters::LevelFilter::DEBUG),
            )
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()?;
    Ok(Telemetry { tracer })
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.tracer.is_some()
    }

    /// Exports the spans still queued, waiting at most a few seconds for the collector.
    pub async fn shutdown(self) {
        let Some(provider) = self.tracer else { return };
        // The batch processor blocks until its thread has exported, and that export needs this
        // runtime, which may have a single worker: block elsewhere.
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the last spans may not have been exported"),
            Err(e) => tracing::warn!(error = %e, "the span flush did not finish"),
        }
    }
}

/// The trace id of the current span as 32 lowercase hex digits, for records that should lead
/// back to the trace (the audit trail). `None` when spans are not exported, or outside a span.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn the_trace_id_is_the_current_spans_and_absent_without_export() {
        assert_eq!(
            tracing::debug_span!("baton.test").in_scope(current_trace_id),
            None
        );
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME)));
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(current_trace_id(), None, "outside any span");
            let span = tracing::debug_span!("baton.test");
            let id = span.in_scope(current_trace_id).expect("a trace id");
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            let child =
                span.in_scope(|| tracing::debug_span!("baton.child").in_scope(current_trace_id));
            assert_eq!(
                child.as_deref(),
                Some(id.as_str()),
                "a child shares its trace"
            );
        });
    }
}
