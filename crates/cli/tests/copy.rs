//! `cohort store copy`: a whole embedded store, made through the real binary, moved to
//! PostgreSQL and read back through both backends, every read the same.

mod common;

use cohort_model::State;
use cohort_store::prelude::*;
use cohort_store::{Listing, Role};
use cohort_store_postgres::PgStore;
use cohort_store_sqlite::SqliteStore;
use common::Cohort;
use common::http::{customer, group};

/// Everything a store tells, as text to compare.
fn told(store: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    let mut say = |what: &str, value: String| out.push(format!("{what}: {value}"));
    for p in store.plugins().expect("plugins") {
        let wasm = store.plugin_wasm(&p.id, &p.version).expect("wasm");
        say(
            "plugin",
            format!("{p:?} {} bytes", wasm.map_or(0, |w| w.len())),
        );
    }
    say(
        "customers",
        format!(
            "{:?}",
            store.customers_after(None, 1_000).expect("customers")
        ),
    );
    for g in store.groups().expect("groups") {
        say("group", format!("{g:?}"));
        say("uses", format!("{:?}", store.uses(&g.id).expect("uses")));
        say(
            "last periodic run",
            format!("{:?}", store.last_periodic_run(&g.id).expect("last")),
        );
        say(
            "memberships",
            format!("{:?}", store.group_memberships(&g.id).expect("memberships")),
        );
        say(
            "endings",
            format!("{:?}", store.endings(&g.id).expect("endings")),
        );
        let mut pins = store.exclusions(&g.id).expect("pins");
        pins.sort();
        say("pins", format!("{pins:?}"));
        for state in [State::Pending, State::Active, State::Expired] {
            let page = store
                .group_memberships_page(&g.id, Listing::Only(state), 1_795_000_000, 0, 1_000)
                .expect("page");
            say("page", format!("{state:?} {}", page.len()));
        }
    }
    say(
        "history",
        format!(
            "{:?}",
            store.history(None, None, None, 10_000).expect("history")
        ),
    );
    say(
        "c1's history",
        format!(
            "{:?}",
            store.history(Some("c1"), None, None, 100).expect("history")
        ),
    );
    say(
        "events",
        format!("{:?}", store.events_after(0, 10_000).expect("events")),
    );
    say(
        "runs",
        format!("{:?}", store.runs(None, None, 1_000).expect("runs")),
    );
    for i in store.imports(None, 100).expect("imports") {
        say("import", format!("{i:?}"));
        say(
            "problems",
            format!("{:?}", store.import_problems(i.id, 100).expect("problems")),
        );
    }
    say("tokens", format!("{:?}", store.tokens().expect("tokens")));
    for member in store.staff().expect("staff") {
        say(
            "staff",
            format!("{:?}", store.staff_login(&member.name).expect("login")),
        );
    }
    say(
        "webhooks",
        format!("{:?}", store.webhooks().expect("webhooks")),
    );
    say(
        "trust",
        format!(
            "{:?} required: {}",
            store.trusted_keys().expect("keys"),
            store.signatures_required().expect("setting")
        ),
    );
    out
}

