//! What the console refuses, seen with a plain HTTP client: pages without a session go to the
//! login form, changes without one are forbidden, and so are changes with a missing, forged or
//! another session's CSRF token; a bad token opens no session; logging out ends one.

use axum::http::header;
use baton::pb;

use crate::app::{ConsoleApp, refund};
use crate::http::Http;

async fn still_allowed(app: &mut ConsoleApp) {
    assert_eq!(
        app.ask(refund(100, "")).await.decision(),
        pb::Decision::Allow,
        "nothing was revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_or_with_a_forged_csrf_token_nothing_changes() {
    let mut app = ConsoleApp::start().await;
    let http = Http::new();
    let revoke = app.url("/agents/refund-agent/revoke");

    // No session: pages redirect to the login form, changes are forbidden.
    for path in [
        "/decisions",
        "/approvals",
        "/agents",
        "/bundles",
        "/transactions/t",
    ] {
        let page = http.send("GET", &app.url(path), None, "").await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.headers[header::LOCATION], "/login", "{path}");
    }
    let anonymous = http.send("POST", &revoke, None, "reason=x&csrf=x").await;
    assert_eq!(anonymous.status, 403);
    let made_up = http
        .send(
            "POST",
            &revoke,
            Some("baton-console=00ff"),
            "reason=x&csrf=x",
        )
        .await;
    assert_eq!(made_up.status, 403);
    assert_eq!(
        http.send("POST", &app.url("/bundles/rollback"), None, "")
            .await
            .status,
        403
    );

    // A wrong token opens nothing.
    let refused = http
        .send(
            "POST",
            &app.url("/login"),
            None,
            "token=not-an-admin-token-at-all",
        )
        .await;
    assert_eq!(refused.status, 401);
    assert!(!refused.headers.contains_key(header::SET_COOKIE));

    // A session: the cookie is HttpOnly, SameSite=Strict, for the whole console.
    let (cookie, set) = http.log_in(&app).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP: a Secure cookie would never come back"
    );
    let csrf = http.csrf(&app, &cookie, "/agents/refund-agent").await;
    assert_eq!(csrf.len(), 64);

    // Missing, forged, and another session's CSRF tokens are all refused.
    let (other_cookie, _) = http.log_in(&app).await;
    let other_csrf = http.csrf(&app, &other_cookie, "/agents/refund-agent").await;
    assert_ne!(csrf, other_csrf);
    let forged = "0".repeat(64);
    for form in [
        "reason=stolen".to_owned(),
        format!("reason=stolen&csrf={forged}"),
        format!("reason=stolen&csrf={other_csrf}"),
        "reason=stolen&csrf=".to_owned(),
    ] {
        let reply = http.send("POST", &revoke, Some(&cookie), &form).await;
        assert_eq!(reply.status, 403, "{form}");
    }
    still_allowed(&mut app).await;

    // The right token, but no reason: refused, and the field is named.
    let no_reason = http
        .send(
            "POST",
            &revoke,
            Some(&cookie),
            &format!("reason=&csrf={csrf}"),
        )
        .await;
    assert_eq!(no_reason.status, 400);
    assert!(no_reason.body.contains("reason"), "{}", no_reason.body);
    still_allowed(&mut app).await;

    // Every page says what it may load.
    let page = http
        .send("GET", &app.url("/decisions"), Some(&cookie), "")
        .await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));

    // Logging out ends the session.
    let out = http
        .send(
            "POST",
            &app.url("/logout"),
            Some(&cookie),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(out.status, 303);
    let after = http
        .send("GET", &app.url("/decisions"), Some(&cookie), "")
        .await;
    assert_eq!(after.status, 303);
    let late = http
        .send(
            "POST",
            &revoke,
            Some(&cookie),
            &format!("reason=late&csrf={csrf}"),
        )
        .await;
    assert_eq!(late.status, 403);
    still_allowed(&mut app).await;
}

#[tokio::test]
async fn a_console_without_admin_tokens_is_refused_at_start() {
    let dir = crate::spawn::server_dir();
    let mut config = crate::spawn::config_in(dir.path());
    config.console_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    match baton::app::Application::build(config).await {
        Err(baton::app::BuildError::ConsoleWithoutAdmin) => {}
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a console anyone could reach without a login was started"),
    }
}
