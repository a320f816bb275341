//! Logging in with a named admin token, and out.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::ConsoleState;
use super::layout::{head, respond};
use super::session::{self, Signed};

fn login_page(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                main.login #main {
                    h1 { "Baton console" }
                    p.lead { "Log in with an admin token. Everything you do is recorded under its name." }
                    @if let Some(error) = error {
                        p.error role="alert" { (error) }
                    }
                    form.stack method="post" action="/login" {
                        label for="token" { "Admin token" }
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// `GET /login`.
pub async fn form() -> Response {
    respond(StatusCode::OK, login_page(None))
}

/// The login form.
#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /login`: a known token opens a session; anything else is refused, and logged.
pub async fn login(State(state): State<Arc<ConsoleState>>, Form(login): Form<Login>) -> Response {
    // Compared in constant time against each configured token (see `NamedTokens`).
    let Some(author) = state.tokens.identify(login.token.trim()) else {
        tracing::warn!("refused a console login without a valid admin token");
        return respond(
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not an admin token of this Baton.")),
        );
    };
    let (id, _) = state.sessions.open(author, state.governance.clock().unix());
    tracing::info!(author, action = "console login", "admin action");
    (
        [(header::SET_COOKIE, session::set_cookie(&id, state.secure))],
        Redirect::to("/decisions"),
    )
        .into_response()
}

/// A form that carries only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

impl CsrfOnly {
    /// The token the form carried.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(&form.csrf) {
        return refused;
    }
    state.sessions.close(&signed.id);
    tracing::info!(author = %signed.session.author, action = "console logout", "admin action");
    (
        [(header::SET_COOKIE, session::clear_cookie(state.secure))],
        Redirect::to("/login"),
    )
        .into_response()
}
