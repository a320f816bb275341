//! `QueryAudit` and `baton audit`: the whole delegation tree of a transaction across hops, and
//! the other selections, a page at a time, from the file and from Redis alike; only for admin
//! tokens, and only on the admin port.

use baton::cli::audit::AuditArgs;
use baton::cli::policy::AdminConnection;
use baton::pb::{self, audit_service_client::AuditServiceClient};
use tonic::Code;

use crate::admin_helpers::{TOKEN, authed, with_token};
use crate::app::{Audited, with_file, with_redis, with_rotated_file};
use crate::helpers::{entity, hop, report_request};
use crate::redis_server::RedisServer;

/// Three hops of one task: assistant → analyst → database, then a denied side call; and an
/// unrelated transaction. Returns the task's transaction id and its decision ids in order.
async fn delegate(audited: &mut Audited) -> (String, Vec<String>) {
    let client = &mut audited.app.client;
    let first = client
        .authorize(report_request(
            "User:alice",
            &["reports.generate", "finance.read"],
        ))
        .await
        .unwrap()
        .into_inner();
    let txn = first.transaction_id.clone();
    let later = |caller: &str, callee: &str, via: &[&str], scopes: &[&str]| pb::AuthorizeRequest {
        delegation_chain: via.iter().map(|v| entity(v)).collect(),
        ceiling: Some(pb::ScopeCeiling {
            scopes: first.granted_scopes.clone(),
        }),
        transaction_id: txn.clone(),
        ..hop(caller, callee, "User:alice", scopes)
    };
    let second = later(
        "Agent:data-analyst",
        "Agent:database-agent",
        &["Agent:user-assistant"],
        &["finance.read"],
    );
    let side = later(
        "Agent:data-analyst",
        "Agent:refund-agent",
        &["Agent:user-assistant"],
        &["refunds.issue"],
    );
    let mut ids = vec![first.decision_id.clone()];
    for request in [second, side] {
        let answer = client.authorize(request).await.unwrap().into_inner();
        assert_eq!(answer.transaction_id, txn);
        ids.push(answer.decision_id);
    }
    client
        .authorize(report_request("User:dave", &["reports.generate"]))
        .await
        .unwrap();
    audited.app.pipeline.audit().flush().await;
    audited.app.pipeline.audit().packed().await;
    (txn, ids)
}

