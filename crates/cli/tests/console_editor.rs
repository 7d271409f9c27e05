//! The console's rule builder in a real browser (headless Chromium over WebDriver):
//! a group built from plugin conditions, checked at its fields, previewed, saved and
//! run; a rule on another group's members built with the group picker.

mod common;

use common::browser::Browser;
use common::console::{signed_in, store, wait_for};
use fantoccini::Locator;

/// The rule builder on a new group `id` named `name`, with one clause of one condition
/// picked as `pick` (a plugin's id, or `:group`). Picking brings the condition's fields:
/// the console's script submits the form.
async fn new_rule(b: &Browser, id: &str, name: &str, pick: &str) {
    assert_eq!(b.click_and_wait("a[href='/groups/new']").await, "New group");
    b.fill("#id", id).await;
    b.fill("#name", name).await;
    assert_eq!(
        b.click_and_wait("button[value='add-clause']").await,
        "New group"
    );
    b.client
        .find(Locator::Css("#c0-0-plugin"))
        .await
        .expect("a condition list")
        .select_by_value(pick)
        .await
        .expect("picks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_built_in_the_rule_builder_is_checked_previewed_saved_and_run() {
    let c = store();
    let (_server, base, b) = signed_in(&c, &[], "ana").await;
    new_rule(&b, "fr", "France", "country").await;
    wait_for(&b, "textarea[name='c0.0.countries']").await;
    assert_eq!(b.count("label[for='c0-0-countries']").await, 1);

    // A code the plugin refuses: its message is at the field, and nothing is saved.
    b.fill("textarea[name='c0.0.countries']", "FR\nXX").await;
    assert_eq!(
        b.click_and_wait("button[value='preview']").await,
        "New group"
    );
    wait_for(&b, "#c0-0-countries-problem").await;
    let problem = b.text("#c0-0-countries-problem").await;
    assert!(
        problem.starts_with("line 2: ") && problem.contains("XX"),
        "{problem}"
    );
    assert_eq!(
        b.count("textarea[name='c0.0.countries'][aria-invalid='true']")
            .await,
        1
    );
    b.client
        .execute(
            "document.querySelector('fieldset.rule').scrollIntoView()",
            vec![],
        )
        .await
        .expect("scrolls");
    b.screenshot("console-editor.png").await;

    // Mended, previewed: c3 is the one French customer.
    b.refill("textarea[name='c0.0.countries']", "FR").await;
    assert_eq!(
        b.click_and_wait("button[value='preview']").await,
        "New group"
    );
    let added = b.text("section.preview li.would-add").await;
    assert_eq!(added, "Would add 1: c3");
    assert!(
        c.fails(&["group", "show", "fr"]).contains("fr"),
        "not saved yet"
    );

    // Saved, run by hand, its members shown.
    assert_eq!(b.click_and_wait("button[value='save']").await, "France");
    assert!(b.body().await.contains("Saved."));
    let heading = b
        .click_and_wait("form[action='/groups/fr/run'] button")
        .await;
    assert!(heading.starts_with("Run "), "{heading}");
    let started = std::time::Instant::now();
    while !b.body().await.contains("finished") {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        b.client.refresh().await.expect("reload");
    }
    assert!(b.body().await.contains("1 added, 0 removed"));
    assert_eq!(b.open(&format!("{base}/groups/fr")).await, "France");
    assert_eq!(b.count("tbody tr").await, 1);
    assert!(b.body().await.contains("c3"));

    // The editor opens on the saved group with its condition's fields filled in.
    assert_eq!(
        b.click_and_wait("a[href='/groups/fr/edit']").await,
        "Edit fr"
    );
    let countries = b
        .client
        .find(Locator::Css("textarea[name='c0.0.countries']"))
        .await
        .expect("the field")
        .prop("value")
        .await
        .expect("a value");
    assert_eq!(countries.as_deref(), Some("FR"));

    // Deleted from the editor; a group in use is kept unless the box says otherwise.
    assert_eq!(
        b.click_and_wait("form[action='/groups/fr/delete'] button")
            .await,
        "Groups"
    );
    assert!(!b.body().await.contains("France"));
    assert_eq!(b.open(&format!("{base}/groups/de/edit")).await, "Edit de");
    assert_eq!(
        b.click_and_wait("form[action='/groups/de/delete'] button")
            .await,
        "Not done"
    );
    assert!(b.body().await.contains("fiber-100"), "{}", b.body().await);
    assert!(c.ok(&["group", "list"]).contains("de"));
    b.close().await;
}

/// The rule builder's "a member of group": its field suggests the groups' ids, an
/// unknown one is named at the field, and "is not a member of `de`" previews and saves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_another_groups_members_is_built_with_the_group_picker() {
    let c = store();
    let (_server, _base, b) = signed_in(&c, &[], "ana").await;
    new_rule(&b, "abroad", "Not in Germany", ":group").await;
    wait_for(&b, "input[name='c0.0.group'][list='group-ids']").await;
    assert_eq!(b.count("datalist#group-ids option[value='de']").await, 1);

    b.fill("input[name='c0.0.group']", "nope").await;
    assert_eq!(
        b.click_and_wait("button[value='preview']").await,
        "New group"
    );
    wait_for(&b, "#c0-0-group-problem").await;
    let problem = b.text("#c0-0-group-problem").await;
    assert!(problem.contains("`nope`"), "{problem}");

    b.refill("input[name='c0.0.group']", "de").await;
    b.client
        .find(Locator::Css("#c0-0-negate"))
        .await
        .expect("is or is not")
        .select_by_value("true")
        .await
        .expect("picks");
    assert_eq!(
        b.click_and_wait("button[value='preview']").await,
        "New group"
    );
    // Of `de`'s customers, c2 was removed by hand and c3 is French.
    let added = b.text("section.preview li.would-add").await;
    assert_eq!(added, "Would add 2: c2, c3");

    assert_eq!(
        b.click_and_wait("button[value='save']").await,
        "Not in Germany"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&c.ok(&["group", "show", "abroad", "--json"])).expect("json");
    assert_eq!(
        saved["group"]["rule"]["all"][0]["any"][0],
        serde_json::json!({"group": "de", "negate": true}),
        "{saved}"
    );
    b.close().await;
}
