//! One server through a connection manager, or a Cluster through its own client; both
//! reconnect by themselves.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult};

use super::{FleetError, RedisSettings};

pub enum Connection {
    Single {
        manager: ConnectionManager,
        /// For background batches, which may take longer than a request-path command: its
        /// own connection, so a large batch never delays a request's read.
        background: ConnectionManager,
        client: redis::Client,
    },
    Cluster {
        client: Box<ClusterClient>,
        connection: ArcSwapOption<ClusterConnection>,
        /// Pub/sub on one seed node: a Cluster forwards every PUBLISH to every node.
        seed: redis::Client,
    },
}

impl Connection {
    pub fn new(settings: &RedisSettings) -> Result<Self, FleetError> {
        let first = settings.urls.first().ok_or(FleetError::NoUrl)?;
        let client_of = |url: &String| {
            redis::Client::open(url.as_str()).map_err(|source| FleetError::Url {
                url: url.clone(),
                source,
            })
        };
        let seed = client_of(first)?;
        if settings.cluster {
            let client = ClusterClient::builder(settings.urls.iter().map(String::as_str))
                .connection_timeout(settings.connect_timeout)
                .response_timeout(settings.op_timeout)
                .build()
                .map_err(|source| FleetError::Url {
                    url: settings.urls.join(","),
                    source,
                })?;
            return Ok(Self::Cluster {
                client: Box::new(client),
                connection: ArcSwapOption::empty(),
                seed,
            });
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.op_timeout))
            .set_number_of_retries(1)
            .set_max_delay(settings.connect_timeout);
        // Lazy: the first command connects, so a Redis that is down at startup delays nothing.
        let manager =
            ConnectionManager::new_lazy_with_config(seed.clone(), config).map_err(|source| {
                FleetError::Url {
                    url: first.clone(),
                    source,
                }
            })?;
        // Bounded by the caller's own timeout instead (see `Fleet::pipe_query`).
        let background_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(settings.connect_timeout);
        let background = ConnectionManager::new_lazy_with_config(seed.clone(), background_config)
            .map_err(|source| FleetError::Url {
            url: first.clone(),
            source,
        })?;
        Ok(Self::Single {
            manager,
            background,
            client: seed,
        })
    }

    pub fn pubsub_client(&self) -> &redis::Client {
        match self {
            Self::Single { client, .. } => client,
            Self::Cluster { seed, .. } => seed,
        }
    }

    /// Opens the Cluster connection if there is none yet; a single server connects lazily.
    pub async fn ensure_connected(&self, settings: &RedisSettings) {
        let Self::Cluster {
            client, connection, ..
        } = self
        else {
            return;
        };
        if connection.load().is_some() {
            return;
        }
        let attempt = client.get_async_connection();
        if let Ok(Ok(connected)) = tokio::time::timeout(settings.connect_timeout, attempt).await {
            connection.store(Some(Arc::new(connected)));
        }
    }

    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Self::Single { manager, .. } => cmd.query_async(&mut manager.clone()).await,
            Self::Cluster { connection, .. } => match connection.load_full() {
                Some(connection) => {
                    cmd.query_async(&mut ClusterConnection::clone(&connection))
                        .await
                }
                None => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "not connected to the Cluster yet",
                ))),
            },
        }
    }

    /// Sends `pipe` in one round trip, on the background connection of a single server.
    pub async fn pipe_query<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        match self {
            Self::Single { background, .. } => pipe.query_async(&mut background.clone()).await,
            Self::Cluster { connection, .. } => match connection.load_full() {
                Some(connection) => {
                    pipe.query_async(&mut ClusterConnection::clone(&connection))
                        .await
                }
                None => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "not connected to the Cluster yet",
                ))),
            },
        }
    }
}