#[test]
fn an_embedded_store_moves_to_postgresql_whole() {
    let c = Cohort::new();
    c.ok(&["plugin", "add", "country"]);
    // The operator's budget for it moves too (`told` shows it with the plugin).
    c.ok(&["plugin", "budget", "country", "--memory-mib", "96"]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "de.json",
            &group("de", "full-sync", true, &["DE"]).to_string(),
        ),
    ]);
    c.ok(&[
        "group",
        "save",
        &c.file(
            "vip.json",
            &group("vip", "disabled", false, &["DE"]).to_string(),
        ),
    ]);
    c.ok(&["group", "use", "de", "tariff", "fiber-100"]);
    let lines: Vec<String> = (1..=30)
        .map(|i| customer(&format!("c{i}"), if i % 3 == 0 { "FR" } else { "DE" }).to_string())
        .collect();
    c.ok(&["customer", "load", &c.file("c.jsonl", &lines.join("\n"))]);
    c.ok(&["run", "de"]);
    c.ok(&["member", "remove", "c1", "de"]);
    c.ok(&["member", "pin", "c2", "de"]);
    c.ok(&[
        "member",
        "add",
        "c3",
        "vip",
        "--start",
        "2026-01-01T00:00:00Z",
        "--end",
        "2027-01-01T00:00:00Z",
    ]);
    let csv = "Customer #,Assigned Groups,Start Date & Time,End Date & Time\n\
               c4,vip,2026-03-01,2026-06-01\n\
               nobody,vip,2026-03-01,\n";
    c.ok(&["import", "file", "--partial", &c.file("i.csv", csv)]);
    c.ok(&["token", "create", "billing", "--role", "operator"]);
    c.ok(&["token", "create", "old", "--role", "read-only"]);
    c.ok(&["token", "revoke", "old"]);
    let (hook, token_hash) = {
        let source = SqliteStore::open(&c.db).expect("the embedded store");
        let hook = source
            .add_webhook("https://platform.example/hooks", "a-secret", None, 5)
            .expect("webhook");
        source
            .webhook_delivered(hook.id, 0, 3, 6)
            .expect("delivered");
        source
            .trust_key(&cohort_store::TrustedKey {
                name: "acme".into(),
                public_key: format!("ed25519:{}", "ab".repeat(32)),
                added_at: 7,
            })
            .expect("trust");
        source.require_signatures(true).expect("require");
        source
            .create_staff(
                &cohort_store::StaffMember {
                    name: "ana".into(),
                    role: Role::Operator,
                    groups: Some(vec!["vip".into()]),
                    created_at: 8,
                    password_changed_at: 9,
                },
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            )
            .expect("staff");
        source.record_failed_sign_in("ana", 10).expect("failure");
        let hash = "digest-of-a-token";
        source
            .create_token(
                "api",
                Role::Admin,
                Some(&["vip".into()]),
                hash,
                7,
                Some(1_900_000_000),
            )
            .expect("token");
        (hook, hash)
    };

    let url = cohort_store_postgres::scratch::fresh_url();
    let out = c.ok(&[
        "store",
        "copy",
        "--from",
        &c.db.to_string_lossy(),
        "--to",
        &url,
    ]);
    assert!(
        out.contains("memberships") && out.contains("audit entries"),
        "{out}"
    );

    let source = SqliteStore::open(&c.db).expect("the embedded store");
    let target = PgStore::connect(&url).expect("the copy");
    let (before, after) = (told(&source), told(&target));
    assert!(before.len() > 20, "{before:#?}");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
    assert_eq!(before.len(), after.len());
    assert!(
        target.token_by_hash(token_hash).expect("token").is_some(),
        "tokens are found by their digest after the copy"
    );
    assert_eq!(target.webhooks().expect("webhooks")[0].secret, hook.secret);

    // The copy goes on where the source stopped: new ids and positions follow.
    let events = target.events_after(0, 10_000).expect("events");
    let last = events.last().expect("events").id;
    let on_copy = std::process::Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args([
            "--db", &url, "--actor", "alice", "member", "add", "c5", "vip",
        ])
        .output()
        .expect("cohort runs");
    assert!(on_copy.status.success(), "{on_copy:?}");
    let next = target.events_after(last, 10).expect("events");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, last + 1);
    let memberships = target.group_memberships("vip").expect("vip");
    let max = source
        .group_memberships("de")
        .expect("de")
        .iter()
        .chain(&source.group_memberships("vip").expect("vip"))
        .map(|m| m.id)
        .max()
        .expect("memberships");
    assert!(memberships.iter().any(|m| m.customer == "c5" && m.id > max));

    // A second copy into a store that is no longer empty is refused, and changes
    // nothing.
    let refused = c.fails(&[
        "store",
        "copy",
        "--from",
        &c.db.to_string_lossy(),
        "--to",
        &url,
    ]);
    assert!(refused.contains("empty store"), "{refused}");
    assert!(!refused.contains("s3cret"));
}
