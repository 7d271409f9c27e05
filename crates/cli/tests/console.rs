//! The console in a real browser (headless Chromium over WebDriver): a member of staff
//! signs in, sees the groups they may see, and signs out; a wrong password is refused
//! and repeated ones lock the account; a form posted without its token is refused.

mod common;

use common::Cohort;
use common::browser::Browser;
use common::http::Server;
use fantoccini::Locator;

const PASSWORD: &str = "correct horse battery";

fn user(c: &Cohort, args: &[&str]) {
    let (code, _, err) = c.with_stdin(args, &format!("{PASSWORD}\n"));
    assert_eq!(code, 0, "{args:?}: {err}");
}

/// A store with two groups and two members: `ana` sees every group, `ben` only `vip`.
fn store() -> Cohort {
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

async fn sign_in(b: &Browser, base: &str, name: &str, password: &str) -> String {
    let client = &b.client;
    client.goto(&format!("{base}/")).await.expect("opens");
    client
        .find(Locator::Id("name"))
        .await
        .expect("a name field")
        .send_keys(name)
        .await
        .expect("types");
    client
        .find(Locator::Id("password"))
        .await
        .expect("a password field")
        .send_keys(password)
        .await
        .expect("types");
    click_and_wait(b, "form.sign-in button[type=submit]").await
}

/// Click the element `css` names and wait for the page it leads to: the heading of
/// the old page goes stale when the new one has replaced it. Its heading.
async fn click_and_wait(b: &Browser, css: &str) -> String {
    let old = b.client.find(Locator::Css("h1")).await.expect("a heading");
    b.client
        .find(Locator::Css(css))
        .await
        .expect("a button")
        .click()
        .await
        .expect("clicks");
    let started = std::time::Instant::now();
    while old.text().await.is_ok() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "no new page after clicking {css}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    heading(b).await
}

async fn heading(b: &Browser) -> String {
    b.client
        .find(Locator::Css("h1"))
        .await
        .expect("a heading")
        .text()
        .await
        .expect("text")
}

async fn body(b: &Browser) -> String {
    b.client
        .find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_see_their_groups_and_sign_out() {
    let c = store();
    let server = Server::start(&c, &[]);
    let base = server.base.clone();
    let b = Browser::start().await;

    // Not signed in: the sign-in form, with labels for its fields.
    b.client.goto(&format!("{base}/")).await.expect("opens");
    assert_eq!(heading(&b).await, "Sign in");
    let labels = b
        .client
        .find_all(Locator::Css("label[for]"))
        .await
        .expect("labels");
    assert_eq!(labels.len(), 2);

    // A wrong password is refused and says so; the name stays filled in.
    assert_eq!(
        sign_in(&b, &base, "ana", "not the password").await,
        "Sign in"
    );
    assert!(body(&b).await.contains("Wrong name or password."));

    // ana sees every group; times are shown as dates, never as seconds.
    assert_eq!(sign_in(&b, &base, "ana", PASSWORD).await, "Groups");
    let text = body(&b).await;
    assert!(
        text.contains("VIP customers") && text.contains("Germany"),
        "{text}"
    );
    // What the page looks like, for docs/console/ (kept with the test's other files).
    let shot = b.client.screenshot().await.expect("a screenshot");
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-groups.png"),
        shot,
    )
    .expect("write the screenshot");
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name() == "cohort_session")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    let stolen = format!("cohort_session={}", session.value());

    // A group's members: the active ones, then every one, an ended membership saying
    // who ended it and why.
    assert_eq!(click_and_wait(&b, "a[href='/groups/de']").await, "Germany");
    let text = body(&b).await;
    assert!(text.contains("c1") && !text.contains("c2"), "{text}");
    // 61 active members: 50 on the first page, the rest on the next.
    let rows = |b: &Browser| {
        let client = b.client.clone();
        async move {
            client
                .find_all(Locator::Css("tbody tr"))
                .await
                .expect("rows")
                .len()
        }
    };
    assert_eq!(rows(&b).await, 50);
    assert!(!text.contains("d59"), "{text}");
    assert_eq!(click_and_wait(&b, "a[rel=next]").await, "Germany");
    assert_eq!(rows(&b).await, 11);
    assert!(body(&b).await.contains("d59"));
    assert!(
        b.client.find(Locator::Css("a[rel=next]")).await.is_err(),
        "the last page"
    );
    b.client
        .goto(&format!("{base}/groups/de"))
        .await
        .expect("back");
    assert_eq!(
        click_and_wait(&b, "a[href='/groups/de?all=true']").await,
        "Germany"
    );
    let text = body(&b).await;
    assert!(text.contains("ended by alice: moved abroad"), "{text}");
    let shot = b.client.screenshot().await.expect("a screenshot");
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-members.png"),
        shot,
    )
    .expect("write the screenshot");
    b.client.goto(&format!("{base}/")).await.expect("back");

    // Signing out ends the session: the cookie no longer opens the console.
    assert_eq!(click_and_wait(&b, "form.sign-out button").await, "Sign in");
    let page = reqwest::Client::new()
        .get(format!("{base}/"))
        .header("cookie", &stolen)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("page");
    assert!(page.contains("<h1>Sign in</h1>"), "{page}");

    // ben sees only the group he is given.
    assert_eq!(sign_in(&b, &base, "ben", PASSWORD).await, "Groups");
    let text = body(&b).await;
    assert!(text.contains("VIP customers"), "{text}");
    assert!(!text.contains("Germany"), "{text}");
    // Another group's page, by link, answers as if it did not exist.
    b.client
        .goto(&format!("{base}/groups/de"))
        .await
        .expect("opens");
    assert_eq!(heading(&b).await, "Not found");
    assert!(!body(&b).await.contains("c1"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_token_is_refused_and_guessing_locks_the_account() {
    let c = store();
    let server = Server::start(&c, &[]);
    let base = server.base.clone();
    let b = Browser::start().await;
    assert_eq!(sign_in(&b, &base, "ana", PASSWORD).await, "Groups");
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    let session = format!(
        "cohort_session={}",
        cookies
            .iter()
            .find(|c| c.name() == "cohort_session")
            .expect("session")
            .value()
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // Sign-out posted from elsewhere, without the session's token: refused, and the
    // session goes on.
    for body in ["", "csrf=guessed"] {
        let refused = http
            .post(format!("{base}/sign-out"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert!(
            refused.status() == 403 || refused.status() == 422,
            "{body:?}: {}",
            refused.status()
        );
    }
    b.client.refresh().await.expect("reload");
    assert_eq!(heading(&b).await, "Groups", "still signed in");

    // The cookies are Secure when the browser came over HTTPS (a proxy says so), and
    // only then: over plain HTTP a Secure cookie would never come back.
    for (proto, secure) in [(Some("https"), true), (None, false)] {
        let mut request = http.get(format!("{base}/"));
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        let response = request.send().await.expect("GET /");
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("the sign-in form sets its cookie")
            .to_string();
        assert_eq!(cookie.contains("; Secure"), secure, "{proto:?}: {cookie}");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
    }

    // A sign-in posted without the form's token is refused before any password check.
    let refused = http
        .post(format!("{base}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "name=ben&password={}&csrf=x",
            PASSWORD.replace(' ', "+")
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 403);

    // Five wrong passwords in a row lock ben out, even with the right one after.
    b.close().await;
    let b = Browser::start().await;
    for _ in 0..5 {
        assert_eq!(sign_in(&b, &base, "ben", "wrong password").await, "Sign in");
    }
    assert!(
        body(&b).await.contains("locked until"),
        "{}",
        body(&b).await
    );
    assert_eq!(sign_in(&b, &base, "ben", PASSWORD).await, "Sign in");
    assert!(body(&b).await.contains("locked until"));
    b.close().await;
}
