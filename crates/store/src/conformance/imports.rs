//! Cases for imports: rows staged, checked against the customers and each other,
//! applied (or only counted), and the outcome and problems read back.

use cohort_model::{CustomerRecord, Source, Timestamp};

use crate::*;

fn row(line: u64, customer: &str, start: Timestamp, end: Option<Timestamp>) -> StagedRow {
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
