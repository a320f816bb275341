//! The spans of the decision RPCs and how they join the caller's trace.
//!
//! Spans are made with the OpenTelemetry API directly rather than through `tracing`, and
//! attributes are built only for spans that record. Without an exporter no span is made, but
//! the caller's trace context is still extracted, so the trace id is known either way.
//!
//! Attribute names follow the OpenTelemetry RPC conventions (`rpc.*`) and add Baton's own under
//! `baton.*`. Identities and scope counts are recorded; tokens and context values never are.

use std::borrow::Cow;

use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    Span as _, SpanKind, Status as SpanStatus, TraceContextExt as _, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::Status;
use tonic::metadata::{KeyRef, MetadataMap};

use crate::decision::{Decision, DecisionRequest, Effect};

/// The instrumentation scope of Baton's spans.
const SCOPE: &str = "baton";
const SERVICE: &str = "baton.v1.DecisionService";

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

/// Makes the spans of the decision service, from the global tracer provider as it was when
/// the service was built.
pub struct Spans {
    /// `None` when spans are not exported.
    tracer: Option<BoxedTracer>,
}

impl Spans {
    pub fn new() -> Self {
        Self {
            tracer: crate::telemetry::exporting().then(|| opentelemetry::global::tracer(SCOPE)),
        }
    }

    /// Starts the server span of `method` (`baton.v1.DecisionService/<method>`), a child of
    /// the caller's span when the metadata carries `traceparent` (and `tracestate`). A
    /// malformed header starts a new trace rather than failing the call. Run the RPC's work
    /// with the returned context, and close it with [`finish`].
    pub fn start_rpc(&self, method: &'static str, metadata: &MetadataMap) -> Context {
        let parent = if metadata.get("traceparent").is_some() {
            TraceContextPropagator::new().extract(&Metadata(metadata))
        } else {
            Context::new()
        };
        let Some(tracer) = &self.tracer else {
            return parent;
        };
        let span = tracer
            .span_builder(format!("{SERVICE}/{method}"))
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        let span = cx.span();
        if span.is_recording() {
            span.set_attributes([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", SERVICE),
                KeyValue::new("rpc.method", method),
            ]);
        }
        cx
    }

    /// Runs `work` in a child span of the current span, when that one is recording.
    pub fn in_child<T>(&self, name: &'static str, work: impl FnOnce() -> T) -> T {
        let Some(tracer) = &self.tracer else {
            return work();
        };
        let parent = Context::current();
        if !parent.span().is_recording() {
            return work();
        }
        // Nothing inside opens spans of its own, so the child need not become current.
        let mut span = tracer.start_with_context(name, &parent);
        let out = work();
        span.end();
        out
    }

    /// A child context of the current span for one item of a batch; end it with
    /// [`finish_item`].
    pub fn start_batch_item(&self, index: usize) -> Context {
        let parent = Context::current();
        let Some(tracer) = self
            .tracer
            .as_ref()
            .filter(|_| parent.span().is_recording())
        else {
            return parent;
        };
        let span = tracer.start_with_context("baton.batch.item", &parent);
        let cx = parent.with_span(span);
        cx.span()
            .set_attribute(KeyValue::new("baton.batch.index", index as i64));
        cx
    }
}

impl Default for Spans {
    fn default() -> Self {
        Self::new()
    }
}

/// Records what was decided on the current span.
pub fn record_decision(request: &DecisionRequest, decision: &Decision) {
    let cx = Context::current();
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    let outcome = &decision.outcome;
    let effect = match outcome.effect {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    };
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    span.set_attributes([
        KeyValue::new("baton.decision", effect),
        KeyValue::new("baton.caller", request.caller.to_string()),
        KeyValue::new("baton.callee", request.callee.to_string()),
        KeyValue::new("baton.principal", request.principal.to_string()),
        KeyValue::new("baton.chain.length", count(request.delegation_chain.len())),
        KeyValue::new("baton.scopes.requested", count(request.scopes.len())),
        KeyValue::new("baton.scopes.granted", count(outcome.granted.len())),
        KeyValue::new("baton.scopes.refused", count(outcome.refused.len())),
        KeyValue::new("baton.bundle.version", outcome.bundle_version.clone()),
    ]);
}

/// Whether the decision cache answered, on the current span.
pub fn record_cached(cached: bool) {
    let cx = Context::current();
    let span = cx.span();
    if span.is_recording() {
        span.set_attribute(KeyValue::new("baton.cached", cached));
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
