//! Bundles: the store's revisions, the active one, and rollback to the one active before it,
//! through the same [`Replica::rollback`] as `PolicyAdmin/RollbackBundle`.
//!
//! [`Replica::rollback`]: crate::policy_store::replica::Replica::rollback

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::ConsoleState;
use super::decisions::short;
use super::layout::{Done, csrf_field, frame, problem, respond, unix_time};
use super::login::CsrfOnly;
use super::session::Signed;
use crate::policy_store::StoreError;
use crate::policy_store::replica::DEFAULT_LIST_LIMIT;
use crate::transport::AdminError;

/// `GET /bundles`.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(done): Query<Done>,
) -> Response {
    let store = state.replica.store();
    let listed = async {
        let active = store.active().await?;
        let records = store.list(DEFAULT_LIST_LIMIT).await?;
        Ok::<_, StoreError>((active, records))
    }
    .await;
    let serving = state.pipeline.bundle();
    let notice = (done.done == "rolled-back")
        .then_some("Rolled back: the previous revision is active on every replica.");
    let body = html! {
        h1 { "Bundles" }
        p.lead { "This replica serves bundle " code title=(serving.version()) { (short(serving.version())) } " (" (serving.policy_count()) " policies)." }
        @match &listed {
            Err(e) => { p.error { "The bundle store cannot be read: " (e) } }
            Ok((active, records)) => {
                table #bundles {
                    thead { tr {
                        th scope="col" { "Revision" } th scope="col" { "Status" } th scope="col" { "Version" } th scope="col" { "Author" }
                        th scope="col" { "Message" } th scope="col" { "Pushed" } th scope="col" { "Policies" } th scope="col" { "Tests" }
                    } }
                    tbody {
                        @for r in records {
                            tr {
                                td { (r.revision) }
                                td { @if *active == Some(r.revision) { span.badge.active { "ACTIVE" } } }
                                td { code title=(r.version) { (short(&r.version)) } }
                                td { (r.author) }
                                td { (r.message) }
                                td { (unix_time(r.created_at)) }
                                td { (r.policies) }
                                td { (r.tests) }
                            }
                        }
                    }
                }
            }
        }
        section.panel aria-labelledby="rollback" {
            h2 #rollback { "Roll back" }
            p { "Makes the revision active before the current one active again, on every replica that follows this store." }
            form.inline method="post" action="/bundles/rollback" {
                (csrf_field(&signed.session))
                button.danger type="submit" { "Roll back to the previous revision" }
            }
        }
    };
    respond(
        StatusCode::OK,
        frame("Bundles", "/bundles", &signed.session, notice, body),
    )
}

/// `POST /bundles/rollback`.
pub async fn rollback(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(form.csrf()) {
        return refused;
    }
    let author = &signed.session.author;
    match state.replica.rollback(author).await {
        Ok((from, record)) => {
            tracing::info!(
                author,
                action = "rollback",
                from,
                to = record.revision,
                door = "console",
                "admin action"
            );
            Redirect::to("/bundles?done=rolled-back").into_response()
        }
        Err(e) => {
            let e = AdminError::from(e);
            tracing::warn!(author, action = "rollback", error = %e, "admin action refused");
            problem(
                StatusCode::CONFLICT,
                &signed.session,
                "/bundles",
                &e.to_string(),
            )
        }
    }
}
