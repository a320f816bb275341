//! The spans of a decision's steps, children of whatever span the door opened, and the
//! decision's attributes on that span. Made with the OpenTelemetry API directly, and only
//! while the current span records: without an exporter a step costs no span at all.
//!
//! Identities and scope counts are recorded; tokens and context values never are.

use std::future::Future;

use opentelemetry::trace::{FutureExt as _, Span as _, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::cache::Source;
use crate::decision::{Decision, DecisionKind, DecisionRequest};

/// Opens the child spans of the steps, with the exporting tracer as it was when the pipeline
/// was built.
pub struct StepSpans {
    /// `None` when spans are not exported.
    tracer: Option<&'static SdkTracer>,
}

impl StepSpans {
    /// Step spans with the exporting tracer as it is now; none if spans are not exported.
    pub fn new() -> Self {
        Self {
            tracer: crate::telemetry::tracer(),
        }
    }

    /// Runs `work` in a child span of the current span, when that one is recording.
    pub fn in_child<T>(&self, name: &'static str, work: impl FnOnce() -> T) -> T {
        let Some((tracer, parent)) = self.recording_parent() else {
            return work();
        };
        // Nothing inside opens spans of its own, so the child need not become current.
        let mut span = tracer.start_with_context(name, &parent);
        let out = work();
        span.end();
        out
    }

    /// Awaits `work` in a child span of the current span, with `attribute` on it, when the
    /// current span is recording.
    pub async fn in_child_async<T>(
        &self,
        name: &'static str,
        attribute: KeyValue,
        work: impl Future<Output = T>,
    ) -> T {
        let Some((tracer, parent)) = self.recording_parent() else {
            return work.await;
        };
        let span = tracer
            .span_builder(name)
            .with_attributes([attribute])
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        let out = work.with_context(cx.clone()).await;
        cx.span().end();
        out
    }

    fn recording_parent(&self) -> Option<(&'static SdkTracer, Context)> {
        let tracer = self.tracer?;
        let parent = Context::current();
        parent.span().is_recording().then_some((tracer, parent))
    }
}

impl Default for StepSpans {
    fn default() -> Self {
        Self::new()
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records what was decided on the current span.
pub fn record_decision(request: &DecisionRequest, decision: &Decision) {
    let cx = Context::current();
    let span = cx.span();
    if !span.is_recording() {
        return;
    }
    let outcome = &decision.outcome;
    let kind = match decision.kind() {
        DecisionKind::Allow => "allow",
        DecisionKind::Deny => "deny",
        DecisionKind::ApprovalRequired => "approval_required",
    };
    span.set_attributes([
        KeyValue::new("baton.decision", kind),
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

/// Which cache tier answered, or `evaluated`, on the current span. The in-process tier
/// answers in well under a microsecond, less than a span of its own would cost, so its
/// lookups show here rather than as child spans.
pub fn record_source(source: Source) {
    let cx = Context::current();
    let span = cx.span();
    if span.is_recording() {
        span.set_attribute(KeyValue::new("baton.cache", source.as_str()));
    }
}
