//! One server through a connection manager, or a Cluster through its own client; both
//! reconnect by themselves.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

use super::{FleetError, RedisSettings};

pub enum Connection {
    Single {
        manager: ConnectionManager,
        /// For background work, which may take longer than a request-path command: its own
        /// connection, so a large batch never delays a request's read.
        background: ConnectionManager,
        client: redis::Client,
    },
    Cluster {
        client: Box<ClusterClient>,
        connection: ArcSwapOption<ClusterConnection>,
        /// The same nodes without the request-path response timeout, for background work,
        /// which its callers bound themselves (see `Fleet::command`).
        background_client: Box<ClusterClient>,
        background: ArcSwapOption<ClusterConnection>,
        connect_timeout: Duration,
        /// Pub/sub on one seed node: a Cluster forwards every PUBLISH to every node.
        seed: redis::Client,
    },
}

/// A connection for background work, cloned out of [`Connection`] for one command.
pub enum Background {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    pub fn new(settings: &RedisSettings) -> Result<Self, FleetError> {
        let first = settings.urls.first().ok_or(FleetError::NoUrl)?;
        let tls = &settings.tls;
        if tls.is_configured()
            && let Some(plain) = settings.urls.iter().find(|u| !u.starts_with("rediss://"))
        {
            return Err(FleetError::TlsWithoutRediss { url: plain.clone() });
        }
        let client_of = |url: &String| {
            let client = if tls.is_configured() {
                redis::Client::build_with_tls(url.as_str(), tls.certificates())
            } else {
                redis::Client::open(url.as_str())
            };
            client.map_err(|source| FleetError::Url {
                url: url.clone(),
                source,
            })
        };
        let seed = client_of(first)?;
        if settings.cluster {
            let builder = || {
                let builder = ClusterClient::builder(settings.urls.iter().map(String::as_str))
                    .connection_timeout(settings.connect_timeout);
                if tls.is_configured() {
                    builder.certs(tls.certificates())
                } else {
                    builder
                }
            };
            let cluster_error = |source| FleetError::Url {
                url: settings.urls.join(","),
                source,
            };
            let client = builder()
                .response_timeout(settings.op_timeout)
                .build()
                .map_err(cluster_error)?;
            let background_client = builder().build().map_err(cluster_error)?;
            return Ok(Self::Cluster {
                client: Box::new(client),
                connection: ArcSwapOption::empty(),
                background_client: Box::new(background_client),
                background: ArcSwapOption::empty(),
                connect_timeout: settings.connect_timeout,
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
        // Bounded by the caller's own timeout instead (see `Fleet::command`).
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
    pub async fn ensure_connected(&self) {
        if let Self::Cluster {
            client,
            connection,
            connect_timeout,
            ..
        } = self
        {
            let _ = connect_cluster(client, connection, *connect_timeout).await;
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
                None => Err(not_connected()),
            },
        }
    }

    /// The background connection, opening it first on a Cluster: whoever runs background work
    /// may come before the probe has connected.
    pub async fn background(&self) -> RedisResult<Background> {
        match self {
            Self::Single { background, .. } => Ok(Background::Single(background.clone())),
            Self::Cluster {
                background_client,
                background,
                connect_timeout,
                ..
            } => connect_cluster(background_client, background, *connect_timeout)
                .await
                .map(|connection| Background::Cluster(ClusterConnection::clone(&connection))),
        }
    }
}

/// The connection in `slot`, connecting `client` within `limit` if there is none yet.
async fn connect_cluster(
    client: &ClusterClient,
    slot: &ArcSwapOption<ClusterConnection>,
    limit: Duration,
) -> RedisResult<Arc<ClusterConnection>> {
    if let Some(connection) = slot.load_full() {
        return Ok(connection);
    }
    let connected = match tokio::time::timeout(limit, client.get_async_connection()).await {
        Ok(connected) => Arc::new(connected?),
        Err(_) => return Err(not_connected()),
    };
    // Two callers racing may both connect; either connection serves, and the other is dropped.
    slot.store(Some(Arc::clone(&connected)));
    Ok(connected)
}

impl Background {
    /// Every key matching `pattern`, by `SCAN` with `COUNT count` (never `KEYS`, which blocks
    /// Redis while it walks the whole keyspace). On a Cluster each primary holds part of the
    /// keys, with a cursor of its own: the first `SCAN` goes to all of them, and each one's
    /// cursor is followed on that node alone. A key may be given more than once.
    pub async fn scan(&mut self, pattern: &str, count: usize) -> RedisResult<Vec<String>> {
        let scan = |cursor: u64| {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(count)
                .clone()
        };
        let mut keys = Vec::new();
        match self {
            Self::Single(connection) => {
                let mut cursor = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) =
                        scan(cursor).query_async(connection).await?;
                    keys.extend(batch);
                    if next == 0 {
                        return Ok(keys);
                    }
                    cursor = next;
                }
            }
            Self::Cluster(connection) => {
                use redis::cluster_routing::{
                    MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo,
                };
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                // Without a way to merge their answers, the Cluster client answers a
                // command sent to every primary with a map from each one's address.
                let first: Vec<(String, (u64, Vec<String>))> =
                    redis::from_redis_value(connection.route_command(scan(0), all).await?)?;
                for (node, (mut cursor, batch)) in first {
                    keys.extend(batch);
                    let (host, port) = node
                        .rsplit_once(':')
                        .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
                        .ok_or_else(|| {
                            redis::RedisError::from((
                                redis::ErrorKind::Client,
                                "a Cluster node without a port",
                                node.clone(),
                            ))
                        })?;
                    while cursor != 0 {
                        let on_node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        let (next, batch): (u64, Vec<String>) = redis::from_redis_value(
                            connection.route_command(scan(cursor), on_node).await?,
                        )?;
                        keys.extend(batch);
                        cursor = next;
                    }
                }
                Ok(keys)
            }
        }
    }
}

fn not_connected() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "not connected to the Cluster yet"))
}

/// Delegates to whichever connection it holds, so commands, pipelines and scripts run on
/// either alike.
impl ConnectionLike for Background {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