/// Every record a query selects, reading `page_size` at a time with the admin token.
async fn all_pages(
    client: &mut AuditServiceClient<tonic::transport::Channel>,
    query: pb::QueryAuditRequest,
    page_size: u32,
) -> Vec<pb::AuditRecord> {
    let mut records = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .query_audit(authed(pb::QueryAuditRequest {
                page_size,
                page_token,
                ..query.clone()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(page.records.len() <= page_size as usize);
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            return records;
        }
        page_token = page.next_page_token;
    }
}

fn chain_lines(records: &[pb::AuditRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| match &r.event {
            Some(pb::audit_record::Event::Decision(d)) => d.chain_line.clone(),
            other => panic!("not a decision: {other:?}"),
        })
        .collect()
}

/// Returns the server, so its trail can be looked at afterwards.
async fn the_tree_of_a_transaction_spans_every_hop(mut audited: Audited) -> Audited {
    let (txn, ids) = delegate(&mut audited).await;
    let mut client = AuditServiceClient::new(audited.admin.clone());
    let by_txn = pb::QueryAuditRequest {
        transaction_id: txn.clone(),
        ..Default::default()
    };
    let tree = all_pages(&mut client, by_txn, 2).await;
    let got: Vec<&str> = tree.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, ids, "every hop of the transaction, in order");
    assert_eq!(
        chain_lines(&tree),
        [
            "User alice → Agent user-assistant → Agent data-analyst",
            "User alice → Agent user-assistant → Agent data-analyst → Agent database-agent",
            "User alice → Agent user-assistant → Agent data-analyst → Agent refund-agent",
        ]
    );

    let one = all_pages(
        &mut client,
        pb::QueryAuditRequest {
            decision_id: ids[1].clone(),
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].id, ids[1]);

    let of_agent = all_pages(
        &mut client,
        pb::QueryAuditRequest {
            agent: "database-agent".into(),
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(of_agent.len(), 1, "only the hop that called it");
    let of_analyst = all_pages(
        &mut client,
        pb::QueryAuditRequest {
            agent: "data-analyst".into(),
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(
        of_analyst.len(),
        4,
        "as callee, as caller, and in dave's chain"
    );

    let of_dave = all_pages(
        &mut client,
        pb::QueryAuditRequest {
            principal: Some(entity("User:dave")),
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(of_dave.len(), 1);

    let everything = all_pages(&mut client, Default::default(), 3).await;
    assert_eq!(everything.len(), 4);
    let future = all_pages(
        &mut client,
        pb::QueryAuditRequest {
            start_time: Some(prost_types::Timestamp {
                seconds: i64::MAX / 4,
                nanos: 0,
            }),
            ..Default::default()
        },
        3,
    )
    .await;
    assert!(future.is_empty());

    let printed = baton::cli::audit::run(AuditArgs {
        transaction_id: Some(txn.clone()),
        kind: None,
        admin: AdminConnection {
            server: format!("http://{}", audited.admin_addr),
            token: Some(TOKEN.into()),
            tls: Default::default(),
        },
    })
    .await
    .unwrap();
    assert!(printed.starts_with(&format!("transaction {txn}")));
    assert!(printed.contains(
        "\n   └─ DENY  User alice → Agent user-assistant → Agent data-analyst → Agent refund-agent"
    ));
    assert!(printed.contains("granted   finance.read"));
    audited
}

#[tokio::test]
async fn the_tree_of_a_transaction_spans_every_hop_in_the_file() {
    the_tree_of_a_transaction_spans_every_hop(with_file().await).await;
}

#[tokio::test]
async fn the_tree_of_a_transaction_spans_every_hop_across_rotated_segments() {
    let audited = the_tree_of_a_transaction_spans_every_hop(with_rotated_file().await).await;
    let segments = audited.dir.path().join("audit.segments");
    let names: Vec<String> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The writer may take two decisions in one write, so one segment holds them both.
    let packed = names.iter().filter(|n| n.ends_with(".jsonl.gz")).count();
    assert!(packed >= 1, "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".jsonl")), "{names:?}");
}

#[tokio::test]
async fn the_tree_of_a_transaction_spans_every_hop_in_redis() {
    let redis = RedisServer::start();
    the_tree_of_a_transaction_spans_every_hop(with_redis(&redis.url(), "tree").await).await;
}

#[tokio::test]
async fn selectors_do_not_combine() {
    let audited = with_file().await;
    let mut client = AuditServiceClient::new(audited.admin.clone());
    let status = client
        .query_audit(authed(pb::QueryAuditRequest {
            transaction_id: "t".into(),
            agent: "a".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(crate::helpers::violated_fields(&status), ["agent"]);
}

/// The trail says who acted on whose behalf: nobody without an admin token reads it, and the
/// decision port, which every gateway and agent reaches, does not serve it at all.
#[tokio::test]
async fn only_an_admin_token_reads_the_trail_and_only_on_the_admin_port() {
    let mut audited = with_file().await;
    let (txn, ids) = delegate(&mut audited).await;
    let query = || pb::QueryAuditRequest {
        transaction_id: txn.clone(),
        ..Default::default()
    };
    let mut admin = AuditServiceClient::new(audited.admin.clone());

    let anonymous = admin.query_audit(query()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let unknown = "bob-0123456789abcdef";
    for wrong in [unknown, &TOKEN[1..], ""] {
        let refused = admin
            .query_audit(with_token(wrong, query()))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "token {wrong:?}");
    }
    let mut basic = tonic::Request::new(query());
    basic
        .metadata_mut()
        .insert("authorization", format!("Basic {TOKEN}").parse().unwrap());
    let refused = admin.query_audit(basic).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "not a bearer token");

    let mut decision_port = AuditServiceClient::new(audited.app.channel.clone());
    for request in [tonic::Request::new(query()), authed(query())] {
        let status = decision_port.query_audit(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    }

    let cli = |server: String, token: &str| {
        baton::cli::audit::run(AuditArgs {
            transaction_id: Some(txn.clone()),
            kind: None,
            admin: AdminConnection {
                server,
                token: Some(token.into()),
                tls: Default::default(),
            },
        })
    };
    let admin_url = format!("http://{}", audited.admin_addr);
    let refused = cli(admin_url.clone(), unknown).await.unwrap_err();
    assert!(
        refused.to_string().starts_with("Unauthenticated"),
        "{refused}"
    );
    let misdirected = cli(format!("http://{}", audited.app.addr), TOKEN)
        .await
        .unwrap_err();
    assert!(
        misdirected.to_string().starts_with("Unimplemented"),
        "{misdirected}"
    );

    let read = all_pages(&mut admin, query(), 10).await;
    let got: Vec<&str> = read.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, ids, "the admin token reads what the others could not");
    let printed = cli(admin_url, TOKEN).await.unwrap();
    assert!(
        printed.starts_with(&format!("transaction {txn}")),
        "{printed}"
    );
}
