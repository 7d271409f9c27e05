//! The behaviour contract, case by case: every file in `tests/cases/` at the
//! repository root is a scenario (customers, groups, a sequence of triggers and manual
//! actions, expected memberships and states) run through the real plugins and a real
//! store: SQLite, and again PostgreSQL.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use cohort_engine::{Engine, Trigger};
use cohort_model::{CustomerRecord, Group, State, Timestamp};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The sentence of the behaviour contract this case pins.
    sentence: String,
    #[serde(default)]
    customers: Vec<CustomerRecord>,
    #[serde(default)]
    groups: Vec<Group>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    /// When the step happens; the previous step's time if absent.
    at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    action: Action,
    /// The step must fail with an error containing this text.
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Run {
        group: String,
        #[serde(default)]
        dry_run: bool,
        /// Expected counts of the run: added, removed, undecided.
        expect: Option<[u64; 3]>,
    },
    RunDue {
        /// Groups expected to run.
        expect: Vec<String>,
    },
    Register {
        customer: CustomerRecord,
        /// Groups the customer is expected to join.
        joins: Vec<String>,
    },
    SaveGroup(Group),
    Add {
        customer: String,
        group: String,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    },
    Remove {
        customer: String,
        group: String,
    },
    Pin {
        customer: String,
        group: String,
    },
    /// `[group, kind, entity]`: the platform's entity refers to the group.
    Use([String; 3]),
    Delete {
        group: String,
        #[serde(default)]
        force: bool,
    },
    /// Active members of each named group at the step's time, exactly.
    Members(std::collections::BTreeMap<String, Vec<String>>),
    /// `[customer, group, state]`: the state of the customer's latest membership.
    State(Vec<[String; 3]>),
    /// `[customer, [actions, newest first]]`.
    History(String, Vec<String>),
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `engine`, with every plugin a case may name.
fn with_plugins(engine: Engine) -> Engine {
    let geoip = repo().join("../shared/testdata/geoip");
    for (id, wasm) in cohort_artifacts::STANDARD {
        let grant = (*id == "geoip-country").then_some(geoip.as_path());
        engine
            .add_plugin(wasm, grant, 0)
            .expect("standard plugin adds");
    }
    // The misbehaving test plugin, for the cases about failures.
    let hostile = std::fs::read(cohort_artifacts::HOSTILE_PATH).expect("hostile plugin built");
    engine
        .add_plugin(&hostile, None, 0)
        .expect("hostile plugin adds");
    engine
}

