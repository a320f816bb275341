//! The pub/sub side of the fleet: the doorbell every replica rings on `{prefix}:events`, and
//! counters of the messages on other channels, each over a subscription that reconnects by
//! itself.

use std::sync::Weak;
use std::time::Duration;

use redis::aio::PubSub;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;

use super::{EPOCH_NOTICE, Fleet, PROBE_INTERVAL};

/// Passes every doorbell to [`Fleet::notices`], and re-reads the epoch on the epoch's own,
/// reconnecting as needed. Ends with the fleet.
pub(super) async fn listen(fleet: Weak<Fleet>, client: redis::Client) {
    loop {
        let Some(strong) = fleet.upgrade() else {
            return;
        };
        let (channel, limit) = (strong.key("events"), strong.settings.connect_timeout);
        drop(strong);
        if let Some(pubsub) = subscribe(&client, &channel, limit).await {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let Some(strong) = fleet.upgrade() else {
                    return;
                };
                let Ok(notice) = message.get_payload::<String>() else {
                    tracing::debug!(%channel, "ignoring a doorbell that is not text");
                    continue;
                };
                if notice == EPOCH_NOTICE {
                    strong.refresh_epoch().await;
                }
                // No listener is no error: whoever keeps shared state subscribes when it starts.
                let _ = strong.notices.send(notice);
            }
            tracing::debug!(%channel, "lost the doorbell subscription; resubscribing");
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Counts the messages on `channel` into `counter`, and a fresh subscription as one more:
/// messages may have been missed while there was none. Ends once nobody holds a receiver.
pub(super) async fn count(
    client: redis::Client,
    channel: String,
    limit: Duration,
    counter: watch::Sender<u64>,
) {
    let mut seen = 0u64;
    while !counter.is_closed() {
        if let Some(pubsub) = subscribe(&client, &channel, limit).await {
            tracing::debug!(%channel, "subscribed");
            seen += 1;
            counter.send_replace(seen);
            let mut messages = pubsub.into_on_message();
            loop {
                tokio::select! {
                    message = messages.next() => {
                        if message.is_none() {
                            tracing::warn!(%channel, "lost the subscription; resubscribing");
                            break;
                        }
                        seen += 1;
                        counter.send_replace(seen);
                    }
                    () = counter.closed() => return,
                }
            }
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// A connection subscribed to `channel`, or `None` if Redis did not allow one within `limit`.
async fn subscribe(client: &redis::Client, channel: &str, limit: Duration) -> Option<PubSub> {
    let connected = tokio::time::timeout(limit, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    })
    .await;
    match connected {
        Ok(Ok(pubsub)) => Some(pubsub),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %channel, "cannot subscribe");
            None
        }
        Err(_) => {
            tracing::debug!(%channel, "subscribing timed out");
            None
        }
    }
}
