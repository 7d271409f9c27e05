//! Cases for imports: rows staged, checked against the customers and each other,
//! applied (or only counted), and the outcome and problems read back.

use cohort_model::{CustomerRecord, Source, Timestamp};

use crate::*;

fn row(line: u64, customer: &str, start: Timestamp, end: Option<Timestamp>) -> StagedRow<'static> {
    StagedRow {
        line,
        customer: customer.into(),
        group: "g".into(),
        start,
        end,
    }
}

fn begin(store: &dyn Store, dry_run: bool) -> ImportRecord {
    let record = ImportRecord {
        actor: "alice".into(),
        file_name: "members.csv".into(),
        sha256: "ab".repeat(32),
        started_at: 100,
        dry_run,
        partial: true,
        ..ImportRecord::default()
    };
    let id = store.begin_import(&record).expect("begin");
    ImportRecord { id, ..record }
}

const IMPORT: Cause<'static> = Cause {
    trigger: Trigger::Import,
    actor: "alice",
    run: None,
};

pub(super) fn an_import_checks_its_rows_and_applies_the_valid_ones(store: &dyn Store) {
    let customers: Vec<CustomerRecord> = ["c1", "c2", "c3"]
        .iter()
        .map(|id| serde_json::from_value(serde_json::json!({"id": id})).expect("customer"))
        .collect();
    store.upsert_customers(&customers, 1).expect("customers");

    let first = begin(store, false);
    store
        .stage_import(
            first.id,
            &[
                row(2, "c1", 10, Some(50)),
                row(3, "c2", 10, None),
                row(4, "nobody", 10, None),
            ],
        )
        .expect("stage");
    store
        .stage_import(
            first.id,
            &[row(5, "c3", 10, Some(20)), row(6, "c3", 15, None)],
        )
        .expect("stage a second batch");
    store
        .add_import_problems(
            first.id,
            &[ImportProblem {
                line: 7,
                column: Some("start".into()),
                message: "not a date".into(),
            }],
        )
        .expect("problems the reader found");
    assert_eq!(
        store.check_import(first.id, "Kunde").expect("check"),
        2,
        "an unknown customer and an overlap"
    );
    let (problems, lines) = store.import_problems(first.id, 10).expect("problems");
    assert_eq!(lines, 3);
    let told: Vec<(u64, Option<&str>)> = problems
        .iter()
        .map(|p| (p.line, p.column.as_deref()))
        .collect();
    assert_eq!(
        told,
        [(4, Some("Kunde")), (6, None), (7, Some("start"))],
        "by line"
    );
    assert!(problems[0].message.contains("nobody"), "{problems:?}");
    assert!(problems[1].message.contains("line 5"), "{problems:?}");

    let counted = store
        .apply_import(first.id, &IMPORT, true, 100)
        .expect("count only");
    assert_eq!(counted, (3, 0, 0));
    assert!(
        store.group_memberships("g").expect("none").is_empty(),
        "counting writes nothing"
    );
    let applied = store
        .apply_import(first.id, &IMPORT, false, 100)
        .expect("apply");
    assert_eq!(applied, (3, 0, 0), "lines 2, 3 and 5");
    let members: Vec<(String, Source, Option<Timestamp>)> = store
        .group_memberships("g")
        .expect("members")
        .into_iter()
        .map(|m| (m.customer, m.source, m.end))
        .collect();
    assert_eq!(
        members,
        [
            ("c1".to_string(), Source::Import, Some(50)),
            ("c2".into(), Source::Import, None),
            ("c3".into(), Source::Import, Some(20))
        ]
    );
    // Each membership, its history and its event say which import and line it came from.
    let from = format!("import #{}, line 2", first.id);
    assert_eq!(
        store.group_memberships("g").expect("members")[0].reason,
        from
    );
    let history = store.history(Some("c1"), None, None, 10).expect("history");
    assert_eq!(
        (history[0].action.as_str(), history[0].reason.as_str()),
        ("added", from.as_str())
    );
    assert_eq!(history[0].trigger, Trigger::Import);
    assert_eq!(store.events_after(0, 1).expect("events")[0].reason, from);
    let done = ImportRecord {
        status: "partially applied".into(),
        finished_at: Some(101),
        rows: 6,
        added: 3,
        rejected: 3,
        ..first.clone()
    };
    store.finish_import(&done).expect("finish");

    // The same file again, with one window changed: an update and two unchanged.
    let second = begin(store, false);
    store
        .stage_import(
            second.id,
            &[
                row(2, "c1", 10, Some(60)),
                row(3, "c2", 10, None),
                row(4, "c3", 10, Some(20)),
            ],
        )
        .expect("stage");
    assert_eq!(store.check_import(second.id, "Kunde").expect("check"), 0);
    assert_eq!(
        store
            .apply_import(second.id, &IMPORT, false, 102)
            .expect("apply"),
        (0, 1, 2)
    );
    let c1 = store.customer_memberships("c1").expect("c1");
    assert_eq!((c1.len(), c1[0].end), (1, Some(60)), "updated in place");
    let kinds: Vec<String> = store
        .events_after(0, 10)
        .expect("events")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        kinds,
        [
            "membership.added",
            "membership.added",
            "membership.added",
            "membership.updated"
        ]
    );
    store
        .finish_import(&ImportRecord {
            status: "applied".into(),
            finished_at: Some(103),
            ..second.clone()
        })
        .expect("finish");

    let imports = store.imports(None, 10).expect("imports");
    assert_eq!(
        imports.iter().map(|i| i.id).collect::<Vec<_>>(),
        [second.id, first.id],
        "newest first"
    );
    let kept = &imports[1];
    assert_eq!(
        (
            kept.status.as_str(),
            kept.rows,
            kept.added,
            kept.rejected,
            kept.finished_at,
            kept.file_name.as_str(),
            kept.partial
        ),
        ("partially applied", 6, 3, 3, Some(101), "members.csv", true)
    );
    assert_eq!(
        store.imports(Some(second.id), 10).expect("page").len(),
        1,
        "before a cursor"
    );
}

