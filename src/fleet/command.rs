//! Commands whose callers must hear why they failed: admin calls, the minter's replay guard.
//! Unlike [`Fleet::query`], they run on the background connection within a limit the caller
//! chooses, and hand back Redis's own error rather than reading as "no answer".

use std::time::Duration;

use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, ScriptInvocation};

use super::Fleet;
use super::connection::Background;

/// Why a command given to [`Fleet::command`], [`Fleet::pipeline`] or [`Fleet::script`] has no
/// answer.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Redis answered with an error, or the connection failed.
    #[error("Redis failed on {what}")]
    Failed {
        /// What the command was for, as the caller named it.
        what: String,
        /// Redis's own error.
        #[source]
        source: redis::RedisError,
    },
    /// No answer within the caller's limit: Redis is unreachable or too slow.
    #[error("Redis did not answer {what} within {limit:?}")]
    TimedOut {
        /// What the command was for, as the caller named it.
        what: String,
        /// The caller's limit.
        limit: Duration,
    },
}

impl Fleet {
    /// Runs `cmd` within `limit`. A failure is counted and marks Redis down, like
    /// [`Fleet::query`]'s, and is returned.
    pub async fn command<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &Cmd,
        limit: Duration,
    ) -> Result<T, CommandError> {
        let run = async {
            let mut connection = self.connection.background().await?;
            cmd.query_async(&mut connection).await
        };
        self.bounded(what, limit, run).await
    }

    /// Sends `pipe` in one round trip within `limit`; an atomic pipeline is one MULTI
    /// transaction. On a Cluster every key of `pipe` must hash to one slot.
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        what: &str,
        pipe: &Pipeline,
        limit: Duration,
    ) -> Result<T, CommandError> {
        let run = async {
            let mut connection = self.connection.background().await?;
            pipe.query_async(&mut connection).await
        };
        self.bounded(what, limit, run).await
    }

    /// Runs a Lua script within `limit`, loading it first if Redis does not know it yet. On a
    /// Cluster every key of `invocation` must hash to one slot.
    pub async fn script<T: FromRedisValue>(
        &self,
        what: &str,
        invocation: &ScriptInvocation<'_>,
        limit: Duration,
    ) -> Result<T, CommandError> {
        let run = async {
            let mut connection: Background = self.connection.background().await?;
            invocation.invoke_async(&mut connection).await
        };
        self.bounded(what, limit, run).await
    }

    /// Every key matching `pattern` (a pattern of full keys, prefix included), scanning
    /// `count` keys a step, all within `limit`; see [`Background::scan`].
    pub async fn scan(
        &self,
        what: &str,
        pattern: &str,
        count: usize,
        limit: Duration,
    ) -> Result<Vec<String>, CommandError> {
        let run = async {
            let mut connection = self.connection.background().await?;
            connection.scan(pattern, count).await
        };
        self.bounded(what, limit, run).await
    }

    async fn bounded<T>(
        &self,
        what: &str,
        limit: Duration,
        run: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, CommandError> {
        let answer = tokio::time::timeout(limit, run).await;
        self.settle(what, limit, answer)
    }
}
