//! `Authorize` over the shipped bundle: verdicts, scope narrowing, the chain and the stamps.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use baton::decision::DecisionSettings;
use baton::pb::{self, Decision, DenialCode, RefusalReason};

use crate::helpers::{
    chain_names, entity, hop, refund_request, report_request, spawn_app, spawn_app_with,
};

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit an i64")
}

fn refusal(response: &pb::AuthorizeResponse, scope: &str) -> pb::RefusedScope {
    response
        .refused_scopes
        .iter()
        .find(|r| r.scope == scope)
        .cloned()
        .unwrap_or_else(|| panic!("`{scope}` is not refused in {response:?}"))
}

#[tokio::test]
async fn an_employee_s_assistant_gets_the_report_scopes() {
    let mut app = spawn_app().await;

    let response = app
        .client
        .authorize(report_request(
            "User:alice",
            &["reports.generate", "finance.read"],
        ))
        .await
        .expect("a decision")
        .into_inner();

    assert_eq!(response.decision(), Decision::Allow);
    assert_eq!(
        response.granted_scopes,
        ["reports.generate", "finance.read"]
    );
    assert!(response.refused_scopes.is_empty(), "{response:?}");
    assert_eq!(response.ttl_seconds, 900);
    assert_eq!(
        chain_names(&response.chain),
        ["User alice", "Agent user-assistant", "Agent data-analyst"]
    );
    assert!(response.obligations.is_empty());
    assert_eq!(
        response.determining_policies,
        [
            "assistant-invokes-analyst",
            "assistant-scopes-at-analyst",
            "employees-generate-reports",
            "finance-reads-finance-data",
        ]
    );
    assert!(!response.bundle_version.is_empty());
    assert!(response.denial.is_none());
}

#[tokio::test]
async fn a_scope_the_caller_does_not_hold_is_refused_and_the_rest_granted() {
    let mut app = spawn_app().await;

    let response = app
        .client
        .authorize(report_request(
            "User:alice",
            &["finance.write", "reports.generate", "finance.read"],
        ))
        .await
        .expect("a decision")
        .into_inner();

    assert_eq!(response.decision(), Decision::Allow);
    assert_eq!(
        response.granted_scopes,
        ["reports.generate", "finance.read"]
    );
    assert_eq!(response.refused_scopes.len(), 1, "{response:?}");
    assert_eq!(
        refusal(&response, "finance.write").reason(),
        RefusalReason::NotPermittedForCaller
    );
}

#[tokio::test]
async fn a_forbid_denies_a_contractor_finance_data() {
    let mut app = spawn_app().await;

    let response = app
        .client
        .authorize(report_request("User:carol", &["finance.read"]))
        .await
        .expect("a DENY is a successful RPC")
        .into_inner();

    assert_eq!(response.decision(), Decision::Deny);
    assert!(response.granted_scopes.is_empty());
    let refused = refusal(&response, "finance.read");
    assert_eq!(refused.reason(), RefusalReason::ForbiddenByPolicy);
    assert_eq!(refused.policy_ids, ["contractors-never-read-finance"]);
    assert_eq!(
        response.determining_policies,
        ["contractors-never-read-finance"]
    );
    assert_eq!(
        response.denial.as_ref().map(pb::Denial::code),
        Some(DenialCode::NoScopeGranted)
    );
    assert_eq!(response.ttl_seconds, 0);
    assert!(response.expires_at.is_none());
    assert!(response.obligations.is_empty());
}

#[tokio::test]
async fn an_agent_never_gets_for_a_principal_what_the_principal_lacks() {
    let mut app = spawn_app().await;

    // dave is an employee but not in finance: the assistant may read finance data, dave may not.
    let response = app
        .client
        .authorize(report_request(
            "User:dave",
            &["reports.generate", "finance.read"],
        ))
        .await
        .expect("a decision")
        .into_inner();

    assert_eq!(response.decision(), Decision::Allow);
    assert_eq!(response.granted_scopes, ["reports.generate"]);
    assert_eq!(
        refusal(&response, "finance.read").reason(),
        RefusalReason::NotPermittedForPrincipal
    );
}

#[tokio::test]
async fn a_connection_outside_the_allowlist_is_denied_whole() {
    let mut app = spawn_app().await;

    let response = app
        .client
        .authorize(hop(
            "Agent:user-assistant",
            "Agent:refund-agent",
            "User:alice",
            &["refunds.issue", "transactions.read"],
        ))
        .await
        .expect("a decision")
        .into_inner();

    assert_eq!(response.decision(), Decision::Deny);
    assert_eq!(
        response.denial.as_ref().map(pb::Denial::code),
        Some(DenialCode::ConnectionNotAllowed)
    );
    let reasons: Vec<RefusalReason> = response
        .refused_scopes
        .iter()
        .map(pb::RefusedScope::reason)
        .collect();
    assert_eq!(
        reasons,
        [RefusalReason::HopDenied, RefusalReason::HopDenied]
    );
}

