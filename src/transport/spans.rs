//! The server spans of the decision RPCs and how they join the caller's trace; the steps of a
//! decision add their child spans and attributes in the pipeline (`crate::pipeline::spans`).
//!
//! Spans are made with the OpenTelemetry API directly rather than through `tracing`, and the
//! decision's attributes are built only for spans that record. Without an exporter no span is
//! made, but the caller's trace context is still extracted, so the trace id is known either
//! way.
//!
//! Attribute names follow the OpenTelemetry RPC conventions (`rpc.*`) and add Baton's own under
//! `baton.*`. Identities and scope counts are recorded; tokens and context values never are.

use std::borrow::Cow;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, Status as SpanStatus, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use tonic::Status;
use tonic::metadata::{KeyRef, MetadataMap};

const SERVICE: &str = "baton.v1.DecisionService";

/// Attributes a server span ends with: three `rpc.*`, nine `baton.*` of the decision, the
/// cache's answer and the status code. Sized up front, so recording them never reallocates.
const RPC_SPAN_ATTRIBUTES: usize = 14;

/// A decision RPC: its span is named `baton.v1.DecisionService/<method>`.
#[derive(Debug, Clone, Copy)]
pub enum Rpc {
    Authorize,
    BatchAuthorize,
    Exchange,
}

impl Rpc {
    fn method(self) -> &'static str {
        match self {
            Self::Authorize => "Authorize",
            Self::BatchAuthorize => "BatchAuthorize",
            Self::Exchange => "Exchange",
        }
    }

    fn span_name(self) -> &'static str {
        match self {
            Self::Authorize => "baton.v1.DecisionService/Authorize",
            Self::BatchAuthorize => "baton.v1.DecisionService/BatchAuthorize",
            Self::Exchange => "baton.v1.DecisionService/Exchange",
        }
    }
}

/// Reads W3C trace context from gRPC metadata; binary (`-bin`) entries are not text and are
/// skipped.
struct Metadata<'a>(&'a MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Makes the server spans of the decision service, with the exporting tracer as it was when
/// the service was built.
pub struct Spans {
    /// `None` when spans are not exported.
    tracer: Option<&'static SdkTracer>,
}

impl Spans {
    pub fn new() -> Self {
        Self {
            tracer: crate::telemetry::tracer(),
        }
    }

    /// Starts the server span of `rpc`, a child of the caller's span when the metadata
    /// carries `traceparent` (and `tracestate`). A malformed header starts a new trace rather
    /// than failing the call. Run the RPC's work with the returned context, and close it with
    /// [`finish`].
    pub fn start_rpc(&self, rpc: Rpc, metadata: &MetadataMap) -> Context {
        let parent = if metadata.get("traceparent").is_some() {
            TraceContextPropagator::new().extract(&Metadata(metadata))
        } else {
            Context::new()
        };
        let Some(tracer) = self.tracer else {
            return parent;
        };
        let mut attributes = Vec::with_capacity(RPC_SPAN_ATTRIBUTES);
        attributes.extend([
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", SERVICE),
            KeyValue::new("rpc.method", rpc.method()),
        ]);
        let span = tracer
            .span_builder(rpc.span_name())
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        parent.with_span(span)
    }

    /// A child context of the current span for one item of a batch; end it with
    /// [`finish_item`].
    pub fn start_batch_item(&self, index: usize) -> Context {
        let Some((tracer, parent)) = self.recording_parent() else {
            return Context::current();
        };
        let span = tracer
            .span_builder("baton.batch.item")
            .with_attributes([KeyValue::new("baton.batch.index", count(index))])
            .start_with_context(tracer, &parent);
        parent.with_span(span)
    }

    fn recording_parent(&self) -> Option<(&'static SdkTracer, Context)> {
        let tracer = self.tracer?;
        let parent = Context::current();
        parent.span().is_recording().then_some((tracer, parent))
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Default for Spans {
    fn default() -> Self {
        Self::new()
    }
}

/// Ends the span of `cx` with the RPC's status; `OK` leaves the span's status unset, as the
/// conventions ask of servers.
pub fn finish<T>(cx: &Context, reply: &Result<T, Status>) {
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    let code = match reply {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    span.set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64));
    if code != tonic::Code::Ok {
        span.set_status(SpanStatus::Error {
            description: Cow::Borrowed(code.description()),
        });
    }
    span.end();
}

/// Ends the span of a batch item; an item refused with an error marks it failed.
pub fn finish_item(cx: &Context, answered: bool) {
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    if !answered {
        span.set_status(SpanStatus::error("the item was refused"));
    }
    span.end();
}
