//! The typed client (`cohort-client`) against the real binary: it is generated from the
//! document the server serves, and a platform's day goes through it.

mod common;

use cohort_client::{
    AutoAssign, Change, Clause, Client, Condition, CustomerRecord, CustomersEraseParams,
    CustomersUpsertParams, Error, EventsFeedParams, Group, GroupsCreateParams,
    MembershipsListParams, Mode, PluginCondition, Rule, RunRequest, RunsStartAnswer,
    RunsStartParams, Triggers,
};
use common::Cohort;
use common::http::{Server, token};

#[test]
fn the_client_is_generated_from_the_document_the_server_serves() {
    let c = Cohort::new();
    let served: serde_json::Value = serde_json::from_str(&c.ok(&["openapi"])).expect("JSON");
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../client/openapi.json")).expect("JSON");
    assert!(
        served == committed,
        "crates/client/openapi.json is not the document the server serves: \
         run `cargo run -p cohort-cli -- openapi > crates/client/openapi.json`"
    );
}

fn customer(id: &str, country: &str) -> CustomerRecord {
    CustomerRecord {
        id: id.into(),
        country: Some(country.into()),
        ..CustomerRecord::default()
    }
}

on_both_backends!(a_platform_works_through_the_typed_client, |c: Cohort| {
    let operator = token(&c, "billing", "operator");
    let admin = token(&c, "dpo", "admin");
    c.ok(&["plugin", "add", "country"]);
    let server = Server::start(&c, &[]);
    let api = Client::new(&server.base, Some(&operator)).expect("client");
    let dpo = Client::new(&server.base, Some(&admin)).expect("client");

    let germans = Group {
        id: "de".into(),
        name: "German residents".into(),
        auto: Some(AutoAssign {
            mode: Some(Mode::FullSync),
            triggers: Some(Triggers {
                on_registration: Some(true),
                ..Triggers::default()
            }),
            ..AutoAssign::default()
        }),
        rule: Some(Rule {
            all: Some(vec![Clause {
                any: vec![Condition::PluginCondition(PluginCondition {
                    plugin: "country".into(),
                    config: Some(serde_json::json!({"countries": ["DE"]})),
                    negate: None,
                    version: None,
                })],
            }]),
        }),
        ..Group::default()
    };
    let created = api
        .groups_create(&GroupsCreateParams::default(), &germans)
        .expect("created");
    assert_eq!((created.status, created.body.id.as_str()), (201, "de"));
    assert!(created.etag.is_some());

    // Registered one by one: a German joins at once.
    let joined = api
        .customers_upsert(
            "C-1",
            &CustomersUpsertParams::default(),
            &customer("C-1", "DE"),
        )
        .expect("registered");
    assert_eq!(joined.status, 201);
    assert_eq!(joined.body.joined, ["de"]);
    api.customers_upsert(
        "C-2",
        &CustomersUpsertParams::default(),
        &customer("C-2", "FR"),
    )
    .expect("registered");

    // A run waited for, typed changes and all.
    let run = api
        .runs_start(
            "de",
            &RunsStartParams::default(),
            &RunRequest {
                dry_run: Some(true),
                wait: Some(true),
                ..RunRequest::default()
            },
        )
        .expect("dry run");
    let RunsStartAnswer::Status200(result) = run.body else {
        panic!("a dry run waited for answers 200: {:?}", run.body);
    };
    assert_eq!(result.run.customers, 2);
    assert!(
        result
            .changes
            .iter()
            .all(|c| matches!(c, Change::Add { .. }))
    );
    // Started at once, followed by its Location.
    let started = api
        .runs_start("de", &RunsStartParams::default(), &RunRequest::default())
        .expect("run");
    let RunsStartAnswer::Status202(record) = started.body else {
        panic!("a run answers at once: {:?}", started.body);
    };
    assert_eq!(started.location, Some(format!("/v1/runs/{}", record.id)));

    let members = api
        .memberships_list("de", &MembershipsListParams::default())
        .expect("members");
    assert_eq!(members.body.items.len(), 1);
    assert_eq!(members.body.items[0].customer, "C-1");

    // A stale write is refused, as an error with the server's problem.
    let stale = api.customers_upsert(
        "C-1",
        &CustomersUpsertParams {
            if_match: Some("\"stale\"".into()),
        },
        &customer("C-1", "AT"),
    );
    match stale {
        Err(Error::Api {
            status: 412,
            problem: Some(problem),
            ..
        }) => assert_eq!(problem.field.as_deref(), Some("If-Match")),
        other => panic!("412 expected: {other:?}"),
    }

    // Erased by an admin; the feed says so, of no group.
    let erased = dpo
        .customers_erase(
            "C-1",
            &CustomersEraseParams {
                reason: Some("request 3".into()),
            },
        )
        .expect("erased")
        .body;
    assert_eq!((erased.ended, erased.facts), (1, true));
    let feed = api
        .events_feed(&EventsFeedParams::default())
        .expect("feed")
        .body;
    let last = feed.items.last().expect("events");
    assert_eq!(
        (last.event.as_str(), last.group.as_deref()),
        ("customer.erased", None)
    );
    assert!(matches!(
        api.customers_show("C-1"),
        Err(Error::Api { status: 404, .. })
    ));
});