#[tokio::test]
async fn large_refunds_wait_for_human_approval() {
    let mut app = spawn_app().await;

    let large = app
        .client
        .authorize(refund_request(750))
        .await
        .expect("a decision")
        .into_inner();
    assert_eq!(large.decision(), Decision::ApprovalRequired);
    assert_eq!(large.granted_scopes, ["refunds.issue"]);
    assert_eq!(large.obligations, ["human_approval"]);
    assert!(
        large.verdict.is_empty(),
        "nothing is mintable before approval"
    );
    assert!(!large.approval.unwrap().approval_id.is_empty());

    let small = app
        .client
        .authorize(refund_request(300))
        .await
        .expect("a decision")
        .into_inner();
    assert_eq!(small.decision(), Decision::Allow);
    assert!(small.obligations.is_empty(), "{small:?}");
    assert_eq!(small.ttl_seconds, 300);

    let huge = app
        .client
        .authorize(refund_request(20_000))
        .await
        .expect("a decision")
        .into_inner();
    assert_eq!(huge.decision(), Decision::Deny);
    assert_eq!(
        refusal(&huge, "refunds.issue").policy_ids,
        ["refunds-hard-limit"]
    );
}

#[tokio::test]
async fn a_second_hop_extends_the_chain_and_stays_within_the_ceiling() {
    let mut app = spawn_app().await;

    let request = pb::AuthorizeRequest {
        delegation_chain: vec![entity("Agent:user-assistant")],
        ceiling: Some(pb::ScopeCeiling {
            scopes: vec!["finance.read".to_owned()],
        }),
        transaction_id: "txn-report-q4".to_owned(),
        ..hop(
            "Agent:data-analyst",
            "Agent:database-agent",
            "User:alice",
            &["finance.read", "reports.generate"],
        )
    };
    let response = app
        .client
        .authorize(request)
        .await
        .expect("a decision")
        .into_inner();

    assert_eq!(response.decision(), Decision::Allow);
    assert_eq!(
        chain_names(&response.chain),
        [
            "User alice",
            "Agent user-assistant",
            "Agent data-analyst",
            "Agent database-agent"
        ]
    );
    assert_eq!(response.granted_scopes, ["finance.read"]);
    assert_eq!(
        refusal(&response, "reports.generate").reason(),
        RefusalReason::AboveCeiling
    );
    assert_eq!(response.ttl_seconds, 300);
    assert_eq!(response.transaction_id, "txn-report-q4");
}

#[tokio::test]
async fn an_identity_twice_in_the_chain_is_denied() {
    let mut app = spawn_app().await;

    let request = pb::AuthorizeRequest {
        delegation_chain: vec![entity("Agent:data-analyst")],
        ..report_request("User:alice", &["reports.generate"])
    };
    let response = app
        .client
        .authorize(request)
        .await
        .expect("a decision")
        .into_inner();

    assert_eq!(response.decision(), Decision::Deny);
    assert_eq!(
        response.denial.as_ref().map(pb::Denial::code),
        Some(DenialCode::ChainCycle)
    );
}

#[tokio::test]
async fn a_chain_deeper_than_the_maximum_is_denied() {
    // Four hops is as deep as the shipped bundle's own cases go (its SQL tool hop).
    let mut app = spawn_app_with(DecisionSettings {
        max_depth: 4,
        ..DecisionSettings::default()
    })
    .await;

    // alice → user-assistant → data-analyst → database-agent → diagnostics-agent →
    // log-analyzer is five hops.
    let request = pb::AuthorizeRequest {
        delegation_chain: vec![
            entity("Agent:user-assistant"),
            entity("Agent:data-analyst"),
            entity("Agent:database-agent"),
        ],
        ..hop(
            "Agent:diagnostics-agent",
            "Agent:log-analyzer",
            "User:alice",
            &["finance.read"],
        )
    };
    let response = app
        .client
        .authorize(request)
        .await
        .expect("a decision")
        .into_inner();

    assert_eq!(response.decision(), Decision::Deny);
    assert_eq!(
        response.denial.as_ref().map(pb::Denial::code),
        Some(DenialCode::ChainTooDeep)
    );
    assert_eq!(response.chain.len(), 6);

    // The first hop is within the limit.
    let first = app
        .client
        .authorize(report_request("User:alice", &["finance.read"]))
        .await
        .expect("a decision")
        .into_inner();
    assert_eq!(first.decision(), Decision::Allow);
}