/// Rows clash whatever the order of their lines and starts; a line with a problem in
/// one group is kept out of every group; the rest is applied group by group, then
/// customer by customer, whatever the file's order.
pub(super) fn clashes_are_found_in_any_order_and_rows_apply_group_by_group(store: &dyn Store) {
    let customers: Vec<CustomerRecord> = ["c1", "c2", "C0"]
        .iter()
        .map(|id| serde_json::from_value(serde_json::json!({"id": id})).expect("customer"))
        .collect();
    store.upsert_customers(&customers, 1).expect("customers");
    let import = begin(store, false);
    let at = |line: u64, customer: &str, group: &'static str, start, end| StagedRow {
        group: group.into(),
        ..row(line, customer, start, end)
    };
    store
        .stage_import(
            import.id,
            &[
                at(2, "c2", "h", 10, None),
                // Line 3 starts after line 4 and overlaps it: the problem is line 4's.
                at(3, "c1", "g", 30, Some(50)),
                at(4, "c1", "g", 10, Some(40)),
                // Line 5 repeats line 3 and overlaps line 4: two problems of line 5.
                at(5, "c1", "g", 30, Some(50)),
                at(6, "c2", "g", 60, None),
                at(6, "c2", "h", 5, Some(8)),
                // Line 7 is good in `h` and overlaps line 6 in `g`: it is applied in
                // neither.
                at(7, "c2", "g", 70, Some(80)),
                at(7, "c1", "h", 1, None),
                at(8, "C0", "h", 1, None),
                at(9, "c2", "g", 1, Some(2)),
            ],
        )
        .expect("stage");
    assert_eq!(store.check_import(import.id, "customer").expect("check"), 4);
    let (problems, lines) = store.import_problems(import.id, 10).expect("problems");
    assert_eq!(lines, 3, "{problems:?}");
    let told: Vec<(u64, &str)> = problems
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(told.len(), 4, "{told:?}");
    assert!(
        told[0] == (4, "overlaps line 3: both put `c1` in `g` at the same time"),
        "{told:?}"
    );
    let five: Vec<&str> = told[1..3].iter().map(|(_, m)| *m).collect();
    assert!(
        told[1].0 == 5
            && told[2].0 == 5
            && five.contains(&"duplicates line 3 (`c1` in `g`)")
            && five.contains(&"overlaps line 4: both put `c1` in `g` at the same time"),
        "{told:?}"
    );
    assert_eq!(
        told[3],
        (7, "overlaps line 6: both put `c2` in `g` at the same time")
    );
    assert_eq!(
        store
            .apply_import(import.id, &IMPORT, false, 100)
            .expect("apply"),
        (6, 0, 0),
        "lines 2, 3, 6 (both groups), 8 and 9"
    );
    let applied: Vec<(String, String)> = store
        .events_after(0, 10)
        .expect("events")
        .into_iter()
        .map(|e| (e.group.expect("a membership's"), e.customer))
        .collect();
    let pair = |g: &str, c: &str| (g.to_string(), c.to_string());
    assert_eq!(
        applied,
        [
            pair("g", "c1"),
            pair("g", "c2"),
            pair("g", "c2"),
            pair("h", "C0"),
            pair("h", "c2"),
            pair("h", "c2"),
        ],
        "group by group, customers byte by byte, then by start"
    );
}

