//! A replay fed from a trail's channel of record batches ([`Records`]): the reading goes on
//! where the trail is, the deciding on a blocking thread, so neither waits on the other and the
//! runtime's workers never run the decision core for long.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Phase, Replay, ReplayReport, Window};
use crate::audit::{AuditError, Records};
use crate::bundle::PolicyBundle;
use crate::decision::DecisionSettings;

/// Replays every record `records` brings against `bundle` under `settings`, calling `progress`
/// with the records offered so far after each batch. Fails if the trail could not be read to
/// the end: a report over part of the window would understate what changes.
pub async fn replay_records(
    bundle: Arc<PolicyBundle>,
    settings: DecisionSettings,
    window: Window,
    mut records: Records,
    mut progress: impl FnMut(u64) + Send + 'static,
) -> Result<ReplayReport, AuditError> {
    let deciding = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut replay = Replay::new(bundle, settings, window);
        let mut offered = 0u64;
        while let Some(batch) = records.blocking_recv() {
            let batch = batch?;
            offered += batch.len() as u64;
            for record in &batch {
                replay.offer(record);
            }
            progress(offered);
        }
        Ok(finish(replay, started.elapsed()))
    });
    deciding
        .await
        .map_err(|e| AuditError::Unavailable(std::io::Error::other(e)))?
}

/// The report, with the time spent deciding and the rest of the `total` (reading, parsing,
/// comparing) as its phases.
pub fn finish(replay: Replay, total: Duration) -> ReplayReport {
    let deciding = replay.deciding();
    let mut report = replay.finish();
    report
        .phases
        .push(phase("read and compare", total.saturating_sub(deciding)));
    report.phases.push(phase("decide", deciding));
    report
}

/// A phase named `name` that took `took`.
pub fn phase(name: &str, took: Duration) -> Phase {
    Phase {
        name: name.to_owned(),
        millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    }
}