#[tokio::test]
async fn an_allow_expires_ttl_seconds_after_it_is_issued() {
    let mut app = spawn_app().await;

    let before = unix_now();
    let response = app
        .client
        .authorize(report_request("User:alice", &["reports.generate"]))
        .await
        .expect("a decision")
        .into_inner();
    let after = unix_now();

    let ttl = i64::try_from(response.ttl_seconds).expect("a ttl fits an i64");
    assert_eq!(ttl, 900);
    let expires_at = response.expires_at.expect("an ALLOW expires").seconds;
    assert!(
        (before + ttl..=after + ttl).contains(&expires_at),
        "expires at {expires_at}, issued between {before} and {after} with ttl {ttl}"
    );
}

#[tokio::test]
async fn identical_requests_get_identical_verdicts_with_distinct_decision_ids() {
    let mut app = spawn_app().await;

    let mut ids = HashSet::new();
    let mut verdicts = HashSet::new();
    for _ in 0..20 {
        let response = app
            .client
            .authorize(report_request(
                "User:alice",
                &["reports.generate", "finance.read"],
            ))
            .await
            .expect("a decision")
            .into_inner();
        assert!(!response.decision_id.is_empty());
        ids.insert(response.decision_id);
        verdicts.insert((
            response.decision,
            response.granted_scopes,
            response.determining_policies,
        ));
    }

    assert_eq!(ids.len(), 20, "decision ids repeat: {ids:?}");
    assert_eq!(verdicts.len(), 1, "the verdict varies: {verdicts:?}");
}

#[tokio::test]
async fn a_first_hop_starts_a_new_transaction() {
    let mut app = spawn_app().await;

    let mut ids = HashSet::new();
    for _ in 0..2 {
        let response = app
            .client
            .authorize(report_request("User:alice", &["reports.generate"]))
            .await
            .expect("a decision")
            .into_inner();
        assert!(!response.transaction_id.is_empty(), "{response:?}");
        ids.insert(response.transaction_id);
    }
    assert_eq!(ids.len(), 2, "two first hops share a transaction: {ids:?}");
}

#[tokio::test]
async fn a_given_transaction_id_is_echoed_on_allow_and_deny() {
    let mut app = spawn_app().await;

    for principal in ["User:alice", "User:carol"] {
        let request = pb::AuthorizeRequest {
            transaction_id: "txn-0123".to_owned(),
            ..report_request(principal, &["finance.read"])
        };
        let response = app
            .client
            .authorize(request)
            .await
            .expect("a decision")
            .into_inner();
        assert_eq!(response.transaction_id, "txn-0123", "for {principal}");
    }
}

/// `omit_verdict`: an asker that only enforces gets the same decision with nothing signed,
/// alone and in a batch; a denial stays a denial.
#[tokio::test]
async fn an_asker_that_only_enforces_gets_the_decision_without_a_verdict() {
    let mut app = spawn_app().await;
    let scopes = ["reports.generate", "finance.read"];
    let signed = app
        .client
        .authorize(report_request("User:alice", &scopes))
        .await
        .expect("a decision")
        .into_inner();
    let omitted = app
        .client
        .authorize(pb::AuthorizeRequest {
            omit_verdict: true,
            ..report_request("User:alice", &scopes)
        })
        .await
        .expect("a decision")
        .into_inner();
    assert_eq!(signed.verdict.split('.').count(), 3);
    assert!(omitted.verdict.is_empty(), "{omitted:?}");
    assert_eq!(omitted.decision(), Decision::Allow);
    assert_eq!(omitted.granted_scopes, signed.granted_scopes);
    assert_eq!(omitted.determining_policies, signed.determining_policies);
    assert_eq!(omitted.ttl_seconds, signed.ttl_seconds);
    assert_ne!(omitted.decision_id, signed.decision_id);

    let batch = app
        .client
        .batch_authorize(pb::BatchAuthorizeRequest {
            requests: vec![
                pb::AuthorizeRequest {
                    omit_verdict: true,
                    ..report_request("User:alice", &scopes)
                },
                report_request("User:alice", &scopes),
                pb::AuthorizeRequest {
                    omit_verdict: true,
                    ..refund_request(50_000)
                },
            ],
        })
        .await
        .expect("answers")
        .into_inner();
    let verdicts: Vec<(Decision, bool)> = batch
        .results
        .iter()
        .map(|r| match &r.result {
            Some(pb::batch_authorize_result::Result::Response(r)) => {
                (r.decision(), r.verdict.is_empty())
            }
            other => panic!("expected a response: {other:?}"),
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (Decision::Allow, true),
            (Decision::Allow, false),
            (Decision::Deny, true)
        ]
    );
}
