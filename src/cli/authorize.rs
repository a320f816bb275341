//! `baton authorize`: a client that asks a running Baton and prints the verdict.

use std::fmt::Write as _;

use prost_types::Struct;
use serde_json::{Value, json};

use crate::pb::{self, decision_service_client::DecisionServiceClient};
use crate::transport::convert::struct_from_json;

/// The arguments of `baton authorize`: one question, as flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthorizeArgs {
    /// Baton's gRPC address.
    #[arg(long, env = "BATON_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// TLS to an `https://` server.
    #[command(flatten)]
    pub tls: crate::tls::client::ClientTlsArgs,
    /// The calling identity, as `Type:id` (for example `Agent:user-assistant`).
    #[arg(long, value_parser = entity_ref)]
    pub caller: pb::EntityRef,
    /// The agent being called, as `Agent:id`.
    #[arg(long, value_parser = entity_ref)]
    pub callee: pb::EntityRef,
    /// On whose behalf, as `Type:id`; defaults to the caller acting for itself.
    #[arg(long, value_parser = entity_ref)]
    pub principal: Option<pb::EntityRef>,
    /// A requested scope; repeat the flag or separate with commas.
    #[arg(long = "scope", required = true, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Task attributes as a JSON object, for example `{"amount": 750}`.
    #[arg(long, value_parser = json_object)]
    pub context: Option<Struct>,
    /// An earlier actor of the chain, as `Type:id`, earliest first; repeat for each.
    #[arg(long = "via", value_parser = entity_ref)]
    pub delegation_chain: Vec<pb::EntityRef>,
    /// The scopes granted at the previous hop, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ceiling: Option<Vec<String>>,
    /// The transaction this hop belongs to.
    #[arg(long)]
    pub transaction_id: Option<String>,
    /// The previous hop's credential (a verdict or a minted access token); the principal, chain
    /// and ceiling then come from it.
    #[arg(long)]
    pub subject_token: Option<String>,
    /// The SHA-256 thumbprint (base64url) of the callee's certificate, to bind the verdict to.
    #[arg(long)]
    pub callee_x5t_s256: Option<String>,
    /// Ask for the decision only: no verdict is signed (a caller that only enforces).
    #[arg(long)]
    pub omit_verdict: bool,
    /// Authenticate to Baton as a gateway with this bearer token.
    #[arg(long, env = "BATON_GATEWAY_TOKEN", hide_env_values = true)]
    pub gateway_token: Option<String>,
    /// The approval a human gave for exactly this request, after an APPROVAL_REQUIRED answer.
    #[arg(long)]
    pub approval_id: Option<String>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the command prints and how it exits: 0 on ALLOW, 3 on DENY, 4 on APPROVAL_REQUIRED
/// (a human must approve first; ask again with `--approval-id`).
pub struct Printed {
    /// The answer as printed: the readable form, or JSON with `--json`.
    pub text: String,
    /// What the caller was told, which sets the exit status.
    pub decision: pb::Decision,
}

impl Printed {
    /// The exit status of the answer.
    pub fn exit_code(&self) -> u8 {
        match self.decision {
            pb::Decision::Allow => 0,
            pb::Decision::ApprovalRequired => 4,
            pb::Decision::Deny | pb::Decision::Unspecified => 3,
        }
    }
}

/// Asks the Baton at `--server` the question the flags describe, and renders the answer.
pub async fn run(args: AuthorizeArgs) -> anyhow::Result<Printed> {
    let channel = args.tls.endpoint(&args.server)?.connect().await?;
    let mut client = DecisionServiceClient::new(channel);
    let request = pb::AuthorizeRequest {
        // Without a token, a missing principal means the caller acts for itself.
        principal: args
            .principal
            .clone()
            .or_else(|| args.subject_token.is_none().then(|| args.caller.clone())),
        caller: Some(args.caller),
        callee: Some(args.callee),
        scopes: args.scopes,
        context: args.context,
        delegation_chain: args.delegation_chain,
        ceiling: args.ceiling.map(|scopes| pb::ScopeCeiling { scopes }),
        transaction_id: args.transaction_id.unwrap_or_default(),
        subject_token: args.subject_token.unwrap_or_default(),
        approval_id: args.approval_id.unwrap_or_default(),
        callee_x5t_s256: args.callee_x5t_s256.unwrap_or_default(),
        omit_verdict: args.omit_verdict,
    };
    let mut request = tonic::Request::new(request);
    if let Some(token) = &args.gateway_token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow::anyhow!("the gateway token is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
    }
    let response = client
        .authorize(request)
        .await
        .map_err(describe_status)?
        .into_inner();
    let decision = response.decision();
    let text = if args.json {
        serde_json::to_string_pretty(&to_json(&response))?
    } else {
        render(&response)
    };
    Ok(Printed { text, decision })
}

