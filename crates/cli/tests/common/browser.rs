//! A real browser for the console's tests: Debian's Chromium, headless, driven over
//! WebDriver by a chromedriver this starts on loopback and stops when dropped. No test
//! downloads a browser.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (scripts/setup installs chromium-driver)");
        let profile = tempfile::tempdir().expect("a fresh profile");
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Root needs --no-sandbox; the networking flags keep Chromium from
                // calling out of a closed network.
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session: {e}"),
            }
        };
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    /// Sign in at `base` as `name`; the heading of the page that follows.
    pub async fn sign_in(&self, base: &str, name: &str, password: &str) -> String {
        self.client.goto(&format!("{base}/")).await.expect("opens");
        self.fill("#name", name).await;
        self.fill("#password", password).await;
        self.click_and_wait("form.sign-in button[type=submit]")
            .await
    }

    /// Type `text` into the field `css` names, after what it holds.
    pub async fn fill(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("a field {css}"))
            .send_keys(text)
            .await
            .expect("types");
    }

    /// Type `text` into the field `css` names, in place of what it holds.
    pub async fn refill(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("a field {css}"))
            .clear()
            .await
            .expect("clears");
        self.fill(css, text).await;
    }

    /// The value of attribute `name` of the first element `css` finds.
    pub async fn attribute(&self, css: &str, name: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css}"))
            .attr(name)
            .await
            .expect("an attribute")
            .unwrap_or_default()
    }

    /// Open `url`; the heading of the page.
    pub async fn open(&self, url: &str) -> String {
        self.client.goto(url).await.expect("opens");
        self.heading().await
    }

    /// Click the element `css` names and wait for the page it leads to: the heading of
    /// the old page goes stale when the new one has replaced it. Its heading.
    pub async fn click_and_wait(&self, css: &str) -> String {
        let old = self
            .client
            .find(Locator::Css("h1"))
            .await
            .expect("a heading");
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css} to click"))
            .click()
            .await
            .expect("clicks");
        let started = Instant::now();
        while old.text().await.is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no new page after clicking {css}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.heading().await
    }

    pub async fn heading(&self) -> String {
        self.text("h1").await
    }

    /// The text of the page's main part.
    pub async fn body(&self) -> String {
        self.text("main").await
    }

    /// The text of the first element `css` finds.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("no {css}"))
            .text()
            .await
            .expect("text")
    }

    /// How many elements `css` finds.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("a query")
            .len()
    }

    /// Keep a screenshot of the page as `name` beside the tests' other files, for
    /// docs/console/.
    pub async fn screenshot(&self, name: &str) {
        let shot = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name),
            shot,
        )
        .expect("write the screenshot");
    }

    /// The session cookie, as a `Cookie` header's value.
    pub async fn session_cookie(&self) -> String {
        let cookies = self.client.get_all_cookies().await.expect("cookies");
        let session = cookies
            .iter()
            .find(|c| c.name() == "cohort_session")
            .expect("a session cookie");
        format!("cohort_session={}", session.value())
    }

    /// End the browser session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
