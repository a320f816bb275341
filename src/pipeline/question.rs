//! What a door hands the pipeline, and what it gets back.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::decision::Decision;
use crate::identity::Identity;
use crate::workload::PeerCertificate;

/// One question as a door received it, in domain types, before anything about it is trusted.
/// The pipeline decides whether its chain may be asserted or must come from its token.
#[derive(Debug, Clone)]
pub struct Question {
    /// Who calls; `None` when the holder of `subject_token` asks for itself (a token
    /// exchange).
    pub caller: Option<Identity>,
    /// The agent being called.
    pub callee: Identity,
    /// On whose behalf; `None` when the subject token names the principal.
    pub principal: Option<Identity>,
    /// Deduplicated, in request order.
    pub scopes: Vec<String>,
    /// Task attributes, seen by policies as `context.task`.
    pub context: Map<String, Value>,
    /// Earlier actors a trusted gateway asserts, earliest first.
    pub delegation_chain: Vec<Identity>,
    /// The previous hop's grant, as a trusted gateway asserts it.
    pub ceiling: Option<HashSet<String>>,
    /// The task this hop belongs to; `None` asks for a new one, or the token's.
    pub transaction_id: Option<String>,
    /// The previous hop's credential: a verdict, or an access token minted from one.
    pub subject_token: Option<String>,
    /// The approval a human gave for exactly this request.
    pub approval_id: Option<String>,
    /// What the asker says the callee is like (an AuthZEN resource's `properties`).
    pub callee_attributes: Option<Map<String, Value>>,
    /// The thumbprint (`x5t#S256`) of the callee's certificate, to bind the verdict to.
    pub callee_x5t_s256: Option<String>,
    /// The asker only enforces and redeems no verdict: none is signed for this answer.
    pub omit_verdict: bool,
}

impl Question {
    /// `caller` asks to call `callee` for `principal` with `scopes`, asserting everything.
    pub fn new(
        caller: Identity,
        callee: Identity,
        principal: Identity,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            caller: Some(caller),
            callee,
            principal: Some(principal),
            scopes,
            context: Map::new(),
            delegation_chain: Vec::new(),
            ceiling: None,
            transaction_id: None,
            subject_token: None,
            approval_id: None,
            callee_attributes: None,
            callee_x5t_s256: None,
            omit_verdict: false,
        }
    }
}

/// Who asks Baton, as far as the transport can tell.
#[derive(Debug, Clone, Default)]
pub struct Asker {
    /// The bearer token the call presented (`authorization: Bearer …`), if any.
    pub bearer: Option<String>,
    /// The address the call came from.
    pub peer: Option<SocketAddr>,
    /// The client certificate the call came with, verified by the listener's client CA.
    pub certificate: Option<Arc<PeerCertificate>>,
    /// The trace the call belongs to, for the audit record.
    pub trace_id: Option<String>,
}

/// A question answered: the stamped decision, and its signed verdict when it is an ALLOW a
/// minter may redeem.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The stamped decision.
    pub decision: Decision,
    /// The signed verdict of an ALLOW; `None` on deny, while an approval is pending, and when
    /// the question omitted it.
    pub verdict: Option<String>,
}
