//! How long the console's main pages take to render over real HTTP on loopback, on a
//! store of many customers (1,000,000 unless told), beside `GET /healthz` measured in
//! the same run (what HTTP alone costs): the groups list, a group's members (the
//! first page and one deep in), every membership of a group, a customer's page and why
//! a customer is in a group. The first request of each page is shown apart: the
//! groups' sizes are counted then and kept a minute while memberships do not change.
//!
//! `cargo bench -p cohort-server --bench console [-- CUSTOMERS ROUNDS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort_engine::{Engine, Trigger};
use cohort_host::{Host, HostConfig};
use cohort_model::{CustomerRecord, Group, Interner, PayerKind, PayerRecord};
use cohort_store::prelude::*;
use cohort_store::{Role, StaffMember, StaffSession};
use cohort_store_sqlite::SqliteStore;
use serde_json::json;

fn group(id: &str, mode: &str, rule: serde_json::Value) -> Group {
    serde_json::from_value(json!({"id": id, "name": format!("The {id} group"),
        "auto": {"mode": mode, "triggers": {"schedule": {"cron": "0 0 3 * * *", "time_zone": "Europe/Berlin"}}},
        "rule": rule}))
    .expect("a valid group")
}

fn rule(plugin: &str, config: serde_json::Value) -> serde_json::Value {
    json!({"all": [{"any": [{"plugin": plugin, "config": config}]}]})
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let customers: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(15);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("store"));
    let host = Host::new(HostConfig::default(), Arc::new(Interner::new())).expect("host");
    let engine = Arc::new(Engine::new(store.clone(), host));
    for (_, wasm) in cohort_artifacts::STANDARD {
        engine.add_plugin(wasm, None, 0).expect("plugin");
    }
    let groups = [
        group(
            "europe",
            "full-sync",
            rule("country", json!({"countries": ["DE", "FR", "NL"]})),
        ),
        group(
            "google",
            "full-sync",
            rule("auth-method", json!({"methods": ["google"]})),
        ),
        group(
            "companies",
            "add-only",
            rule("payer-status", json!({"kinds": ["legal_entity"]})),
        ),
        group("vip", "disabled", json!({"all": []})),
    ];
    for g in &groups {
        engine.save_group(g, 0).expect("group");
    }

    let started = Instant::now();
    let countries = ["DE", "FR", "US", "GB", "NL", "PL"];
    let mut batch = Vec::with_capacity(50_000);
    for i in 0..customers {
        batch.push(CustomerRecord {
            id: format!("cust-{i:07}"),
            country: Some(countries[(i % 6) as usize].into()),
            auth_methods: vec![if i % 2 == 0 { "google" } else { "password" }.into()],
            payers: vec![PayerRecord {
                kind: if i % 4 == 0 {
                    PayerKind::LegalEntity
                } else {
                    PayerKind::Individual
                },
                active: true,
            }],
            ..CustomerRecord::default()
        });
        if batch.len() == batch.capacity() || i + 1 == customers {
            store.upsert_customers(&batch, 0).expect("customers");
            batch.clear();
        }
    }
    let now = chrono::Utc::now().timestamp();
    let ids: Vec<String> = groups
        .iter()
        .filter(|g| g.id != "vip")
        .map(|g| g.id.clone())
        .collect();
    for r in engine.run_groups(&ids, Trigger::Manual, "bench", now, now) {
        r.expect("a run");
    }
    // Memberships by hand, some ended: the members page shows why each ended.
    for i in 0..400u64 {
        let c = format!("cust-{:07}", i * 7);
        engine
            .add_member(&c, "vip", "bench", "by hand", (now, None), now)
            .expect("added");
        if i % 4 == 0 {
            engine
                .remove_member(&c, "vip", "bench", "moved away", now)
                .expect("removed");
        }
    }
    eprintln!(
        "store of {customers} customers made in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // A member of staff signed in: the session is made as sign-in makes it.
    let token = cohort_server::auth::new_token().expect("token");
    store
        .create_staff(
            &StaffMember {
                name: "bench".into(),
                role: Role::Operator,
                groups: None,
                created_at: now,
                password_changed_at: now,
            },
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        )
        .expect("staff");
    store
        .open_session(
            &cohort_server::auth::digest(&token),
            &StaffSession {
                staff: "bench".into(),
                csrf: "csrf".into(),
                created_at: now,
                expires_at: now + 3600,
            },
        )
        .expect("session");
    let cookie = format!("cohort_session={token}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (router, _, _) = cohort_server::app(engine, store, cohort_server::Config::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();
        let middle = customers / 2;
        let pages = [
            ("GET /healthz (HTTP floor)", "/healthz".to_string()),
            ("groups list", "/".to_string()),
            ("members, first page", "/groups/europe".to_string()),
            (
                "members, deep page",
                format!("/groups/europe?after={middle}"),
            ),
            (
                "every membership, with endings",
                "/groups/vip?all=true".to_string(),
            ),
            ("customer", format!("/customers/cust-{middle:07}")),
            (
                "why",
                format!("/customers/cust-{middle:07}/why?group=europe"),
            ),
        ];
        println!(
            "console pages at {customers} customers, {rounds} rounds each, sequential, {} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| page | bytes | first ms | median ms | p90 ms | × HTTP floor |");
        println!("| --- | --- | --- | --- | --- | --- |");
        let mut floor = 0.0;
        for (name, path) in pages {
            let mut times: Vec<Duration> = Vec::with_capacity(rounds);
            let mut bytes = 0;
            for _ in 0..rounds {
                let t = Instant::now();
                let response = client
                    .get(format!("{base}{path}"))
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .expect("request");
                assert!(
                    response.status().is_success(),
                    "{path}: {}",
                    response.status()
                );
                bytes = response.bytes().await.expect("body").len();
                times.push(t.elapsed());
            }
            let first = times[0].as_secs_f64() * 1e3;
            times.sort();
            let ms =
                |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
            if floor == 0.0 {
                floor = ms(0.5);
            }
            println!(
                "| {name} | {bytes} | {first:.1} | {:.1} | {:.1} | {:.0} |",
                ms(0.5),
                ms(0.9),
                ms(0.5) / floor
            );
        }
    });
}