/// Checking and applying together: a file that must apply whole writes nothing when a
/// problem comes late in its rows (after rows that were good), and records every
/// problem; the same rows without the problem apply; `partial` applies the good lines.
pub(super) fn a_whole_import_with_a_late_problem_writes_nothing(store: &dyn Store) {
    let customers: Vec<CustomerRecord> = (0..50)
        .map(|i| {
            serde_json::from_value(serde_json::json!({"id": format!("c{i:02}")})).expect("customer")
        })
        .collect();
    store.upsert_customers(&customers, 1).expect("customers");
    let rows = |clash: bool| -> Vec<StagedRow<'static>> {
        let mut rows: Vec<StagedRow<'static>> = (0..50)
            .map(|i| StagedRow {
                group: "a".into(),
                ..row(2 + i, &format!("c{i:02}"), 10, None)
            })
            .collect();
        // Last in the order rows apply: group `b`, the last customer.
        rows.push(StagedRow {
            group: "b".into(),
            ..row(60, "c49", 10, Some(30))
        });
        if clash {
            rows.push(StagedRow {
                group: "b".into(),
                ..row(61, "c49", 20, None)
            });
            rows.push(row(62, "nobody", 10, None));
        }
        rows
    };
    let whole = ApplyOptions::default();
    let import = begin(store, false);
    store.stage_import(import.id, &rows(true)).expect("stage");
    let checked = store
        .check_and_apply(import.id, "customer", &IMPORT, whole, 100)
        .expect("check and apply");
    assert_eq!(
        checked,
        Checked {
            problem_lines: 2,
            applied: None
        }
    );
    let (problems, _) = store.import_problems(import.id, 10).expect("problems");
    let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [61, 62], "{problems:?}");
    assert!(
        store.group_memberships("a").expect("a").is_empty()
            && store.group_memberships("b").expect("b").is_empty()
            && store.events_after(0, 10).expect("events").is_empty(),
        "nothing is written"
    );
    let partial = begin(store, false);
    store.stage_import(partial.id, &rows(true)).expect("stage");
    let checked = store
        .check_and_apply(
            partial.id,
            "customer",
            &IMPORT,
            ApplyOptions {
                partial: true,
                dry_run: false,
            },
            100,
        )
        .expect("check and apply");
    assert_eq!(
        checked,
        Checked {
            problem_lines: 2,
            applied: Some((51, 0, 0))
        }
    );
    let again = begin(store, false);
    store.stage_import(again.id, &rows(false)).expect("stage");
    assert_eq!(
        store
            .check_and_apply(again.id, "customer", &IMPORT, whole, 101)
            .expect("check and apply"),
        Checked {
            problem_lines: 0,
            applied: Some((0, 0, 51))
        },
        "the partial import applied them already"
    );
}

/// Finishing an import drops its own staged rows only: another import staged
/// meanwhile still applies whole.
pub(super) fn finishing_one_import_keeps_another_imports_rows(store: &dyn Store) {
    let customers: Vec<CustomerRecord> = ["c1", "c2"]
        .iter()
        .map(|id| serde_json::from_value(serde_json::json!({"id": id})).expect("customer"))
        .collect();
    store.upsert_customers(&customers, 1).expect("customers");
    let later = begin(store, false);
    store
        .stage_import(later.id, &[row(2, "c2", 10, None)])
        .expect("stage the later one's row");
    let first = begin(store, false);
    store
        .stage_import(first.id, &[row(2, "c1", 10, None)])
        .expect("stage");
    for import in [&first, &later] {
        let checked = store
            .check_and_apply(import.id, "customer", &IMPORT, ApplyOptions::default(), 100)
            .expect("apply");
        assert_eq!(checked.applied, Some((1, 0, 0)));
        store
            .finish_import(&ImportRecord {
                status: "applied".into(),
                finished_at: Some(101),
                ..import.clone()
            })
            .expect("finish");
    }
    let members: Vec<String> = store
        .group_memberships("g")
        .expect("members")
        .into_iter()
        .map(|m| m.customer)
        .collect();
    assert_eq!(members, ["c1", "c2"]);
}

pub(super) fn import_problems_page_by_line_then_as_found(store: &dyn Store) {
    let import = begin(store, true);
    let problem = |line: u64, message: &str| ImportProblem {
        line,
        column: None,
        message: message.into(),
    };
    store
        .add_import_problems(
            import.id,
            &[problem(3, "a"), problem(2, "b"), problem(3, "c")],
        )
        .expect("problems");
    store
        .add_import_problems(import.id, &[problem(2, "d")])
        .expect("more problems");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .import_problems_page(import.id, after, 3)
            .expect("page");
        let Some((cursor, _)) = page.last() else {
            break;
        };
        after = Some(*cursor);
        seen.extend(page.into_iter().map(|(_, p)| (p.line, p.message)));
    }
    assert_eq!(
        seen,
        [
            (2, "b".to_string()),
            (2, "d".into()),
            (3, "a".into()),
            (3, "c".into())
        ]
    );
    let (first, lines) = store.import_problems(import.id, 1).expect("first");
    assert_eq!(
        (first.len(), lines),
        (1, 2),
        "a limit, and every line counted"
    );
}

