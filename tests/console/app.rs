//! A Baton with its console on, the audit trail in a file, and gRPC clients for the decisions
//! a test asks and the governance it checks.

use baton::audit::AuditMode;
use baton::delegation::trust::AssertedChains;
use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::{self};
use baton::transport::AdminTokens;
use tonic::transport::Channel;

use crate::spawn::{Running, config_in, server_dir, start};

/// The admin token the console logs in with; its name is `admin`.
pub const TOKEN: &str = "console-test-token-0123456789";

pub struct ConsoleApp {
    pub running: Running,
    pub decisions: DecisionServiceClient<Channel>,
    _dir: tempfile::TempDir,
}

impl ConsoleApp {
    pub async fn start() -> Self {
        let dir = server_dir();
        let mut config = config_in(dir.path());
        config.delegation.asserted_chains = AssertedChains::Any;
        config.admin_tokens = Some(AdminTokens::single(TOKEN).unwrap());
        config.console_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        config.audit.mode = AuditMode::File;
        let running = start(config).await;
        let channel = Channel::from_shared(running.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            decisions: DecisionServiceClient::new(channel),
            running,
            _dir: dir,
        }
    }

    /// `http://` URL of `path` on the console.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.running.console_addr.expect("the console is served")
        )
    }

    pub async fn ask(&mut self, request: pb::AuthorizeRequest) -> pb::AuthorizeResponse {
        let answered = self
            .decisions
            .authorize(request)
            .await
            .unwrap()
            .into_inner();
        // The trail is read by the pages; what was answered is written before they look.
        self.running.pipeline.audit().flush().await;
        answered
    }
}

fn entity(t: &str, id: &str) -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: t.into(),
        id: id.into(),
    })
}

/// bob's support assistant asks the refund agent to refund `amount`: over 500 it needs a
/// human's approval (the shipped `refunds-over-500-need-approval`).
pub fn refund(amount: i64, approval_id: &str) -> pb::AuthorizeRequest {
    let context = serde_json::json!({ "amount": amount });
    pb::AuthorizeRequest {
        caller: entity("Agent", "support-assistant"),
        callee: entity("Agent", "refund-agent"),
        principal: entity("User", "bob"),
        scopes: vec!["refunds.issue".into()],
        context: Some(baton::transport::convert::struct_from_json(
            context.as_object().unwrap().clone(),
        )),
        approval_id: approval_id.into(),
        ..Default::default()
    }
}

/// bob asks his support assistant to read transactions: the first hop of a refund.
pub fn first_hop(transaction_id: &str) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: entity("User", "bob"),
        callee: entity("Agent", "support-assistant"),
        principal: entity("User", "bob"),
        scopes: vec!["transactions.read".into()],
        transaction_id: transaction_id.into(),
        ..Default::default()
    }
}
