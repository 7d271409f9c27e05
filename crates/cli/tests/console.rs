//! The console in a real browser (headless Chromium over WebDriver): a member of staff
//! signs in, sees the groups they may see, and signs out; a wrong password is refused
//! and repeated ones lock the account; a form posted without its token is refused;
//! members are added, removed and pinned by form; a customer's page says why; a limited
//! account sees only its groups; an import names its bad row; an admin's pages. The
//! rule builder's tests are in `console_editor.rs`.

mod common;

use common::browser::Browser;
use common::console::{PASSWORD, signed_in, store, user};
use common::http::Server;
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_see_their_groups_and_sign_out() {
    let c = store();
    let server = Server::start(&c, &[]);
    let base = server.base.clone();
    let b = Browser::start().await;

    // Not signed in: the sign-in form, with labels for its fields.
    b.client.goto(&format!("{base}/")).await.expect("opens");
    assert_eq!(b.heading().await, "Sign in");
    let labels = b
        .client
        .find_all(Locator::Css("label[for]"))
        .await
        .expect("labels");
    assert_eq!(labels.len(), 2);

    // A wrong password is refused and says so; the name stays filled in.
    assert_eq!(b.sign_in(&base, "ana", "not the password").await, "Sign in");
    assert!(b.body().await.contains("Wrong name or password."));

    // ana sees every group; times are shown as dates, never as seconds.
    assert_eq!(b.sign_in(&base, "ana", PASSWORD).await, "Groups");
    let text = b.body().await;
    assert!(
        text.contains("VIP customers") && text.contains("Germany"),
        "{text}"
    );
    // Germany's row: 61 active, none pending, c2 expired; its size line says so too.
    let row = b.text("tbody tr:first-child").await;
    assert!(row.contains("61 0 1"), "{row}");
    let chart = b
        .client
        .find(Locator::Css("tbody tr:first-child svg.spark"))
        .await
        .expect("a size line")
        .attr("aria-label")
        .await
        .expect("an attribute")
        .unwrap_or_default();
    assert!(
        chart.starts_with("0 members at ") && chart.ends_with(", 61 now"),
        "{chart}"
    );
    // What the page looks like, for docs/console/ (kept with the test's other files).
    b.screenshot("console-groups.png").await;
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
    assert_eq!(b.click_and_wait("a[href='/groups/de']").await, "Germany");
    let text = b.body().await;
    assert!(text.contains("c1") && !text.contains("c2"), "{text}");
    // 61 active members: 50 on the first page, the rest on the next.
    assert_eq!(b.count("tbody tr").await, 50);
    assert!(!text.contains("d59"), "{text}");
    assert_eq!(b.click_and_wait("a[rel=next]").await, "Germany");
    assert_eq!(b.count("tbody tr").await, 11);
    assert!(b.body().await.contains("d59"));
    assert!(
        b.client.find(Locator::Css("a[rel=next]")).await.is_err(),
        "the last page"
    );
    b.client
        .goto(&format!("{base}/groups/de"))
        .await
        .expect("back");
    assert_eq!(
        b.click_and_wait("a[href='/groups/de?all=true']").await,
        "Germany"
    );
    let text = b.body().await;
    assert!(text.contains("ended by alice: moved abroad"), "{text}");
    b.screenshot("console-members.png").await;
    b.client.goto(&format!("{base}/")).await.expect("back");

    // Signing out ends the session: the cookie no longer opens the console.
    assert_eq!(b.click_and_wait("form.sign-out button").await, "Sign in");
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
    assert_eq!(b.sign_in(&base, "ben", PASSWORD).await, "Groups");
    let text = b.body().await;
    assert!(text.contains("VIP customers"), "{text}");
    assert!(!text.contains("Germany"), "{text}");
    // Another group's page, by link, answers as if it did not exist.
    b.client
        .goto(&format!("{base}/groups/de"))
        .await
        .expect("opens");
    assert_eq!(b.heading().await, "Not found");
    assert!(!b.body().await.contains("c1"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_token_is_refused_and_guessing_locks_the_account() {
    let c = store();
    let (_server, base, b) = signed_in(&c, &[], "ana").await;
    let session = b.session_cookie().await;
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
    assert_eq!(b.heading().await, "Groups", "still signed in");

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
        assert_eq!(b.sign_in(&base, "ben", "wrong password").await, "Sign in");
    }
    assert!(
        b.body().await.contains("locked until"),
        "{}",
        b.body().await
    );
    assert_eq!(b.sign_in(&base, "ben", PASSWORD).await, "Sign in");
    assert!(b.body().await.contains("locked until"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_adds_removes_and_pins_by_form_and_the_history_names_them() {
    let c = store();
    let (_server, base, b) = signed_in(&c, &[], "ana").await;
    assert_eq!(b.open(&format!("{base}/groups/vip")).await, "VIP customers");

    // Add c3 until the first of January 2030, in the viewer's own time.
    b.client
        .find(Locator::Css("details summary"))
        .await
        .expect("the add form")
        .click()
        .await
        .expect("opens");
    b.fill("#add-customer", "c3").await;
    b.client
        .execute(
            "document.getElementById('add-end').value = '2030-01-01T00:00'",
            vec![],
        )
        .await
        .expect("sets the end");
    let offset: i64 = b
        .attribute("input.zone-offset", "value")
        .await
        .parse()
        .expect("the script gave the zone's offset");
    assert_eq!(
        b.click_and_wait("form[action='/groups/vip/members'] button")
            .await,
        "VIP customers"
    );
    let text = b.body().await;
    assert!(text.contains("Added."), "{text}");
    let until = b
        .attribute("tbody tr td:nth-child(4) time", "datetime")
        .await;
    let want = chrono::NaiveDate::from_ymd_opt(2030, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a date")
        .and_utc()
        + chrono::Duration::minutes(offset);
    assert_eq!(until, want.format("%Y-%m-%dT%H:%M:%SZ").to_string());

    // Remove it, pin it out, lift the pin: each says what it did.
    assert_eq!(
        b.click_and_wait("button[aria-label='Remove c3']").await,
        "VIP customers"
    );
    assert!(b.body().await.contains("Removed."));
    assert_eq!(
        b.click_and_wait("button[aria-label='Pin c3 out']").await,
        "VIP customers"
    );
    let text = b.body().await;
    assert!(text.contains("Pinned out (1)"), "{text}");
    assert_eq!(
        b.click_and_wait("button[aria-label='Unpin c3']").await,
        "VIP customers"
    );
    assert!(b.body().await.contains("The pin is lifted."));

    // The history names ana for each, filtered by who acted.
    assert_eq!(
        b.open(&format!("{base}/history?actor=ana")).await,
        "History"
    );
    let text = b.body().await;
    for action in ["added", "removed", "excluded", "unexcluded"] {
        assert!(text.contains(action), "{action}: {text}");
    }
    assert_eq!(b.count("table.history tbody tr").await, 4, "{text}");
    assert!(
        !text.contains("moved abroad"),
        "alice's entry is filtered out"
    );
    // By day, in UTC: today's entries, and none before today.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    b.open(&format!("{base}/history?actor=ana&since={today}"))
        .await;
    assert_eq!(b.count("table.history tbody tr").await, 4);
    b.open(&format!("{base}/history?actor=ana&until=2026-01-01"))
        .await;
    assert_eq!(b.count("table.history tbody tr").await, 0);
    assert_eq!(
        b.open(&format!("{base}/history?since=yesterday")).await,
        "History"
    );
    assert!(b.body().await.contains("is not a day such as"));

    // A form posted without this session's token changes nothing.
    let session = b.session_cookie().await;
    let http = reqwest::Client::new();
    for body in ["customer=c1", "customer=c1&csrf=guessed"] {
        let refused = http
            .post(format!("{base}/groups/vip/members"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(refused.status(), 403, "{body}");
    }
    let members = c.ok(&["member", "list", "vip", "--all"]);
    assert!(!members.contains("c1"), "{members}");
    b.close().await;

    // A read-only member sees no forms, and a form posted with their token is
    // refused all the same.
    c.ok(&["member", "add", "c1", "vip"]);
    let b = Browser::start().await;
    assert_eq!(b.sign_in(&base, "ben", PASSWORD).await, "Groups");
    assert_eq!(b.open(&format!("{base}/groups/vip")).await, "VIP customers");
    assert_eq!(b.count("form[method=post][action^='/groups/']").await, 0);
    let csrf = b.attribute("form.sign-out input[name=csrf]", "value").await;
    let refused = http
        .post(format!("{base}/groups/vip/members/c1/remove"))
        .header("cookie", b.session_cookie().await)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 403);
    assert!(c.ok(&["member", "list", "vip"]).contains("c1"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_page_shows_facts_groups_and_why_each_condition_decided() {
    let c = store();
    // Two groups of one exclusive set: c1 is in `gold` by hand, which comes first.
    for (id, priority) in [("gold", 1), ("silver", 2)] {
        let file = c.file(
            &format!("{id}.json"),
            &format!(
                r#"{{"id":"{id}","name":"{id}","exclusive":{{"set":"tier","priority":{priority}}},
                   "auto":{{"mode":"full-sync"}},
                   "rule":{{"all":[{{"any":[{{"plugin":"country","config":{{"countries":["DE"]}}}}]}}]}}}}"#
            ),
        );
        c.ok(&["group", "save", &file]);
    }
    c.ok(&["member", "add", "c1", "gold"]);
    let (_server, base, b) = signed_in(&c, &[], "ana").await;
    assert_eq!(b.open(&format!("{base}/customers/c1")).await, "Customer c1");
    let text = b.body().await;
    assert!(text.contains("country") && text.contains("DE"), "{text}");
    assert_eq!(
        b.count("a[href='/groups/de?customer=c1']").await,
        1,
        "{text}"
    );
    assert!(text.contains("rule:de"), "its history: {text}");
    b.screenshot("console-customer.png").await;
    // An ended membership says who ended it and why.
    assert_eq!(b.open(&format!("{base}/customers/c2")).await, "Customer c2");
    let text = b.body().await;
    assert!(text.contains("ended by alice: moved abroad"), "{text}");
    b.open(&format!("{base}/customers/c1")).await;

    b.client
        .find(Locator::Css("#why-group"))
        .await
        .expect("the group list")
        .select_by_value("de")
        .await
        .expect("selects");
    assert_eq!(
        b.click_and_wait("form[action='/customers/c1/why'] button")
            .await,
        "Why c1 in Germany"
    );
    let text = b.body().await;
    assert!(text.contains("the rule says: a member."), "{text}");
    assert!(
        text.contains("the plugin answers match, so this holds"),
        "{text}"
    );
    assert!(
        text.contains("Because country `DE` is one of `DE`."),
        "{text}"
    );
    b.screenshot("console-why.png").await;

    // A French customer: the condition does not hold, and the facts say why.
    assert_eq!(
        b.open(&format!("{base}/customers/c3/why?group=de")).await,
        "Why c3 in Germany"
    );
    let text = b.body().await;
    assert!(text.contains("the rule says: not a member."), "{text}");
    assert!(
        text.contains("Because country `FR` is not one of `DE`."),
        "{text}"
    );
    assert!(text.contains("no membership in this group"), "{text}");

    // The exclusive set says which group ahead of this one holds the customer.
    assert_eq!(
        b.open(&format!("{base}/customers/c1/why?group=silver"))
            .await,
        "Why c1 in silver"
    );
    let text = b.body().await;
    assert!(
        text.contains("exclusive set tier at priority 2")
            && text.contains("The customer is in `gold`, which comes first."),
        "{text}"
    );
    b.open(&format!("{base}/customers/c2/why?group=silver"))
        .await;
    assert!(
        b.body()
            .await
            .contains("No group ahead of it holds the customer.")
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_account_sees_only_its_groups_customers_and_history() {
    let c = store();
    c.ok(&["member", "add", "c3", "vip"]);
    c.ok(&["member", "add", "c3", "de"]);
    let (_server, base, b) = signed_in(&c, &[], "ben").await;

    // c3 is vip's: shown, with only the vip membership.
    assert_eq!(b.open(&format!("{base}/customers/c3")).await, "Customer c3");
    assert_eq!(b.count("a[href='/groups/vip?customer=c3']").await, 1);
    assert_eq!(b.count("a[href^='/groups/de']").await, 0);
    assert!(!b.body().await.contains("Germany"));

    // Anything of de's, by link, is not found, as a missing thing is.
    for path in [
        "/customers/c1",
        "/customers/c3/why?group=de",
        "/customers/c1/why?group=vip",
        "/groups/de?customer=c3",
    ] {
        assert_eq!(
            b.open(&format!("{base}{path}")).await,
            "Not found",
            "{path}"
        );
        assert!(!b.body().await.contains("Germany"), "{path}");
    }

    // A history filtered on de's group or customer finds nothing, as a missing one.
    for path in [
        "/history?group=de",
        "/history?customer=c1",
        "/history?customer=nobody",
    ] {
        assert_eq!(b.open(&format!("{base}{path}")).await, "History", "{path}");
        assert_eq!(b.count("table.history tbody tr").await, 0, "{path}");
    }

    // The history holds only vip's entries.
    assert_eq!(b.open(&format!("{base}/history")).await, "History");
    assert!(b.count("table.history tbody tr").await > 0);
    assert_eq!(b.count("table.history a[href='/groups/de']").await, 0);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_with_a_bad_row_names_its_line_and_column_and_applies_nothing() {
    let c = store();
    let file = c.file(
        "members.csv",
        "Customer #,Assigned Groups,Start Date & Time,End Date & Time\n\
         c1,vip,2026-03-01,\n\
         c2,platinum,,\n",
    );
    let (_server, base, b) = signed_in(&c, &[], "ana").await;
    assert_eq!(b.open(&format!("{base}/imports")).await, "Imports");
    assert_eq!(b.count("a[href='/imports/template'][download]").await, 1);
    b.fill("#file", &file).await;
    // For real, not a dry run.
    b.client
        .find(Locator::Css("#dry_run"))
        .await
        .expect("the dry-run box")
        .click()
        .await
        .expect("unticks");
    let heading = b.click_and_wait("form[action='/imports'] button").await;
    assert!(heading.starts_with("Import "), "{heading}");
    let text = b.body().await;
    assert!(
        text.contains("1 of 2 rows were rejected; nothing was applied"),
        "{text}"
    );
    let problem = b.text("table.problems tbody tr").await;
    assert_eq!(problem, "3 Assigned Groups unknown group `platinum`");
    b.screenshot("console-import.png").await;
    let vip = c.ok(&["member", "list", "vip", "--all"]);
    assert!(!vip.contains("c1"), "all or nothing: {vip}");

    // The list of imports shows it, failed, with its counts.
    assert_eq!(b.open(&format!("{base}/imports")).await, "Imports");
    let row = b.text("tbody tr").await;
    assert!(
        row.contains("members.csv") && row.contains("failed"),
        "{row}"
    );

    // An account limited to a group is refused: an import spans every group.
    b.close().await;
    let b = Browser::start().await;
    assert_eq!(b.sign_in(&base, "ben", PASSWORD).await, "Groups");
    assert_eq!(b.open(&format!("{base}/imports")).await, "Refused");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_plugins_with_their_cost_makes_and_revokes_tokens_and_reads_webhooks() {
    let c = store();
    user(
        &c,
        &[
            "user",
            "create",
            "root",
            "--role",
            "admin",
            "--password-stdin",
        ],
    );
    let admin_token = common::http::token(&c, "setup", "admin");
    let env = [("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")];
    let server = Server::start(&c, &env);
    let base = server.base.clone();
    let http = reqwest::Client::new();
    // A webhook whose receiver is not there: delivery fails and says why.
    let hook = http
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({"url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(hook.status(), 201);
    c.ok(&["member", "add", "c1", "vip"]);
    let b = Browser::start().await;
    assert_eq!(b.sign_in(&base, "root", PASSWORD).await, "Groups");
    // A run, so that the plugin has a cost to show.
    b.open(&format!("{base}/groups/de")).await;
    let heading = b
        .click_and_wait("form[action='/groups/de/run'] button")
        .await;
    assert!(heading.starts_with("Run "), "{heading}");

    assert_eq!(
        b.click_and_wait("nav.main a[href='/plugins']").await,
        "Plugins"
    );
    let text = b.body().await;
    assert!(
        text.contains("country") && text.contains("signed by standard"),
        "{text}"
    );
    let cost = b.text("td.cost").await;
    assert!(cost.contains("63 customers"), "{cost}");

    // A plugin uploaded from the page: the legacy test plugin, unsigned.
    b.fill("#wasm", cohort_artifacts::LEGACY_PATH).await;
    assert_eq!(
        b.click_and_wait("form[action='/plugins'] button").await,
        "Plugins"
    );
    assert!(c.ok(&["plugin", "list"]).contains("legacy"));
    assert!(b.body().await.contains("signed by nobody"));

    // A token limited to vip, shown once, then revoked.
    assert_eq!(
        b.click_and_wait("nav.main a[href='/tokens']").await,
        "API tokens"
    );
    b.fill("#token-name", "vip-desk").await;
    b.fill("#token-groups", "vip").await;
    assert_eq!(
        b.click_and_wait("form[action='/tokens'] button").await,
        "API tokens"
    );
    let token = b.text("code.token").await;
    let groups = |token: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}/v1/groups"))
                .bearer_auth(token)
                .send()
                .await
                .expect("GET")
        }
    };
    let seen: serde_json::Value = groups(token.clone()).await.json().await.expect("JSON");
    assert_eq!(seen["items"].as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(seen["items"][0]["id"], "vip");
    b.open(&format!("{base}/tokens")).await;
    assert_eq!(b.count("code.token").await, 0, "shown only once");
    assert_eq!(
        b.click_and_wait("button[aria-label='Revoke vip-desk']")
            .await,
        "API tokens"
    );
    assert_eq!(groups(token).await.status(), 401);

    // The webhook's position and its last error.
    let started = std::time::Instant::now();
    loop {
        assert_eq!(b.open(&format!("{base}/webhooks")).await, "Webhooks");
        let text = b.body().await;
        if text.contains("retrying") {
            assert!(text.contains("http://127.0.0.1:9/hook"), "{text}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    b.close().await;

    // Not for an operator.
    let b = Browser::start().await;
    assert_eq!(b.sign_in(&base, "ana", PASSWORD).await, "Groups");
    assert_eq!(b.count("nav.main a[href='/plugins']").await, 0);
    assert_eq!(b.open(&format!("{base}/plugins")).await, "Refused");
    assert_eq!(b.open(&format!("{base}/tokens")).await, "Refused");
    b.close().await;
}
