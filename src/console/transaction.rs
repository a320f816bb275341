//! One transaction's delegation tree, drawn on the server as an inline SVG graph (principal →
//! agents → tools, each identity once, at the depth of the chain it first appears at), and
//! every hop in a table: outcome, scopes granted and refused, obligations, policies, bundle.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::ConsoleState;
use super::decisions::short;
use super::layout::{self, frame, outcome, problem, respond};
use super::session::Signed;
use super::trail;
use crate::audit::{AuditEvent, AuditRecord, DecisionRecord};
use crate::identity::{Identity, IdentityKind};

const NODE_W: i64 = 200;
const NODE_H: i64 = 48;
const COL_GAP: i64 = 330;
const ROW_GAP: i64 = 84;
const MARGIN: i64 = 24;

/// An identity of the graph and where it is drawn.
struct Node {
    identity: Identity,
    depth: usize,
    row: usize,
}

impl Node {
    fn x(&self) -> i64 {
        MARGIN + i64::try_from(self.depth).unwrap_or(0) * COL_GAP
    }

    fn y(&self) -> i64 {
        MARGIN + i64::try_from(self.row).unwrap_or(0) * ROW_GAP
    }
}

/// A caller → callee edge and the hops (1-based) that crossed it, in order.
struct Edge {
    from: usize,
    to: usize,
    hops: Vec<(usize, String)>,
}

struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

fn key(identity: &Identity) -> String {
    format!("{}:{}", identity.kind, identity.id)
}

fn graph(decisions: &[&DecisionRecord]) -> Graph {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut rows: Vec<usize> = Vec::new();
    for d in decisions {
        for (depth, member) in d.chain.iter().enumerate() {
            if index.contains_key(&key(member)) {
                continue;
            }
            if rows.len() <= depth {
                rows.resize(depth + 1, 0);
            }
            index.insert(key(member), nodes.len());
            nodes.push(Node {
                identity: member.clone(),
                depth,
                row: rows[depth],
            });
            rows[depth] += 1;
        }
    }
    let mut edges: Vec<Edge> = Vec::new();
    for (n, d) in decisions.iter().enumerate() {
        let (Some(&from), Some(&to)) = (index.get(&key(&d.caller)), index.get(&key(&d.callee)))
        else {
            continue;
        };
        let hop = (n + 1, d.effect.as_str().to_owned());
        match edges.iter_mut().find(|e| e.from == from && e.to == to) {
            Some(edge) => edge.hops.push(hop),
            None => edges.push(Edge {
                from,
                to,
                hops: vec![hop],
            }),
        }
    }
    Graph { nodes, edges }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
        clipped.push('…');
        clipped
    }
}

fn colour(effect: &str) -> &'static str {
    match effect {
        "ALLOW" => "#11602a",
        "DENY" => "#a0151b",
        _ => "#7a4a00",
    }
}

fn fill(kind: &IdentityKind) -> (&'static str, &'static str) {
    match kind {
        IdentityKind::User | IdentityKind::Service => ("#e3ecfb", "#0b57d0"),
        IdentityKind::Agent => ("#f4f6f8", "#4a5560"),
        IdentityKind::Resource(_) => ("#fff4d6", "#7a4a00"),
    }
}

fn svg(graph: &Graph, transaction: &str) -> Markup {
    let cols = graph.nodes.iter().map(|n| n.depth + 1).max().unwrap_or(1);
    let rows = graph.nodes.iter().map(|n| n.row + 1).max().unwrap_or(1);
    let width = MARGIN * 2 + i64::try_from(cols).unwrap_or(1) * COL_GAP - (COL_GAP - NODE_W);
    let height = MARGIN * 2 + i64::try_from(rows).unwrap_or(1) * ROW_GAP - (ROW_GAP - NODE_H);
    let summary = format!(
        "Delegation graph of transaction {transaction}: {} identities, {} hops",
        graph.nodes.len(),
        graph.edges.iter().map(|e| e.hops.len()).sum::<usize>()
    );
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) viewBox={"0 0 " (width) " " (height)} role="img" aria-labelledby="graph-title" {
            title #graph-title { (summary) }
            defs {
                @for (name, c) in [("ALLOW", colour("ALLOW")), ("DENY", colour("DENY")), ("APPROVAL_REQUIRED", colour("APPROVAL_REQUIRED"))] {
                    marker id={"arrow-" (name)} viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" fill=(c) {}
                    }
                }
            }
            @for edge in &graph.edges {
                @if let (Some(a), Some(b)) = (graph.nodes.get(edge.from), graph.nodes.get(edge.to)) {
                    @let last = edge.hops.last().map_or("DENY", |(_, e)| e.as_str());
                    @let (x1, y1) = (a.x() + NODE_W, a.y() + NODE_H / 2);
                    @let (x2, y2) = (b.x(), b.y() + NODE_H / 2);
                    @let mid = (x1 + x2) / 2;
                    @let label = edge.hops.iter().map(|(n, e)| format!("#{n} {}", e.replace("APPROVAL_REQUIRED", "APPROVAL"))).collect::<Vec<_>>().join(", ");
                    g.edge {
                        path d={"M " (x1) " " (y1) " C " (mid) " " (y1) ", " (mid) " " (y2) ", " (x2) " " (y2)} fill="none" stroke=(colour(last)) stroke-width="2" marker-end={"url(#arrow-" (last) ")"} {}
                        a href={"#hop-" (edge.hops.last().map_or(1, |(n, _)| *n))} {
                            text x=(mid) y=((y1 + y2) / 2 - 6) text-anchor="middle" fill=(colour(last)) paint-order="stroke" stroke="#fbfcfd" stroke-width="4" font-weight="700" { (clip(&label, 34)) }
                        }
                    }
                }
            }
            @for node in &graph.nodes {
                @let (bg, fg) = fill(&node.identity.kind);
                g.node {
                    rect x=(node.x()) y=(node.y()) width=(NODE_W) height=(NODE_H) rx="6" fill=(bg) stroke=(fg) stroke-width="1.5" {}
                    text x=(node.x() + 10) y=(node.y() + 18) fill=(fg) font-size="11" { (node.identity.kind) }
                    text x=(node.x() + 10) y=(node.y() + 37) fill="#1b1f24" font-weight="700" { (clip(&node.identity.id, 24)) }
                }
            }
        }
    }
}

