//! A plain HTTP client of the console: what a browser sends, without the browser.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::app::{ConsoleApp, TOKEN};

/// A whole answer.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// A plain HTTP/1.1 client of the console.
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends `form` (as a form body when POST) with `cookie`, and reads the whole answer.
    pub async fn send(&self, method: &str, url: &str, cookie: Option<&str>, form: &str) -> Reply {
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
    pub async fn log_in(&self, app: &ConsoleApp) -> (String, String) {
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
    pub async fn csrf(&self, app: &ConsoleApp, cookie: &str, path: &str) -> String {
        let page = self.send("GET", &app.url(path), Some(cookie), "").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let marker = r#"name="csrf" value=""#;
        let at = page.body.find(marker).expect("a form with a CSRF field") + marker.len();
        page.body[at..].split('"').next().unwrap().to_owned()
    }
}

impl Http {
    /// Opens `path` with `cookie` and hands back the answer's body as it streams.
    pub async fn open(&self, url: &str, cookie: &str) -> (u16, hyper::body::Incoming) {
        let request = axum::http::Request::builder()
            .uri(url)
            .header(header::COOKIE, cookie)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        (response.status().as_u16(), response.into_body())
    }
}
