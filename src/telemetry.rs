//! Logs and traces: human-readable logs on a terminal, JSON for collectors, and OpenTelemetry
//! spans exported over OTLP/gRPC when an endpoint is configured.
//!
//! Logs go through `tracing`; spans are made with the OpenTelemetry API (see the transport's
//! `spans` module) from the global tracer provider this module installs. Without an endpoint
//! no span is made at all, though a call still carries its caller's trace context.

use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing_subscriber::EnvFilter;

/// The name spans are exported under unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "baton";

/// The share of new traces Baton records when `OTEL_TRACES_SAMPLER` does not say otherwise. A
/// call that carries `traceparent` always follows its caller's choice; this is for calls
/// that start a trace at Baton. A recorded call costs about 5 µs of server CPU, an eighth of a
/// cached Authorize: recording every call of callers that trace nothing would spend a tenth of
/// the throughput on traces nobody joins.
pub const DEFAULT_ROOT_SAMPLE_RATIO: f64 = 0.1;

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Set once the exporting tracer provider is installed, never unset. Spans are made with the
/// SDK's tracer itself rather than the global, boxed one: no allocation and no dynamic call
/// per span on the request path.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The tracer of Baton's own spans, when spans are exported; without it no span is made.
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines, coloured on a terminal.
    Human,
    /// One JSON object per line, for collectors.
    Json,
}

/// Why logging or span export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP span exporter cannot be built for the endpoint given.
    #[error("cannot build the OTLP exporter for `{endpoint}`")]
    Exporter {
        /// The OTLP/gRPC endpoint as given.
        endpoint: String,
        /// Why the exporter cannot be built.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// `tracing_subscriber`'s `try_init` says why only as a boxed error.
    #[error("cannot install the log subscriber")]
    Subscriber(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What must outlive the server: the trace pipeline, flushed by [`Telemetry::shutdown`].
#[must_use = "spans still queued are lost unless `shutdown` flushes them"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

/// Installs the global log subscriber and, with `otlp_endpoint` (a gRPC URL such as
/// `http://collector:4317`), the global tracer provider, which batches spans and exports them;
/// the caller's runtime carries the export connection. The log filter comes from `BATON_LOG`
/// (`RUST_LOG` syntax) and defaults to `info`.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color());
    match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(TelemetryError::Subscriber)?;
    let tracer = otlp_endpoint.map(tracer_provider).transpose()?;
    if let Some(provider) = &tracer {
        opentelemetry::global::set_tracer_provider(provider.clone());
        // `init` runs once per process; a second call already failed on the subscriber.
        let _ = TRACER.set(provider.tracer(SERVICE_NAME));
    }
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
    let mut provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build());
    // The SDK reads the standard variable itself; an explicit sampler would override it.
    if std::env::var_os("OTEL_TRACES_SAMPLER").is_none() {
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(DEFAULT_ROOT_SAMPLE_RATIO),
        )));
    }
    Ok(provider.build())
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
/// back to the trace (the audit trail). Inside a decision RPC it is the caller's trace when the
/// call carried `traceparent`, exported or not; without one, Baton's own trace when spans are
/// exported. `None` outside any trace.
pub fn current_trace_id() -> Option<String> {
    let context = Context::current();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The trace id of a W3C `traceparent` value (`00-<trace-id>-<parent-id>-<flags>`), if it is
/// well-formed: 32 hex digits, not all zero.
pub fn traceparent_trace_id(value: &str) -> Option<String> {
    let mut parts = value.trim().split('-');
    let (_version, trace, _parent) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_ascii_lowercase())
}

/// An error and every cause below it, `: `-separated, for one log line: errors here do not
/// repeat their source in their own message, so the chain is walked where it is logged.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// <https://no-color.org>: a `NO_COLOR` that is set and not empty turns colour off.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceFlags, TraceId, TraceState, Tracer as _, TracerProvider as _,
    };

    use super::*;

    #[test]
    fn the_trace_id_is_the_current_spans() {
        assert_eq!(current_trace_id(), None, "outside any trace");
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let caller = Context::new().with_remote_span_context(remote);
        let provider = SdkTracerProvider::builder().build();
        let tracer = provider.tracer(SERVICE_NAME);
        let cx = caller.with_span(tracer.start_with_context("baton.test", &caller));
        let _current = cx.attach();
        assert_eq!(
            current_trace_id().as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
