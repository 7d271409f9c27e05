//! The console's tests' store, staff and signed-in browser.

use super::Cohort;
use super::browser::Browser;
use super::http::Server;

pub const PASSWORD: &str = "correct horse battery";

pub fn user(c: &Cohort, args: &[&str]) {
    let (code, _, err) = c.with_stdin(args, &format!("{PASSWORD}\n"));
    assert_eq!(code, 0, "{args:?}: {err}");
}

/// A store with two groups and two members: `ana` sees every group, `ben` only `vip`.
pub fn store() -> Cohort {
    let c = Cohort::new();
    c.ok(&["plugin", "add", "country"]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "vip.json",
            r#"{"id":"vip","name":"VIP customers","auto":{"mode":"disabled"},"rule":{"all":[]}}"#,
        ),
    ]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "de.json",
            r#"{"id":"de","name":"Germany","auto":{"mode":"full-sync","triggers":{"schedule":
               {"cron":"0 0 3 * * *","time_zone":"Europe/Berlin"}}},
               "rule":{"all":[{"any":[{"plugin":"country","config":{"countries":["DE"]}}]}]}}"#,
        ),
    ]);
    c.ok(&["group", "use", "de", "tariff", "fiber-100"]);
    // More Germans than a page holds: c1, c2, then d00 to d59; and one French.
    let customers = ["c1", "c2", "c3"]
        .iter()
        .map(|id| id.to_string())
        .chain((0..60).map(|i| format!("d{i:02}")))
        .map(|id| {
            let country = if id == "c3" { "FR" } else { "DE" };
            format!(r#"{{"id":"{id}","country":"{country}"}}"#)
        })
        .collect::<Vec<_>>()
        .join("\n");
    c.ok(&["customer", "load", &c.file("c.jsonl", &customers)]);
    c.ok(&["run", "de"]);
    c.ok(&["member", "remove", "c2", "de", "--reason", "moved abroad"]);
    user(
        &c,
        &[
            "user",
            "create",
            "ana",
            "--role",
            "operator",
            "--password-stdin",
        ],
    );
    user(
        &c,
        &[
            "user",
            "create",
            "ben",
            "--role",
            "read-only",
            "--groups",
            "vip",
            "--password-stdin",
        ],
    );
    c
}

/// `cohort serve` on `c`'s store (with `env`) and a browser signed in to it as `name`:
/// the server (stopped when dropped), its address and the browser.
pub async fn signed_in(c: &Cohort, env: &[(&str, &str)], name: &str) -> (Server, String, Browser) {
    let server = Server::start(c, env);
    let base = server.base.clone();
    let b = Browser::start().await;
    assert_eq!(b.sign_in(&base, name, PASSWORD).await, "Groups");
    (server, base, b)
}

/// Wait until `css` finds an element (a page the browser is still loading, say).
pub async fn wait_for(b: &Browser, css: &str) {
    let started = std::time::Instant::now();
    while b.count(css).await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no {css} appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
