//! The spans of the decision RPCs and how they join the caller's trace.
//!
//! Attribute names follow the OpenTelemetry RPC conventions (`rpc.*`) and add Baton's own under
//! `baton.*`. Identities and scope counts are recorded; tokens and context values never are.

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::decision::{Decision, DecisionRequest, Effect};

/// A span for one question: the RPC's own for Authorize and Exchange, one per item in a
/// batch. Its `baton.*` fields are filled by [`record_decision`].
macro_rules! decision_span {
    ($name:expr, $($field:tt)*) => {
        tracing::debug_span!(
            $name,
            $($field)*,
            baton.decision = tracing::field::Empty,
            baton.caller = tracing::field::Empty,
            baton.callee = tracing::field::Empty,
            baton.principal = tracing::field::Empty,
            baton.chain.length = tracing::field::Empty,
            baton.scopes.requested = tracing::field::Empty,
            baton.scopes.granted = tracing::field::Empty,
            baton.scopes.refused = tracing::field::Empty,
            baton.cached = tracing::field::Empty,
            baton.bundle.version = tracing::field::Empty,
        )
    };
}

/// The server span of a `baton.v1.DecisionService` method.
macro_rules! rpc_span {
    ($method:literal) => {
        crate::transport::spans::decision_span!(
            concat!("baton.v1.DecisionService/", $method),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = "baton.v1.DecisionService",
            rpc.method = $method,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty
        )
    };
}

pub(crate) use {decision_span, rpc_span};

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
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Makes `span` a child of the caller's span when the request carries `traceparent` (and
/// `tracestate`). A malformed header starts a new trace rather than failing the call.
pub fn join_caller_trace(span: &Span, metadata: &MetadataMap) {
    if span.is_disabled() || metadata.get("traceparent").is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Metadata(metadata));
    // Fails only when no OpenTelemetry layer is installed, and then there is no trace to join.
    let _ = span.set_parent(parent);
}

/// Records what was decided on the current question's span.
pub fn record_decision(span: &Span, request: &DecisionRequest, decision: &Decision) {
    if span.is_disabled() {
        return;
    }
    let outcome = &decision.outcome;
    span.record(
        "baton.decision",
        match outcome.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        },
    );
    span.record("baton.caller", tracing::field::display(&request.caller));
    span.record("baton.callee", tracing::field::display(&request.callee));
    span.record(
        "baton.principal",
        tracing::field::display(&request.principal),
    );
    span.record("baton.chain.length", request.delegation_chain.len());
    span.record("baton.scopes.requested", request.scopes.len());
    span.record("baton.scopes.granted", outcome.granted.len());
    span.record("baton.scopes.refused", outcome.refused.len());
    span.record("baton.bundle.version", outcome.bundle_version.as_str());
}

/// Whether the decision cache answered, on the current question's span.
pub fn record_cached(cached: bool) {
    Span::current().record("baton.cached", cached);
}

/// The RPC's status on its span: `OK` leaves the span unset, as the conventions ask of servers.
pub fn record_status<T>(span: &Span, reply: &Result<T, Status>) {
    let code = match reply {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    span.record("rpc.grpc.status_code", code as i32);
    if code != tonic::Code::Ok {
        span.record("otel.status_code", "ERROR");
    }
}
