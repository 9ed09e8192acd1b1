//! A real browser for the dashboard's tests: Debian's headless Chromium driven over W3C
//! WebDriver by Debian's `chromedriver`, both started here on 127.0.0.1.
//!
//! The client is the few WebDriver commands the tests use, spoken as JSON over HTTP with the
//! workspace's `reqwest`. A WebDriver crate (fantoccini) was tried: its dependencies enable
//! features (`time`'s formatting, `syn`'s fold) that lancedb's dependencies share, so the test
//! build and the quick start's build would no longer share one compiled lancedb.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a page element is waited for.
const WAIT: Duration = Duration::from_secs(15);

/// Where Chromium and its driver are: `LANCESYNC_CHROMIUM` / `LANCESYNC_CHROMEDRIVER`, else
/// Debian's paths.
fn program(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium and chromium-driver packages \
         (scripts/test.sh does), or set {variable}",
        path.display()
    );
    path
}

/// A headless Chromium session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

/// A free port on 127.0.0.1 (bound, then let go for chromedriver to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Start chromedriver and a headless Chromium with a new, empty profile at 1280×800.
    /// Screenshots go to `shots`.
    pub async fn start(shots: &Path) -> Self {
        let chromium = program("LANCESYNC_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("LANCESYNC_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not answer on {base}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("a profile folder");
        // As Chromium must run on a machine with no network beyond loopback: no sandbox (root),
        // no GPU, and none of the background connections it would make.
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium, "args": args },
            } } }))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {answer}"))
            .to_string();
        std::fs::create_dir_all(shots).expect("the screenshot folder");
        Self {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            _profile: profile,
            shots: shots.to_path_buf(),
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("chromedriver answers");
        let status = response.status();
        let answer: Value = response.json().await.expect("chromedriver answers JSON");
        assert!(
            status.is_success(),
            "WebDriver {path} failed ({status}): {}",
            answer["value"]
        );
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None).await
    }

    /// Open `url` and wait for it to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until the page's address holds `needle` (a click's navigation has landed).
    pub async fn wait_for_url(&self, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let url = self.url().await;
            if url.contains(needle) {
                return url;
            }
            assert!(
                started.elapsed() < timeout,
                "the page never went to {needle:?} within {timeout:?}: it is {url}, saying {}",
                self.text("main").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resize the window (a phone's width: 390×844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await;
    }

    /// Run `script` (a function body; `arguments` holds `args`) and return its value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Scroll the element matching `css` into view (for a screenshot of it).
    pub async fn scroll_to(&self, css: &str) {
        self.element(css).await;
        self.run(
            "document.querySelector(arguments[0]).scrollIntoView({block: 'start'});",
            json!([css]),
        )
        .await;
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        self.run(
            "return document.querySelector(arguments[0]) !== null;",
            json!([css]),
        )
        .await
        .as_bool()
        .unwrap_or(false)
    }

    /// The first element matching `css`, waited for.
    async fn element(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if self.has(css).await {
                let found = self
                    .post("/element", json!({ "using": "css selector", "value": css }))
                    .await;
                return found[ELEMENT]
                    .as_str()
                    .expect("an element reference")
                    .to_string();
            }
            assert!(
                started.elapsed() < WAIT,
                "no element {css} on {} after {WAIT:?}; the page says: {}",
                self.url().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Click the element matching `css` (waited for).
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// Type `text` into the field matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Give a file input a file from disk (as a person picking it would).
    pub async fn pick_file(&self, css: &str, file: &Path) {
        let element = self.element(css).await;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": file.display().to_string() }),
        )
        .await;
    }

    /// The visible text of the element matching `css`, or "" when there is none.
    pub async fn text(&self, css: &str) -> String {
        self.run(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Wait until the element matching `css` shows `needle`; returns its text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < timeout,
                "{css} never said {needle:?} within {timeout:?} on {}; it says {text:?}; the page: {}",
                self.url().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The browser's cookies for the page, as WebDriver describes them.
    pub async fn cookies(&self) -> Vec<Value> {
        self.get("/cookie")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A PNG of the page as shown, saved as `{name}.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let shot = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().expect("base64"))
            .expect("a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// End the session: Chromium closes, then chromedriver is stopped.
    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked: the session is ended with a plain blocking request (no runtime
        // here), so Chromium closes, then chromedriver goes.
        end_session(&self.session);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE` the session `url` (`http://127.0.0.1:PORT/session/ID`) without an async runtime.
fn end_session(url: &str) {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return;
    };
    let Some((address, path)) = rest.split_once('/') else {
        return;
    };
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /{path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}
