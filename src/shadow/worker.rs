//! The one thread that decides sampled questions against the shadow bundle.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use super::{Sampled, Shared, compare, refused_by_shadow};
use crate::audit::{Audit, AuditRecord, ShadowRecord};
use crate::decision::{DecisionSettings, decide};

pub(super) struct Worker {
    pub shared: Arc<Shared>,
    pub settings: DecisionSettings,
    pub audit: Arc<Audit>,
    /// Where audit records are written through; `None` outside a runtime, when disagreements
    /// are only counted.
    pub runtime: Option<tokio::runtime::Handle>,
}

impl Worker {
    /// Decides what arrives until every sender is gone.
    pub fn run(self, received: &Receiver<Sampled>) {
        lower_priority();
        while let Ok(sampled) = received.recv() {
            self.compare(sampled);
        }
    }

    fn compare(&self, sampled: Sampled) {
        let Some(shadowed) = self.shared.installed.load_full() else {
            return;
        };
        if shadowed.revision != sampled.revision {
            return;
        }
        let disagreement = match decide(&shadowed.bundle, &sampled.request, &self.settings) {
            Ok(outcome) => compare(
                &sampled.live,
                &outcome,
                &self.settings.approval_obligation,
                (sampled.live.bundle_version == shadowed.against).then_some(&shadowed.changed),
            ),
            Err(invalid) => refused_by_shadow(&sampled.live, invalid.to_string()),
        };
        // Metrics are counted under the tally's lock, so a status that shows a comparison
        // never runs ahead of `/metrics`.
        {
            let mut tally = self.shared.tally();
            self.shared.metrics.shadow_compared();
            if disagreement.is_empty() {
                tally.agreed();
                return;
            }
            for policy in tally.disagreed(&disagreement.policies, &sampled.decision_id) {
                self.shared.metrics.shadow_disagreed(&policy);
            }
        }
        if let Some(runtime) = &self.runtime
            && self.audit.is_on()
        {
            let record = AuditRecord::shadow_disagreement(
                ShadowRecord {
                    decision_id: sampled.decision_id,
                    transaction_id: sampled.transaction_id,
                    principal: sampled.request.principal,
                    caller: sampled.request.caller,
                    callee: sampled.request.callee,
                    requested: sampled.request.scopes,
                    live_version: sampled.live.bundle_version,
                    shadow_revision: shadowed.revision,
                    shadow_version: shadowed.bundle.version().to_owned(),
                    disagreement,
                },
                sampled.at,
            );
            runtime.block_on(self.audit.record(record));
        }
    }
}

/// Gives the worker only CPU time no request wants: `SCHED_IDLE` on Linux, the lowest
/// priority elsewhere. Without it the comparison would compete with requests on equal terms.
fn lower_priority() {
    use thread_priority::{ThreadPriority, set_current_thread_priority};
    #[cfg(target_os = "linux")]
    let lowered = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        thread_priority::ThreadSchedulePolicy::Normal(
            thread_priority::NormalThreadSchedulePolicy::Idle,
        ),
    );
    #[cfg(not(target_os = "linux"))]
    let lowered = set_current_thread_priority(ThreadPriority::Min);
    if let Err(e) = lowered {
        tracing::warn!(error = ?e, "cannot lower the shadow worker's priority; trying the lowest nice value");
        #[cfg(target_os = "linux")]
        if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
            tracing::warn!(error = ?e, "the shadow worker runs at normal priority");
        }
    }
}