fn run_case(path: &Path, engine: Engine) {
    let name = path.display().to_string();
    let case: Case = serde_json::from_str(&std::fs::read_to_string(path).expect("read case"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let engine = with_plugins(engine);
    let mut now: Timestamp = 1_767_225_600; // 2026-01-01T00:00:00Z
    for c in &case.customers {
        engine.store().upsert_customer(c, now).expect("customer");
    }
    for g in &case.groups {
        engine
            .save_group(g, now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (i, step) in case.steps.iter().enumerate() {
        if let Some(at) = step.at {
            now = at.timestamp();
        }
        let here = format!("{name}: step {} ({})", i + 1, case.sentence);
        let result: Result<(), String> = match &step.action {
            Action::Run {
                group,
                dry_run,
                expect,
            } => engine
                .run_group(
                    group,
                    Trigger::Manual,
                    *dry_run,
                    "tester",
                    now,
                    now,
                    &mut |_, _| {},
                )
                .map(|report| {
                    if let Some([added, removed, undecided]) = expect {
                        let r = &report.run;
                        assert_eq!(
                            [r.added, r.removed, r.undecided],
                            [*added, *removed, *undecided],
                            "{here}: added, removed, undecided"
                        );
                    }
                })
                .map_err(|e| e.to_string()),
            Action::RunDue { expect } => engine
                .run_due(now)
                .and_then(|reports| reports.into_iter().collect::<Result<Vec<_>, _>>())
                .map(|reports| {
                    let ran: Vec<String> = reports.iter().map(|r| r.group.clone()).collect();
                    assert_eq!(&ran, expect, "{here}: groups that ran");
                })
                .map_err(|e| e.to_string()),
            Action::Register { customer, joins } => engine
                .upsert_customer(customer, now)
                .map(|r| assert_eq!(&r.joined, joins, "{here}: groups joined"))
                .map_err(|e| e.to_string()),
            Action::SaveGroup(g) => engine.save_group(g, now).map_err(|e| e.to_string()),
            Action::Add {
                customer,
                group,
                start,
                end,
            } => engine
                .add_member(
                    customer,
                    group,
                    "operator",
                    "by hand",
                    (
                        start.map_or(now, |s| s.timestamp()),
                        end.map(|e| e.timestamp()),
                    ),
                    now,
                )
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::Remove { customer, group } => engine
                .remove_member(customer, group, "operator", "by hand", now)
                .map(drop)
                .map_err(|e| e.to_string()),
            Action::Pin { customer, group } => engine
                .pin_exclusion(customer, group, true, "operator", "never", now)
                .map_err(|e| e.to_string()),
            Action::Use([group, kind, entity]) => engine
                .use_group(group, kind, entity, true)
                .map_err(|e| e.to_string()),
            Action::Delete { group, force } => engine
                .delete_group(group, *force)
                .map_err(|e| e.to_string()),
            Action::Members(expected) => {
                for (group, want) in expected {
                    let mut got: Vec<String> = engine
                        .store()
                        .group_memberships(group)
                        .expect("memberships")
                        .into_iter()
                        .filter(|m| m.is_active(now))
                        .map(|m| m.customer)
                        .collect();
                    got.sort();
                    got.dedup();
                    let mut want = want.clone();
                    want.sort();
                    assert_eq!(got, want, "{here}: active members of `{group}`");
                }
                Ok(())
            }
            Action::State(expected) => {
                for [customer, group, state] in expected {
                    let latest = engine
                        .store()
                        .customer_memberships(customer)
                        .expect("memberships")
                        .into_iter()
                        .filter(|m| m.group == *group)
                        .max_by_key(|m| m.id)
                        .unwrap_or_else(|| {
                            panic!("{here}: `{customer}` has no membership in `{group}`")
                        });
                    let got = match latest.state(now) {
                        State::Pending => "pending",
                        State::Active => "active",
                        State::Expired => "expired",
                    };
                    assert_eq!(got, state, "{here}: state of `{customer}` in `{group}`");
                }
                Ok(())
            }
            Action::History(customer, actions) => {
                let got: Vec<String> = engine
                    .store()
                    .history(Some(customer), None, None, 100)
                    .expect("history")
                    .into_iter()
                    .map(|e| format!("{} {}", e.action, e.group.as_deref().unwrap_or_default()))
                    .collect();
                assert_eq!(&got, actions, "{here}: history of `{customer}`");
                Ok(())
            }
        };
        match (&step.error, result) {
            (None, Ok(())) => {}
            (None, Err(e)) => panic!("{here}: unexpected error: {e}"),
            (Some(want), Err(e)) => assert!(
                e.contains(want.as_str()),
                "{here}: error `{e}` lacks `{want}`"
            ),
            (Some(want), Ok(())) => panic!("{here}: expected an error containing `{want}`"),
        }
    }
}

/// Every case file, in order.
fn cases() -> Vec<PathBuf> {
    let dir = repo().join("tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the cases are missing");
    files
}

#[test]
fn behaviour_contract_cases() {
    for file in cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        run_case(&file, common::engine(&dir.path().join("cohort.db")));
    }
}

/// The same cases on the shared store: the behaviour does not depend on the backend.
#[test]
fn behaviour_contract_cases_on_postgresql() {
    for file in cases() {
        let store = Arc::new(cohort_store_postgres::scratch::fresh());
        run_case(&file, common::engine_on(store));
    }
}
