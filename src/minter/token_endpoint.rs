//! `baton-minter serve`: the OAuth 2.0 token endpoint with the token-exchange grant (RFC 8693
//! §2): `subject_token` is a Baton verdict, the answer an access token minted from it. The
//! replay guard the minter was built with (Redis or a replay file) makes single use hold
//! across requests and restarts.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{MintError, Minter};

/// RFC 8693 §2.1's grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The `subject_token_type` of a Baton verdict. A verdict is a JWT, so RFC 8693 §3's
/// `urn:ietf:params:oauth:token-type:jwt` is accepted too.
pub const VERDICT_TOKEN_TYPE: &str = "urn:baton:params:oauth:token-type:verdict";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The form fields the endpoint reads (RFC 8693 §2.1); others are ignored.
#[derive(Debug, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
}

/// The token endpoint at `POST /token`, minting with `minter`.
pub fn router(minter: Arc<Minter>) -> Router {
    Router::new()
        .route("/token", post(token))
        .with_state(minter)
}

/// An error response of RFC 6749 §5.2.
fn refused(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (status, [("cache-control", "no-store")], Json(body)).into_response()
}

async fn token(State(minter): State<Arc<Minter>>, Form(request): Form<TokenRequest>) -> Response {
    if request.grant_type.as_deref() != Some(TOKEN_EXCHANGE_GRANT) {
        return refused(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "`grant_type` must be the token-exchange grant",
        );
    }
    let Some(verdict) = request.subject_token.filter(|t| !t.is_empty()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`subject_token` is required",
        );
    };
    match request.subject_token_type.as_deref() {
        Some(VERDICT_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "`subject_token_type` must be Baton's verdict type",
            );
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match minter.mint(verdict.trim(), now).await {
        Ok(minted) => {
            let body = json!({
                "access_token": minted.token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": minted.claims.exp.saturating_sub(now),
            });
            (StatusCode::OK, [("cache-control", "no-store")], Json(body)).into_response()
        }
        Err(e @ (MintError::ReplayStore(_) | MintError::Signing(_))) => {
            tracing::error!(error = %crate::telemetry::chain(&e), "cannot mint");
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                e.code(),
            )
        }
        Err(e) => refused(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            &crate::bundle::clip(&format!("{}: {e}", e.code())),
        ),
    }
}
