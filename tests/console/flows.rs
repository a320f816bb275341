//! What an operator does in the console, in a real browser.

use baton::audit::{AuditEvent, AuditQuery, Selector};
use baton::pb::{self, DenialCode};

use crate::app::{ConsoleApp, TOKEN, first_hop, refund};
use crate::browser::Browser;
use crate::eventually::eventually;

/// The kinds and authors of the governance records the trail holds.
async fn governance_records(app: &ConsoleApp) -> Vec<(String, String)> {
    let audit = app.running.pipeline.audit();
    audit.flush().await;
    let page = audit.query(AuditQuery::new(Selector::All)).await.unwrap();
    page.records
        .into_iter()
        .filter_map(|r| match r.event {
            AuditEvent::Revoked(x) => Some(("revoked".to_owned(), x.by)),
            AuditEvent::RevocationLifted(x) => Some(("revocation_lifted".to_owned(), x.by)),
            AuditEvent::ApprovalGranted(x) => Some(("approval_granted".to_owned(), x.approver)),
            AuditEvent::ApprovalRejected(x) => Some(("approval_rejected".to_owned(), x.approver)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_appears_live_and_opens_as_its_transaction_graph() {
    let mut app = ConsoleApp::start().await;
    let mut browser = Browser::start("live").await;
    let feed = std::sync::Arc::clone(app.running.pipeline.live());
    assert!(
        !feed.is_watched(),
        "nothing is published before a page watches"
    );
    browser.log_in(&app.url(""), TOKEN).await;
    eventually("the live page subscribes to the feed", || feed.is_watched()).await;

    // Asked after the page opened: only the stream can bring these rows.
    let txn = "txn-console-live";
    let first = app.ask(first_hop(txn)).await;
    assert_eq!(first.decision(), pb::Decision::Allow);
    let second = app
        .ask(pb::AuthorizeRequest {
            transaction_id: txn.into(),
            ..refund(120, "")
        })
        .await;
    assert_eq!(second.decision(), pb::Decision::Allow);
    let row = format!("#d-{}", second.decision_id);
    browser.find(&row).await;
    browser.find(&format!("#d-{}", first.decision_id)).await;
    assert!(browser.text(&row).await.contains("refund-agent"));
    browser.screenshot("live-decisions").await;

    browser.click(&format!("{row} a")).await;
    browser.find("svg[role=img]").await;
    assert_eq!(browser.path().await, format!("/transactions/{txn}"));
    let graph = browser.text(".graph").await;
    for node in ["bob", "support-assistant", "refund-agent"] {
        assert!(graph.contains(node), "the graph shows {node}: {graph}");
    }
    let hop = browser.text("#hop-2").await;
    assert!(
        hop.contains("refunds.issue") && hop.contains("refunds-up-to-500"),
        "{hop}"
    );
    browser.screenshot("transaction").await;

    browser.goto(&app.url("/bundles")).await;
    browser.find("#bundles").await;
    browser.screenshot("bundles").await;

    // The access review over this trail: bob's refund used the support assistant and the
    // refund agent, so neither is among the agents never seen.
    browser.click("nav a[href='/review']").await;
    let unseen = browser.text("#unseen").await;
    assert!(unseen.starts_with("Agents never seen"), "{unseen}");
    let page = browser.text("main").await;
    assert!(page.contains("Grants nobody used"), "{page}");
    browser.screenshot("review").await;
    browser.close().await;
    // Nobody watches any more: the decision path stops publishing.
    eventually("the feed is unwatched once the browser is gone", || {
        !feed.is_watched()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_refund_is_approved_from_the_inbox_and_the_retry_is_allowed() {
    let mut app = ConsoleApp::start().await;
    let asked = app.ask(refund(750, "")).await;
    assert_eq!(asked.decision(), pb::Decision::ApprovalRequired);
    let id = asked.approval.unwrap().approval_id;

    let mut browser = Browser::start("approvals").await;
    browser.log_in(&app.url(""), TOKEN).await;
    browser.click("nav a[href='/approvals']").await;
    let card = format!("#approval-{id}");
    let text = browser.text(&card).await;
    assert!(
        text.contains("refunds.issue") && text.contains("refund-agent"),
        "{text}"
    );
    assert!(text.contains("0 of 1 given, 1 more needed"), "{text}");
    browser.screenshot("inbox").await;

    // The rationale is required: the browser will not send the form without one.
    browser
        .fill(&format!("#rationale-{id}"), "customer verified by phone")
        .await;
    browser
        .click(&format!("{card} button[value=approve]"))
        .await;
    browser
        .text_once(".notice", |t| t.starts_with("Approved"))
        .await;
    browser.find("#inbox-empty").await;
    browser.screenshot("approved").await;

    let retried = app.ask(refund(750, &id)).await;
    assert_eq!(retried.decision(), pb::Decision::Allow);
    assert!(!retried.verdict.is_empty());
    assert!(
        governance_records(&app)
            .await
            .contains(&("approval_granted".to_owned(), "admin".to_owned())),
        "the approval is recorded with its author"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_revoked_from_its_page_is_denied_on_the_next_request() {
    let mut app = ConsoleApp::start().await;
    assert_eq!(
        app.ask(refund(100, "")).await.decision(),
        pb::Decision::Allow
    );

    let mut browser = Browser::start("revoke").await;
    browser.log_in(&app.url(""), TOKEN).await;
    browser.click("nav a[href='/agents']").await;
    browser.find("#agents").await;
    browser.screenshot("agents").await;
    browser.click("a[href='/agents/refund-agent']").await;
    browser.find("#revoke").await;
    let callers = browser.text("main").await;
    assert!(
        callers.contains("support-assistant-invokes-refunds"),
        "{callers}"
    );
    browser.screenshot("agent").await;

    browser.fill("#revoke-reason", "leaked credentials").await;
    browser.click("#revoke button").await;
    browser
        .text_once(".notice", |t| t.starts_with("Revoked"))
        .await;
    browser.text_once("h1", |t| t.contains("REVOKED")).await;
    browser.screenshot("revoked").await;

    let denied = app.ask(refund(100, "")).await;
    assert_eq!(denied.decision(), pb::Decision::Deny);
    assert_eq!(denied.denial.unwrap().code(), DenialCode::Revoked);

    browser.fill("#lift-reason", "credentials rotated").await;
    browser.click("#lift button").await;
    browser
        .text_once(".notice", |t| t.starts_with("Revocation lifted"))
        .await;
    assert_eq!(
        app.ask(refund(100, "")).await.decision(),
        pb::Decision::Allow
    );
    let records = governance_records(&app).await;
    for kind in ["revoked", "revocation_lifted"] {
        assert!(
            records.contains(&(kind.to_owned(), "admin".to_owned())),
            "{kind} is recorded with its author: {records:?}"
        );
    }
    browser.close().await;
}
