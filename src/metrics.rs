//! Every instrument Baton exports at `/metrics`, in one registry.
//!
//! Names and units follow the OpenMetrics and Prometheus conventions: a `baton_` prefix,
//! base units in the name (`_seconds`), and counters suffixed `_total` by the encoder. Adding
//! an instrument is a field in [`Metrics`] and one `registry.register*` call in
//! [`Metrics::new`]; producers then call a method on it through `Pipeline::metrics`.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::audit::AuditStats;
use crate::cache::CacheStats;

/// The `Content-Type` of [`Metrics::render`]: OpenMetrics text, which Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What became of one question: `allow`, `deny`, `approval_required` when it waits for a
/// human, or `error` when it was refused before a decision (bad input, an untrusted chain, a
/// token that does not verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// The hop was allowed.
    Allow = 0,
    /// The hop was denied.
    Deny = 1,
    /// The question was refused before a decision.
    Error = 2,
    /// The policies allow the hop once a human approves it.
    ApprovalRequired = 3,
}

impl DecisionOutcome {
    /// Every outcome, in discriminant order.
    const ALL: [Self; 4] = [Self::Allow, Self::Deny, Self::Error, Self::ApprovalRequired];

    fn label(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Error => "error",
            Self::ApprovalRequired => "approval_required",
        }
    }
}

impl From<crate::decision::DecisionKind> for DecisionOutcome {
    fn from(kind: crate::decision::DecisionKind) -> Self {
        use crate::decision::DecisionKind;
        match kind {
            DecisionKind::Allow => Self::Allow,
            DecisionKind::Deny => Self::Deny,
            DecisionKind::ApprovalRequired => Self::ApprovalRequired,
        }
    }
}

/// A tier of the decision cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTier {
    /// The in-process cache.
    Local = 0,
    /// The Redis tier shared by the replicas.
    Redis = 1,
}

impl CacheTier {
    /// Every tier, in discriminant order.
    const ALL: [Self; 2] = [Self::Local, Self::Redis];

    /// The `tier` label's value: `local` or `redis`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Redis => "redis",
        }
    }
}

/// A token operation that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOperation {
    /// Verifying a subject token a hop presented.
    Verify,
    /// Signing a verdict.
    Sign,
}

