//! What the console refuses, seen with a plain HTTP client: pages without a session go to the
//! login form, changes without one are forbidden, and so are changes with a missing, forged or
//! another session's CSRF token; a bad token opens no session; logging out ends one.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use baton::pb;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::app::{ConsoleApp, TOKEN, refund};

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(&self, method: &str, url: &str, cookie: Option<&str>, form: &str) -> Reply {
        let mut request = axum::http::Request::builder().method(method).uri(url);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if method == "POST" {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = request
            .body(Full::new(Bytes::from(form.to_owned())))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Logs in; the `name=value` cookie the console set, and the whole `Set-Cookie`.
    async fn log_in(&self, app: &ConsoleApp) -> (String, String) {
        let reply = self
            .send("POST", &app.url("/login"), None, &format!("token={TOKEN}"))
            .await;
        assert_eq!(reply.status, 303);
        let set = reply.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        let cookie = set.split(';').next().unwrap().to_owned();
        (cookie, set)
    }

    /// The CSRF token in the forms of `path`.
    async fn csrf(&self, app: &ConsoleApp, cookie: &str, path: &str) -> String {
        let page = self.send("GET", &app.url(path), Some(cookie), "").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let marker = r#"name="csrf" value=""#;
        let at = page.body.find(marker).expect("a form with a CSRF field") + marker.len();
        page.body[at..].split('"').next().unwrap().to_owned()
    }
}

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
