//! The real `cohort serve` on loopback and a platform's client of it, for the tests of
//! the HTTP API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use super::Cohort;

/// `cohort serve` on a free loopback port; stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    /// Where the server's log (stderr) goes.
    log: std::path::PathBuf,
}

impl Server {
    pub fn start(c: &Cohort, env: &[(&str, &str)]) -> Server {
        // Several servers may share the folder (and the store).
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = c.dir.join(format!("server-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_cohort"))
            .arg("--db")
            .arg(&c.db)
            .arg("--cache-dir")
            .arg(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("cohort serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server says where it listens");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line `{line}`"))
            .to_string();
        Server { child, base, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// End the process at once (SIGKILL), as a crash or a lost machine would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The JSON log lines written so far.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .expect("log")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}` is not JSON: {e}")))
            .collect()
    }

    /// Stop as an operator would (SIGTERM) and wait for the process to end.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A platform's view of the API: a base URL and a token.
pub struct Api<'a> {
    client: Client,
    base: &'a str,
    token: Option<String>,
}

impl<'a> Api<'a> {
    pub fn new(server: &'a Server, token: Option<&str>) -> Self {
        Api {
            client: Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            base: &server.base,
            token: token.map(str::to_string),
        }
    }

    pub fn request(&self, method: &str, path: &str) -> RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let b = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.call("GET", path)
    }

    /// A request without a body.
    pub fn call(&self, method: &str, path: &str) -> Response {
        self.request(method, path).send().expect(method)
    }

    pub fn json(&self, method: &str, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .json(body)
            .send()
            .expect("request")
    }
}

pub fn token(c: &Cohort, name: &str, role: &str) -> String {
    c.ok(&["token", "create", name, "--role", role])
        .trim()
        .to_string()
}

/// Status and JSON body; problems must come as problem+json.
pub fn read(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let problem = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let text = r.text().expect("body");
    if status.is_client_error() || status.is_server_error() {
        assert!(problem, "a {status} must be problem+json: {text}");
    }
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// The response's `ETag`.
pub fn tag_of(r: &Response) -> String {
    r.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_string()
}

pub fn expect(r: Response, want: StatusCode) -> Value {
    let (status, body) = read(r);
    assert_eq!(status, want, "{body:#}");
    body
}

pub fn group(id: &str, mode: &str, on_registration: bool, countries: &[&str]) -> Value {
    json!({
        "id": id,
        "name": id,
        "auto": {"mode": mode, "triggers": {"on_registration": on_registration}},
        "rule": {"all": [{"any": [{"plugin": "country", "config": {"countries": countries}}]}]}
    })
}

pub fn customer(id: &str, country: &str) -> Value {
    json!({"id": id, "country": country})
}