impl TokenOperation {
    fn label(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Sign => "sign",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    tier: &'static str,
    result: &'static str,
}

impl CacheLabels {
    fn new(tier: CacheTier, hit: bool) -> Self {
        Self {
            tier: tier.label(),
            result: if hit { "hit" } else { "miss" },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BundleLabels {
    version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AuditLabels {
    result: &'static str,
}

/// Counts their producers keep themselves (the cache, the Redis connection, the audit
/// writer), read when Prometheus scrapes rather than mirrored on every event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gathered {
    /// The decision cache's counters.
    pub cache: CacheStats,
    /// Entries in the in-process decision cache.
    pub cache_entries: u64,
    /// Where audit records ended up.
    pub audit: AuditStats,
    /// Audit records waiting between the decision path and the writer.
    pub audit_queue_depth: u64,
}

/// Encodes the last [`Gathered`] handed to [`Metrics::render`].
#[derive(Debug, Default)]
struct GatheredCollector(Mutex<Gathered>);

impl GatheredCollector {
    fn set(&self, gathered: Gathered) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = gathered;
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let counter = ConstCounter::new(value);
    counter.encode(e.encode_descriptor(name, help, None, counter.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(e.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for GatheredCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let g = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counter(
            &mut e,
            "redis_errors",
            "Redis commands that failed or did not answer in time.",
            g.cache.redis_errors,
        )?;
        counter(
            &mut e,
            "cache_redis_fallbacks",
            "Decision cache lookups and writes that skipped Redis because it was down or slow.",
            g.cache.redis_fallbacks,
        )?;
        counter(
            &mut e,
            "cache_redis_writes_skipped",
            "Decisions not written to Redis because too many writes were in flight.",
            g.cache.redis_writes_skipped,
        )?;
        gauge(
            &mut e,
            "cache_entries",
            "Decisions held in the in-process cache.",
            g.cache_entries,
        )?;
        gauge(
            &mut e,
            "audit_queue_depth",
            "Audit records waiting between the decision path and the writer.",
            g.audit_queue_depth,
        )?;
        counter(
            &mut e,
            "audit_queue_full",
            "Audit records that found the queue full (then waited, or were dropped).",
            g.audit.queue_full,
        )?;
        let a = &g.audit;
        let records = [
            ("written", a.written),
            ("spooled", a.spooled),
            ("replayed", a.replayed),
            ("dropped", a.dropped),
            ("lost", a.lost),
        ];
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family = e.encode_descriptor(
            "audit_records",
            "Audit records by what became of them: written to the sink, spooled while Redis was \
             unreachable, replayed from the spool, dropped on a full queue, or lost.",
            None,
            kind,
        )?;
        for (result, value) in records {
            let labels = AuditLabels { result };
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        counter(
            &mut e,
            "audit_unreadable_lines",
            "Lines of the audit file and its segments that are not audit records (each logged with file and line).",
            a.unreadable_lines,
        )?;
        counter(
            &mut e,
            "audit_foreign_files",
            "Files in the audit segments directory that are not Baton's, or segments without a usable index.",
            a.foreign_files,
        )?;
        counter(
            &mut e,
            "audit_segments_rotated",
            "Times the audit file was rotated into a segment.",
            a.segments_rotated,
        )?;
        counter(
            &mut e,
            "audit_segments_deleted",
            "Audit segments deleted past the retention (--audit-keep).",
            a.segments_deleted,
        )?;
        Ok(())
    }
}

/// The instruments, cheap to update from any thread: counters are atomics. Series on the
/// request path are resolved once here, so counting one takes no lock and no hashing.
pub struct Metrics {
    registry: Registry,
    decisions: [Counter; DecisionOutcome::ALL.len()],
    authorize_duration: Histogram,
    /// Per tier, in [`CacheTier::ALL`] order: misses, then hits.
    cache_lookups: [[Counter; 2]; CacheTier::ALL.len()],
    token_failures: Family<TokenLabels, Counter>,
    bundle_info: Family<BundleLabels, Gauge>,
    bundle_revision: Gauge,
    bundle_activations: Counter,
    store_reseeds: Family<StoreLabels, Counter>,
    shadow_compared: Counter,
    shadow_dropped: Counter,
    shadow_disagreements: Family<PolicyLabels, Counter>,
    gathered: std::sync::Arc<GatheredCollector>,
}

impl Metrics {
    /// Every instrument, registered under the `baton` prefix, all at zero.
    pub fn new() -> Self {
        // Process metrics keep their standard, unprefixed names; Baton's own carry `baton_`.
        let mut root = Registry::default();
        root.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        let registry = root.sub_registry_with_prefix("baton");
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "decisions",
            "Questions answered, by outcome: allow, deny, approval_required, or error (refused \
             before deciding)",
            decisions.clone(),
        );
        let decisions = DecisionOutcome::ALL.map(|outcome| {
            decisions.get_or_create_owned(&OutcomeLabels {
                outcome: outcome.label(),
            })
        });
        // 50 µs to about 1.6 s: a cached answer takes tens of microseconds, a cold evaluation
        // of a large bundle milliseconds.
        let authorize_duration = Histogram::new(exponential_buckets(50e-6, 2.0, 16));
        registry.register_with_unit(
            "authorize_duration",
            "Time a question takes to answer, whichever door it came through, from the decoded \
             request to the stamped, signed and recorded decision",
            Unit::Seconds,
            authorize_duration.clone(),
        );
        let lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Decision cache lookups, by tier and result: hit or miss",
            lookups.clone(),
        );
        let cache_lookups = CacheTier::ALL.map(|tier| {
            [false, true].map(|hit| lookups.get_or_create_owned(&CacheLabels::new(tier, hit)))
        });
        let token_failures = Family::default();
        registry.register(
            "token_failures",
            "Subject tokens that failed verification, and verdicts that could not be signed",
            token_failures.clone(),
        );
        let bundle_info = Family::default();
        registry.register(
            "bundle_info",
            "The active policy bundle: 1, labelled with its version",
            bundle_info.clone(),
        );
        let bundle_revision = Gauge::default();
        registry.register(
            "bundle_revision",
            "The store revision of the active bundle; 0 for a bundle loaded from a directory",
            bundle_revision.clone(),
        );
        let bundle_activations = Counter::default();
        registry.register(
            "bundle_activations",
            "Bundles made active, the one loaded at start included",
            bundle_activations.clone(),
        );
        let store_reseeds = Family::default();
        registry.register(
            "store_reseeds",
            "Times this replica found a shared store (revocations, bundles) emptied behind its \
             back and re-seeded it from its own durable copy, by store",
            store_reseeds.clone(),
        );
        let shadow_compared = Counter::default();
        registry.register(
            "shadow_compared",
            "Sampled questions decided again against the shadow bundle",
            shadow_compared.clone(),
        );
        let shadow_dropped = Counter::default();
        registry.register(
            "shadow_dropped",
            "Sampled questions not compared because the shadow worker's queue was full",
            shadow_dropped.clone(),
        );
        let shadow_disagreements = Family::default();
        registry.register(
            "shadow_disagreements",
            "Sampled questions the shadow bundle would have answered differently, by a policy \
             behind the difference (at most 100 policies, the rest as `(other)`); reset when \
             another revision becomes the shadow",
            shadow_disagreements.clone(),
        );
        let gathered = std::sync::Arc::new(GatheredCollector::default());
        registry.register_collector(Box::new(std::sync::Arc::clone(&gathered)));
        Self {
            registry: root,
            decisions,
            authorize_duration,
            cache_lookups,
            token_failures,
            bundle_info,
            bundle_revision,
            bundle_activations,
            store_reseeds,
            shadow_compared,
            shadow_dropped,
            shadow_disagreements,
            gathered,
        }
    }

    /// Counts one sampled question decided against the shadow bundle.
    pub fn shadow_compared(&self) {
        self.shadow_compared.inc();
    }

    /// Counts one sampled question dropped on a full shadow queue.
    pub fn shadow_dropped(&self) {
        self.shadow_dropped.inc();
    }

    /// Counts one disagreement behind `policy`; the caller bounds the distinct values.
    pub fn shadow_disagreed(&self, policy: &str) {
        self.shadow_disagreements
            .get_or_create(&PolicyLabels {
                policy: policy.to_owned(),
            })
            .inc();
    }

    /// Forgets the previous shadow's disagreements, whose policies may not exist in the next.
    pub fn shadow_reset(&self) {
        self.shadow_disagreements.clear();
    }

    /// Counts one re-seed of the shared store `store` from this replica's copy.
    pub fn store_reseeded(&self, store: &'static str) {
        self.store_reseeds
            .get_or_create(&StoreLabels { store })
            .inc();
    }

    /// Counts one question by what became of it.
    pub fn decided(&self, outcome: DecisionOutcome) {
        self.decisions[outcome as usize].inc();
    }

    /// Records how long one question took to answer.
    pub fn authorize_took(&self, elapsed: Duration) {
        self.authorize_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts one decision cache lookup in `tier`, a hit or a miss.
    pub fn cache_lookup(&self, tier: CacheTier, hit: bool) {
        self.cache_lookups[tier as usize][usize::from(hit)].inc();
    }

    /// Counts a subject token that failed verification, or a verdict that could not be signed.
    pub fn token_failed(&self, operation: TokenOperation) {
        self.token_failures
            .get_or_create(&TokenLabels {
                operation: operation.label(),
            })
            .inc();
    }

    /// Marks `version` as the active bundle; the previous one's series goes away.
    pub fn bundle_activated(&self, version: &str) {
        self.bundle_activations.inc();
        self.bundle_info.clear();
        self.bundle_info
            .get_or_create(&BundleLabels {
                version: version.to_owned(),
            })
            .set(1);
    }

    /// The store revision of the active bundle.
    pub fn bundle_revision(&self, revision: u64) {
        self.bundle_revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    /// The exposition text Prometheus scrapes, with `gathered` as the producers' counts.
    pub fn render(&self, gathered: Gathered) -> String {
        self.gathered.set(gathered);
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a label we control.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_follow_the_conventions() {
        let metrics = Metrics::new();
        metrics.decided(DecisionOutcome::Allow);
        metrics.decided(DecisionOutcome::Allow);
        metrics.decided(DecisionOutcome::Error);
        metrics.decided(DecisionOutcome::ApprovalRequired);
        metrics.authorize_took(Duration::from_micros(120));
        metrics.cache_lookup(CacheTier::Local, true);
        metrics.token_failed(TokenOperation::Verify);
        metrics.bundle_activated("v1");
        metrics.bundle_activated("v2");
        metrics.bundle_revision(7);
        let text = metrics.render(Gathered {
            cache: CacheStats {
                redis_errors: 3,
                redis_fallbacks: 4,
                ..CacheStats::default()
            },
            cache_entries: 5,
            audit: AuditStats {
                written: 10,
                spooled: 2,
                dropped: 1,
                unreadable_lines: 7,
                segments_deleted: 8,
                ..AuditStats::default()
            },
            audit_queue_depth: 6,
        });
        for line in [
            r#"baton_decisions_total{outcome="allow"} 2"#,
            r#"baton_decisions_total{outcome="error"} 1"#,
            r#"baton_decisions_total{outcome="approval_required"} 1"#,
            "baton_authorize_duration_seconds_count 1",
            r#"baton_cache_lookups_total{tier="local",result="hit"} 1"#,
            r#"baton_token_failures_total{operation="verify"} 1"#,
            r#"baton_bundle_info{version="v2"} 1"#,
            "baton_bundle_revision 7",
            "baton_bundle_activations_total 2",
            "baton_redis_errors_total 3",
            "baton_cache_redis_fallbacks_total 4",
            "baton_cache_entries 5",
            "baton_audit_queue_depth 6",
            r#"baton_audit_records_total{result="written"} 10"#,
            r#"baton_audit_records_total{result="spooled"} 2"#,
            r#"baton_audit_records_total{result="dropped"} 1"#,
            r#"baton_audit_records_total{result="lost"} 0"#,
            "baton_audit_unreadable_lines_total 7",
            "baton_audit_segments_deleted_total 8",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(!text.contains(r#"version="v1""#), "{text}");
    }
}