/// A whole file of new assignments (the usual import) adds each row as a membership
/// with its import and line, in key order, each with its entry and event, stored as
/// ended, waiting or active by its window; what was there before keeps its numbers.
pub(super) fn a_whole_import_of_new_rows_adds_each_in_key_order(store: &dyn Store) {
    let customers: Vec<CustomerRecord> = ["a", "b", "c"]
        .iter()
        .map(|id| serde_json::from_value(serde_json::json!({"id": id})).expect("customer"))
        .collect();
    store.upsert_customers(&customers, 1).expect("customers");
    let whole = ApplyOptions::default();
    let earlier = begin(store, false);
    store
        .stage_import(
            earlier.id,
            &[StagedRow {
                group: "x".into(),
                ..row(2, "a", 10, None)
            }],
        )
        .expect("stage");
    store
        .check_and_apply(earlier.id, "customer", &IMPORT, whole, 50)
        .expect("apply");
    let before = store.events_after(0, 10).expect("events");
    assert_eq!(before.len(), 1);

    let import = begin(store, false);
    let staged = |line, customer, group: &str, start, end| StagedRow {
        group: group.to_string().into(),
        ..row(line, customer, start, end)
    };
    store
        .stage_import(
            import.id,
            &[
                staged(2, "c", "h", 10, None),
                staged(3, "a", "g", 150, None),
                staged(4, "b", "g", 50, Some(90)),
                staged(5, "a", "h", 10, Some(120)),
                staged(6, "a", "g", 10, Some(40)),
            ],
        )
        .expect("stage");
    assert_eq!(
        store
            .check_and_apply(import.id, "customer", &IMPORT, whole, 100)
            .expect("check and apply"),
        Checked {
            problem_lines: 0,
            applied: Some((5, 0, 0))
        }
    );
    let from = |line: u64| format!("import #{}, line {line}", import.id);
    let events = store.events_after(before[0].id, 10).expect("events");
    let told: Vec<(&str, &str, &str, String)> = events
        .iter()
        .map(|e| {
            (
                e.event.as_str(),
                e.group.as_deref().expect("a membership's"),
                e.customer.as_str(),
                e.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            ("membership.added", "g", "a", from(6)),
            ("membership.added", "g", "a", from(3)),
            ("membership.added", "g", "b", from(4)),
            ("membership.added", "h", "a", from(5)),
            ("membership.added", "h", "c", from(2)),
        ],
        "group by group, customer by customer, then by start"
    );
    assert!(
        events
            .iter()
            .all(|e| e.trigger == Trigger::Import && e.actor == "alice"),
        "{events:?}"
    );
    let ids: Vec<i64> = events.iter().map(|e| e.membership.expect("one")).collect();
    let first = before[0].membership.expect("one") + 1;
    assert_eq!(ids, (first..first + 5).collect::<Vec<_>>(), "numbered on");
    let stored: Vec<(String, Source, String, String, Timestamp, Option<Timestamp>)> = store
        .group_memberships("g")
        .expect("members")
        .into_iter()
        .map(|m| (m.customer, m.source, m.actor, m.reason, m.start, m.end))
        .collect();
    let alice = || "alice".to_string();
    assert_eq!(
        stored,
        [
            ("a".into(), Source::Import, alice(), from(6), 10, Some(40)),
            ("a".into(), Source::Import, alice(), from(3), 150, None),
            ("b".into(), Source::Import, alice(), from(4), 50, Some(90)),
        ]
    );
    let history = store
        .history(Some("a"), Some("h"), None, 10)
        .expect("history");
    assert_eq!(
        history
            .iter()
            .map(|h| (h.action.as_str(), h.reason.as_str(), h.trigger, h.at))
            .collect::<Vec<_>>(),
        [("added", from(5).as_str(), Trigger::Import, 100)]
    );
    // Stored as ended, waiting or active at the import's time: later, only the window
    // that opened and the one that closed since are announced.
    assert_eq!(store.announce(160).expect("announce"), 2);
    let announced: Vec<(String, String, String)> = store
        .events_after(events[4].id, 10)
        .expect("events")
        .into_iter()
        .map(|e| (e.event, e.group.expect("a membership's"), e.customer))
        .collect();
    let told = |event: &str, group: &str, customer: &str| {
        (event.to_string(), group.to_string(), customer.to_string())
    };
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert!(
        announced.contains(&told("membership.activated", "g", "a"))
            && announced.contains(&told("membership.expired", "h", "a")),
        "{announced:?}"
    );
}
