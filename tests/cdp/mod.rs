//! Headless Chromium driven over the DevTools protocol, for the status-page tests: a browser
//! with a fresh profile, commands with ids, and the console errors, exceptions and failed loads
//! it reported. Screenshots go to `$CARGO_TARGET_DIR/test-artifacts/` (not the repository).

#![allow(dead_code)] // reason: each test binary uses a different subset of the helpers

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A DevTools session on one page: commands with ids, events kept for inspection.
pub struct Cdp {
    ws: Ws,
    next_id: u64,
    events: Vec<Value>,
}

impl Cdp {
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        timeout(
            Duration::from_secs(10),
            self.ws.send(Message::Text(msg.into())),
        )
        .await
        .expect("send in time")
        .expect("send");
        loop {
            let msg = timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in time"))
                .expect("socket open")
                .expect("message");
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).expect("json");
            if v["id"] == json!(id) {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Console errors, uncaught exceptions and failed loads seen so far.
    pub fn errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => true,
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == json!("error"),
                _ => false,
            })
            .collect()
    }

    pub async fn screenshot(&mut self, path: &Path) {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("data"))
            .expect("base64");
        std::fs::write(path, png).expect("screenshot written");
    }
}

/// GET from the DevTools HTTP endpoint (it wants an IP as the Host).
pub async fn devtools_get(addr: SocketAddr, path: &str) -> Value {
    let mut s = timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    // It keeps the connection open: read the headers, then Content-Length bytes.
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.expect("read");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(usize::MAX);
                if body.len() >= len || n == 0 {
                    return body.to_owned();
                }
            } else if n == 0 {
                return String::new();
            }
        }
    };
    let body = timeout(Duration::from_secs(10), read)
        .await
        .expect("answer in time");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target dir")
                .to_owned()
        });
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Headless Chromium with a fresh profile, and a DevTools session on its page (`Runtime`,
/// `Log` and `Page` events on). Killed and its profile removed by [`Browser::close`] (or killed
/// when dropped).
pub struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts Chromium; `None` when it is not installed (the caller skips).
    pub async fn launch() -> Option<(Browser, Cdp)> {
        if !Path::new(CHROMIUM).exists() {
            return None;
        }
        let profile = std::env::temp_dir().join(format!("p2pool-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let mut browser = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1100,1800",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let mut stderr = BufReader::new(browser.stderr.take().expect("stderr")).lines();
        let ws_url = timeout(Duration::from_secs(60), async {
            while let Some(line) = stderr.next_line().await.expect("stderr") {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited before listening");
        })
        .await
        .expect("chromium listens in time");
        // Keep draining its stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let devtools: SocketAddr = ws_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port")
            .parse()
            .expect("socket address");
        let targets = devtools_get(devtools, "/json/list").await;
        let page_ws = targets
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["type"] == json!("page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (ws, _) = timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(page_ws.as_str()),
        )
        .await
        .expect("devtools connects in time")
        .expect("devtools connects");
        let mut cdp = Cdp {
            ws,
            next_id: 0,
            events: Vec::new(),
        };
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            cdp.call(domain, json!({})).await;
        }
        Some((
            Browser {
                child: browser,
                profile,
            },
            cdp,
        ))
    }

    /// Kills the browser and removes its profile.
    pub async fn close(mut self, cdp: Cdp) {
        drop(cdp);
        let _ = self.child.kill().await;
        let _ = timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
