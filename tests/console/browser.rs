//! A headless Chromium behind chromedriver, started for one test and stopped when dropped.
//! chromedriver must be installed (Debian's `chromium-driver`; `.ci/run` installs it): without
//! it the test fails, saying so, rather than passing without a browser.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// How long a page element may take to appear.
const PATIENCE: Duration = Duration::from_secs(20);

/// The laptop-sized window every screenshot is taken at.
const WINDOW: (u32, u32) = (1280, 800);

fn chromedriver() -> PathBuf {
    let path = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.exists(),
        "chromedriver is not installed at {} (set CHROMEDRIVER, or `apt-get install chromium chromium-driver`): the console's browser tests need it",
        path.display()
    );
    path
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The driver process, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One browser session for one test.
pub struct Browser {
    pub client: Client,
    name: String,
    shots: usize,
    _driver: Driver,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Only one browser at a time: Chromium is heavy, and the tests share two cores with the
/// servers they drive.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Browser {
    /// Starts chromedriver and a headless Chromium; `name` prefixes the screenshots.
    pub async fn start(name: &str) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver(child);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={},{}", WINDOW.0, WINDOW.1)],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        // chromedriver takes a moment to listen; its port answering is what is waited for.
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "chromedriver did not start a session: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        client.set_window_size(WINDOW.0, WINDOW.1).await.unwrap();
        Self {
            client,
            name: name.to_owned(),
            shots: 0,
            _driver: driver,
            _turn: turn,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The element `css` selects, once it is on the page.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    /// Types `text` into the field `css` selects.
    pub async fn fill(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// The text of the element `css` selects. Found again if the page was replaced between
    /// finding and reading it (a form's answer arriving).
    pub async fn text(&self, css: &str) -> String {
        self.text_once(css, |_| true).await
    }

    /// The text of the element `css` selects, once it satisfies `wanted`: after a click that
    /// submits a form, the page it replaces may still be the one shown.
    pub async fn text_once(&self, css: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let read = self.find(css).await.text().await;
            match read {
                Ok(text) if wanted(&text) => return text,
                Ok(text) if tokio::time::Instant::now() >= deadline => {
                    panic!("`{css}` never showed what was wanted; it shows {text:?}")
                }
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    panic!("`{css}` cannot be read: {e}")
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Writes what the browser shows to `target/console-screenshots/{test}-{n}-{what}.png`.
    pub async fn screenshot(&mut self, what: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        self.shots += 1;
        std::fs::write(
            dir.join(format!("{}-{}-{what}.png", self.name, self.shots)),
            png,
        )
        .unwrap();
    }

    /// Logs in with `token` through the login form.
    pub async fn log_in(&mut self, console: &str, token: &str) {
        self.goto(&format!("{console}/decisions")).await;
        // Without a session every page sends the browser to the login form.
        self.find("#token").await;
        assert_eq!(self.path().await, "/login");
        self.screenshot("login").await;
        self.fill("#token", token).await;
        self.click("form button[type=submit]").await;
        self.find("#decisions").await;
        assert_eq!(self.text("#author").await, "admin");
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}
