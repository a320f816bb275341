//! Every decision, allowed or denied, cached or not, alone or in a batch, leaves exactly one
//! record that carries its chain.

use std::collections::HashMap;

use baton::audit::{AuditEvent, AuditRecord, DecisionRecord};
use baton::decision::DecisionKind;
use baton::pb::{self, Decision};

use crate::app::with_file;
use crate::helpers::{entity, hop, item_response, report_request};

fn decisions(records: &[AuditRecord]) -> HashMap<&str, &DecisionRecord> {
    let mut by_id = HashMap::new();
    for record in records {
        let AuditEvent::Decision(d) = &record.event else {
            panic!("not a decision: {record:?}");
        };
        assert!(
            by_id.insert(record.id.as_str(), &**d).is_none(),
            "two records for decision {}",
            record.id
        );
    }
    by_id
}

#[tokio::test]
async fn every_decision_leaves_exactly_one_record_with_its_chain() {
    let mut audited = with_file().await;
    let client = &mut audited.app.client;
    let mut answers = Vec::new();
    // The same question twice: the second answer comes from the cache.
    for _ in 0..2 {
        let allowed = client
            .authorize(report_request("User:alice", &["reports.generate"]))
            .await
            .unwrap()
            .into_inner();
        answers.push(allowed);
    }
    let denied = client
        .authorize(report_request("User:carol", &["finance.read"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied.decision(), Decision::Deny);
    answers.push(denied);
    let second_hop = pb::AuthorizeRequest {
        delegation_chain: vec![entity("Agent:user-assistant")],
        ceiling: Some(pb::ScopeCeiling {
            scopes: vec!["finance.read".to_owned()],
        }),
        transaction_id: answers[0].transaction_id.clone(),
        ..hop(
            "Agent:data-analyst",
            "Agent:database-agent",
            "User:alice",
            &["finance.read", "reports.generate"],
        )
    };
    let mut malformed = report_request("User:alice", &["reports.generate"]);
    malformed.caller = None;
    let batch = client
        .batch_authorize(pb::BatchAuthorizeRequest {
            requests: vec![
                second_hop,
                malformed,
                report_request("User:dave", &["reports.generate"]),
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    answers.push(item_response(&batch[0]).clone());
    answers.push(item_response(&batch[2]).clone());

    let records = audited.file_records().await;
    assert_eq!(
        records.len(),
        answers.len(),
        "one record per decision, none for the malformed item"
    );
    let by_id = decisions(&records);
    for answer in &answers {
        let d = by_id[answer.decision_id.as_str()];
        let chain: Vec<String> = answer
            .chain
            .iter()
            .map(|e| format!("{} {}", e.r#type, e.id))
            .collect();
        assert_eq!(d.chain_line, chain.join(" → "));
        assert_eq!(d.transaction_id, answer.transaction_id);
        assert_eq!(d.granted, answer.granted_scopes);
        assert_eq!(d.determining_policies, answer.determining_policies);
        assert_eq!(d.bundle_version, answer.bundle_version);
        assert_eq!(d.obligations, answer.obligations);
        assert_eq!(d.pdp_caller.as_deref(), Some("loopback"));
        let effect = match answer.decision() {
            Decision::Allow => DecisionKind::Allow,
            Decision::ApprovalRequired => DecisionKind::ApprovalRequired,
            _ => DecisionKind::Deny,
        };
        assert_eq!(d.effect, effect);
    }
    let first = by_id[answers[0].decision_id.as_str()];
    assert_eq!(
        first.chain_line,
        "User alice → Agent user-assistant → Agent data-analyst"
    );
    assert_eq!(first.requested, ["reports.generate"]);
    assert_eq!(first.source, "evaluated");
    assert_eq!(by_id[answers[1].decision_id.as_str()].source, "local");
    let deep = by_id[answers[3].decision_id.as_str()];
    assert_eq!(
        deep.chain_line,
        "User alice → Agent user-assistant → Agent data-analyst → Agent database-agent"
    );
    assert_eq!(deep.refused[0].scope, "reports.generate");
    let stats = audited.app.pipeline.audit().stats();
    assert_eq!((stats.enqueued, stats.written), (5, 5));
    assert_eq!((stats.dropped, stats.lost), (0, 0));
}

#[tokio::test]
async fn the_trace_id_comes_from_the_traceparent_header() {
    let mut audited = with_file().await;
    let mut request = tonic::Request::new(report_request("User:alice", &["reports.generate"]));
    request.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    audited.app.client.authorize(request).await.unwrap();
    let records = audited.file_records().await;
    let AuditEvent::Decision(d) = &records[0].event else {
        panic!("not a decision");
    };
    assert_eq!(
        d.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
}

#[tokio::test]
async fn approval_required_is_recorded_as_its_own_outcome() {
    let mut audited = with_file().await;
    let mut refund = hop(
        "Agent:support-assistant",
        "Agent:refund-agent",
        "User:bob",
        &["refunds.issue"],
    );
    refund.context = Some(crate::helpers::context(
        serde_json::json!({ "amount": 750 }),
    ));
    let answer = audited
        .app
        .client
        .authorize(refund)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision(), Decision::ApprovalRequired);
    audited.app.pipeline.audit().flush().await;
    let text = std::fs::read_to_string(audited.file()).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(record["effect"], "APPROVAL_REQUIRED", "{record}");
    assert_eq!(record["approval"]["status"], "pending", "{record}");
}
