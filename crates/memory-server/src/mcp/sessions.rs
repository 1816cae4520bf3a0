//! Streamable HTTP sessions with an idle timeout and a cap on how many are live.
//!
//! Every `initialize` over HTTP starts a session: a task with its own server state that
//! lives until the client sends `DELETE` (most never do). Unbounded, 3,000 initializes grew
//! the process by about 170 MB. Here a session ends after [`SessionLimits::idle_timeout`]
//! without a request, and when [`SessionLimits::max_sessions`] are live a new `initialize`
//! first ends the session idle the longest. A client whose session ended gets `404` on its
//! next request, which the MCP transport specification tells it to answer with a new
//! `initialize`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};

/// How long sessions live and how many may.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session without a request for this long ends.
    pub idle_timeout: Duration,
    /// At most this many sessions are live; a new one ends the one idle the longest.
    pub max_sessions: usize,
}

impl SessionLimits {
    /// Default idle timeout: 30 minutes, long enough for a client left open over a meeting.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    /// Default cap: far more clients than one person runs against a memory server, while
    /// bounding what abandoned sessions can hold.
    pub const DEFAULT_MAX_SESSIONS: usize = 200;
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
        }
    }
}

/// rmcp's in-memory session manager, with [`SessionLimits`] applied.
#[derive(Debug)]
pub struct BoundedSessions {
    inner: LocalSessionManager,
    max_sessions: usize,
    /// When each live session last saw a request: who to end first at the cap.
    last_used: Mutex<HashMap<SessionId, Instant>>,
    /// Serialises session creation, so concurrent `initialize`s cannot overshoot the cap
    /// between the count and the insert.
    creating: tokio::sync::Mutex<()>,
}

impl BoundedSessions {
    /// A manager applying `limits`.
    pub fn new(limits: SessionLimits) -> Self {
        let mut inner = LocalSessionManager::default();
        let mut config = SessionConfig::default();
        // rmcp's session worker ends itself after this long without an event, and its
        // server task then closes the session here, which drops it from both maps.
        config.keep_alive = Some(limits.idle_timeout);
        inner.session_config = config;
        Self {
            inner,
            max_sessions: limits.max_sessions.max(1),
            last_used: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// How many sessions are live now.
    pub async fn live_sessions(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    fn touch(&self, id: &SessionId) {
        let mut last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = last_used.get_mut(id) {
            *at = Instant::now();
        }
    }

    /// Ends the sessions idle the longest until there is room for one more.
    async fn make_room(&self) -> Result<(), LocalSessionManagerError> {
        // Bounded: each round ends one session (or finds the map already small enough).
        for _ in 0..=self.max_sessions {
            if self.live_sessions().await < self.max_sessions {
                return Ok(());
            }
            let oldest = {
                let last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
                last_used
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(id, _)| id.clone())
            };
            let Some(oldest) = oldest else {
                return Ok(());
            };
            tracing::info!(
                session = %oldest,
                max = self.max_sessions,
                "ending the session idle the longest to make room for a new one"
            );
            self.close_session(&oldest).await?;
        }
        Ok(())
    }
}

impl SessionManager for BoundedSessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        self.make_room().await?;
        let (id, transport) = self.inner.create_session().await?;
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Instant::now());
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_a_new_session_ends_the_one_idle_the_longest() {
        let sessions = BoundedSessions::new(SessionLimits {
            idle_timeout: Duration::from_secs(60),
            max_sessions: 3,
        });
        let mut ids = Vec::new();
        let mut transports = Vec::new();
        for _ in 0..3 {
            let (id, transport) = sessions.create_session().await.unwrap();
            ids.push(id);
            transports.push(transport);
        }
        assert_eq!(sessions.live_sessions().await, 3);
        // Using the first makes the second the one idle the longest.
        sessions.touch(&ids[0]);
        for _ in 0..2 {
            let (id, transport) = sessions.create_session().await.unwrap();
            ids.push(id);
            transports.push(transport);
            assert_eq!(sessions.live_sessions().await, 3);
        }
        let live: Vec<bool> =
            futures::future::join_all(ids.iter().map(|id| sessions.has_session(id)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert_eq!(live, [true, false, false, true, true]);
        sessions.close_session(&ids[0]).await.unwrap();
        assert_eq!(sessions.live_sessions().await, 2);
        assert_eq!(sessions.last_used.lock().unwrap().len(), 2);
    }
}