fn describe_status(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let mut message = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            let _ = write!(message, "\n  {}: {}", v.field, v.description);
        }
    }
    anyhow::anyhow!(message)
}

fn entity_ref(s: &str) -> Result<pb::EntityRef, String> {
    match s.split_once(':') {
        Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok(pb::EntityRef {
            r#type: t.to_owned(),
            id: id.to_owned(),
        }),
        _ => Err(format!(
            "expected `Type:id`, such as `Agent:data-analyst`, got `{s}`"
        )),
    }
}

fn json_object(s: &str) -> Result<Struct, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(map)) => Ok(struct_from_json(map)),
        Ok(_) => Err("the context must be a JSON object".to_owned()),
        Err(e) => Err(format!("the context is not JSON: {e}")),
    }
}

fn chain_line(chain: &[pb::EntityRef]) -> String {
    chain
        .iter()
        .map(|e| format!("{} {}", e.r#type, e.id))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn expiry(r: &pb::AuthorizeResponse) -> Option<String> {
    r.expires_at.as_ref().map(|t| {
        let secs = u64::try_from(t.seconds).unwrap_or(0);
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string()
    })
}

fn decision_name(r: &pb::AuthorizeResponse) -> &'static str {
    short(r.decision().as_str_name(), "DECISION_")
}

/// Enum names without their proto prefix: `FORBIDDEN_BY_POLICY`.
fn short<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// The readable form: the verdict first, then one fact a line.
pub fn render(r: &pb::AuthorizeResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", decision_name(r));
    let _ = writeln!(out, "  chain        {}", chain_line(&r.chain));
    let _ = writeln!(out, "  granted      {}", list(&r.granted_scopes));
    for refused in &r.refused_scopes {
        let _ = writeln!(
            out,
            "  refused      {} ({}): {}",
            refused.scope,
            short(refused.reason().as_str_name(), "REFUSAL_REASON_"),
            refused.detail
        );
    }
    if let Some(denial) = &r.denial {
        let _ = writeln!(
            out,
            "  denied       {}: {}",
            short(denial.code().as_str_name(), "DENIAL_CODE_"),
            denial.detail
        );
    }
    if let Some(until) = expiry(r) {
        let _ = writeln!(out, "  ttl          {}s, until {until}", r.ttl_seconds);
    }
    let _ = writeln!(out, "  obligations  {}", list(&r.obligations));
    let _ = writeln!(out, "  policies     {}", list(&r.determining_policies));
    if let Some(approval) = &r.approval {
        let _ = writeln!(
            out,
            "  approval     {} ({})",
            approval.approval_id,
            short(approval.status().as_str_name(), "APPROVAL_STATUS_")
        );
    }
    let _ = writeln!(out, "  bundle       {}", r.bundle_version);
    let _ = writeln!(out, "  transaction  {}", r.transaction_id);
    let _ = write!(out, "  decision     {}", r.decision_id);
    if !r.verdict.is_empty() {
        let _ = write!(out, "\n  verdict      {}", r.verdict);
    }
    out
}

/// The JSON form, with the same names as the proto fields.
pub fn to_json(r: &pb::AuthorizeResponse) -> Value {
    let entity = |e: &pb::EntityRef| json!({ "type": e.r#type, "id": e.id });
    json!({
        "decision_id": r.decision_id,
        "decision": decision_name(r),
        "granted_scopes": r.granted_scopes,
        "refused_scopes": r.refused_scopes.iter().map(|s| json!({
            "scope": s.scope,
            "reason": short(s.reason().as_str_name(), "REFUSAL_REASON_"),
            "policy_ids": s.policy_ids,
            "detail": s.detail,
        })).collect::<Vec<_>>(),
        "ttl_seconds": r.ttl_seconds,
        "expires_at": expiry(r),
        "chain": r.chain.iter().map(entity).collect::<Vec<_>>(),
        "obligations": r.obligations,
        "determining_policies": r.determining_policies,
        "bundle_version": r.bundle_version,
        "transaction_id": r.transaction_id,
        "verdict": (!r.verdict.is_empty()).then_some(&r.verdict),
        "approval": r.approval.as_ref().map(|a| json!({ "approval_id": a.approval_id, "status": short(a.status().as_str_name(), "APPROVAL_STATUS_") })),
        "denial": r.denial.as_ref().map(|d| json!({ "code": short(d.code().as_str_name(), "DENIAL_CODE_"), "detail": d.detail })),
    })
}
