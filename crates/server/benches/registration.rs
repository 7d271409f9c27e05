//! Load on the registration endpoint over real HTTP on loopback: p50, p99 and requests
//! per second, beside two baselines from the same run: `GET /healthz` (the cost of
//! HTTP and routing alone) and the engine's registration called in-process (the cost
//! without HTTP).
//!
//! `cargo bench -p cohort-server --bench registration [-- SECONDS CONCURRENCY]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort_engine::Engine;
use cohort_host::{Host, HostConfig};
use cohort_model::{CustomerRecord, Group, Interner};
use cohort_store::Role;
use cohort_store::prelude::*;
use cohort_store_sqlite::SqliteStore;
use serde_json::json;

/// Groups with the on-registration trigger, one per standard plugin that needs no data.
fn groups() -> Vec<Group> {
    let conditions = [
        ("country", json!({"countries": ["DE", "FR", "NL"]})),
        ("provider", json!({"providers": ["main"]})),
        ("auth-method", json!({"methods": ["google", "facebook"]})),
        ("verification-status", json!({"statuses": ["passed"]})),
        ("verification-method", json!({"methods": ["phone"]})),
        ("payer-status", json!({"kinds": ["legal_entity"]})),
        (
            "registration-param",
            json!({"name": "fromsite", "operator": "equals", "value": "true"}),
        ),
        ("product", json!({"products": ["tower-host"]})),
    ];
    conditions
        .iter()
        .map(|(plugin, config)| {
            serde_json::from_value(json!({
                "id": format!("by-{plugin}"),
                "name": format!("by {plugin}"),
                "auto": {"mode": "full-sync", "triggers": {"on_registration": true}},
                "rule": {"all": [{"any": [{"plugin": plugin, "config": config}]}]}
            }))
            .expect("a valid group")
        })
        .collect()
}

fn customer(i: u64) -> serde_json::Value {
    let countries = ["DE", "FR", "US", "GB", "NL", "PL"];
    json!({
        "id": format!("bench-{i}"),
        "country": countries[(i % 6) as usize],
        "provider": if i.is_multiple_of(3) { "main" } else { "reseller" },
        "auth_methods": [if i.is_multiple_of(2) { "google" } else { "login-password" }],
        "verification_status": "passed",
        "verification_methods": ["email"],
        "payers": [{"kind": if i.is_multiple_of(4) { "legal_entity" } else { "individual" }}],
        "registration_params": {"fromsite": "true"},
    })
}

/// Makes the `n`th request of a load.
type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

struct Latencies(Vec<Duration>);

impl Latencies {
    fn quantile(&mut self, q: f64) -> f64 {
        self.0.sort();
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[i].as_secs_f64() * 1e3
    }
}

/// `concurrency` clients sending requests made by `make` for `seconds`.
async fn load(concurrency: usize, seconds: f64, make: MakeRequest) -> (Latencies, f64) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for worker in 0..concurrency as u64 {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut times = Vec::new();
            let mut n = worker;
            while Instant::now() < deadline {
                let t = Instant::now();
                let response = make(&client, n).send().await.expect("request");
                assert!(response.status().is_success(), "{}", response.status());
                response.bytes().await.expect("body");
                times.push(t.elapsed());
                n += concurrency as u64;
            }
            times
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64();
    (Latencies(all), rps)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let seconds: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let concurrency: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4);

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("store"));
    let host = Host::new(HostConfig::default(), Arc::new(Interner::new())).expect("host");
    let engine = Arc::new(Engine::new(store.clone(), host));
    for (_, wasm) in cohort_artifacts::STANDARD {
        engine.add_plugin(wasm, None, 0).expect("plugin");
    }
    for g in groups() {
        engine.save_group(&g, 0).expect("group");
    }
    let token = cohort_server::auth::new_token().expect("token");
    store
        .create_token(
            "bench",
            Role::Operator,
            None,
            &cohort_server::auth::digest(&token),
            0,
            None,
        )
        .expect("token");

    // In-process baseline: the engine's registration without HTTP.
    let mut inproc = Vec::new();
    for i in 0..2000u64 {
        let record: CustomerRecord =
            serde_json::from_value(customer(10_000_000 + i)).expect("record");
        let t = Instant::now();
        let r = engine.upsert_customer(&record, 1).expect("registration");
        inproc.push(t.elapsed());
        assert!(r.new);
    }
    let mut inproc = Latencies(inproc);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let config = cohort_server::Config::default();
        let (router, _, _) = cohort_server::app(engine, store, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });

        let health_url = format!("{base}/healthz");
        let (mut health, health_rps) = load(
            concurrency,
            seconds / 2.0,
            Arc::new(move |c, _| c.get(&health_url)),
        )
        .await;
        let url = format!("{base}/v1/registrations");
        let (mut reg, reg_rps) = load(
            concurrency,
            seconds,
            Arc::new(move |c, i| c.post(&url).bearer_auth(&token).json(&customer(i))),
        )
        .await;
        println!(
            "registration against {} on-registration groups, {concurrency} concurrent clients, {seconds} s, {} cores",
            groups().len(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| path | requests | p50 ms | p99 ms | req/s |");
        println!("| --- | --- | --- | --- | --- |");
        println!(
            "| POST /v1/registrations | {} | {:.3} | {:.3} | {:.0} |",
            reg.0.len(),
            reg.quantile(0.5),
            reg.quantile(0.99),
            reg_rps
        );
        println!(
            "| GET /healthz (HTTP floor) | {} | {:.3} | {:.3} | {:.0} |",
            health.0.len(),
            health.quantile(0.5),
            health.quantile(0.99),
            health_rps
        );
        println!(
            "| engine.upsert_customer, in-process, sequential | {} | {:.3} | {:.3} | - |",
            inproc.0.len(),
            inproc.quantile(0.5),
            inproc.quantile(0.99)
        );
    });
}