fn hop_row(n: usize, record: &AuditRecord, d: &DecisionRecord) -> Markup {
    html! {
        tr id={"hop-" (n)} {
            td { (n) }
            td { (layout::time(record.time)) }
            td {
                (outcome(d.effect.as_str()))
                @if let Some(denial) = &d.denial { br; small { (denial.detail) } }
            }
            td { (d.caller) " → " (d.callee) br; small.muted { (d.chain_line) } }
            td { @if d.granted.is_empty() { span.muted { "none" } } @else { code { (d.granted.join(" ")) } } }
            td {
                @if d.refused.is_empty() { span.muted { "none" } }
                ul.plain { @for r in &d.refused { li { code { (r.scope) } ": " (r.detail) } } }
            }
            td { @if d.obligations.is_empty() { span.muted { "none" } } @else { code { (d.obligations.join(" ")) } } }
            td { ul.plain { @for p in &d.determining_policies { li { code { (p) } } } } }
            td { code title=(d.bundle_version) { (short(&d.bundle_version)) } }
            td {
                @if let Some(a) = &d.approval {
                    code { (short(&a.approval_id)) } " " (format!("{:?}", a.status).to_lowercase())
                    @if let Some(by) = &a.decided_by { " by " (by) }
                }
            }
        }
    }
}

fn other_event(record: &AuditRecord) -> Option<Markup> {
    let text = match &record.event {
        AuditEvent::Decision(_) | AuditEvent::ShadowDisagreement(_) => return None,
        AuditEvent::Revoked(r) => format!(
            "{} revoked {} {}: {}",
            r.by, r.target_kind, r.target, r.reason
        ),
        AuditEvent::RevocationLifted(r) => {
            format!(
                "{} lifted the revocation of {} {}: {}",
                r.by, r.target_kind, r.target, r.reason
            )
        }
        AuditEvent::ApprovalGranted(a) => {
            format!("{} approved {}: {}", a.approver, a.approval_id, a.rationale)
        }
        AuditEvent::ApprovalRejected(a) => {
            format!("{} rejected {}: {}", a.approver, a.approval_id, a.rationale)
        }
    };
    Some(html! { li { (layout::time(record.time)) " — " (text) } })
}

/// `GET /transactions/{id}`.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let records = match trail::transaction(state.pipeline.audit(), &id).await {
        Ok(records) => records,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &signed.session,
                "/decisions",
                &format!("cannot read transaction `{id}`: {e}"),
            );
        }
    };
    let decisions: Vec<(&AuditRecord, &DecisionRecord)> = records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::Decision(d) => Some((r, d.as_ref())),
            _ => None,
        })
        .collect();
    let only: Vec<&DecisionRecord> = decisions.iter().map(|(_, d)| *d).collect();
    let graph = graph(&only);
    let others: Vec<Markup> = records.iter().filter_map(other_event).collect();
    let body = html! {
        h1 { "Transaction " code { (id) } }
        p.lead {
            (decisions.len()) " hops. "
            a href={"/decisions?transaction=" (super::decisions::percent_encode(&id))} { "Watch this transaction live" }
        }
        @if decisions.is_empty() {
            p.muted { "The audit trail holds no decision of this transaction." }
        } @else {
            h2 { "Delegation graph" }
            div.graph { (svg(&graph, &id)) }
            h2 { "Hops" }
            table #hops {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Outcome" } th scope="col" { "Hop" }
                    th scope="col" { "Granted" } th scope="col" { "Refused" } th scope="col" { "Obligations" }
                    th scope="col" { "Policies" } th scope="col" { "Bundle" } th scope="col" { "Approval" }
                } }
                tbody { @for (n, (record, d)) in decisions.iter().enumerate() { (hop_row(n + 1, record, d)) } }
            }
        }
        @if !others.is_empty() {
            h2 { "Governance in this transaction" }
            ul { @for o in &others { (o) } }
        }
    };
    respond(
        StatusCode::OK,
        frame("Transaction", "/decisions", &signed.session, None, body),
    )
}
