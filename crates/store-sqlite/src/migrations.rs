//! The schema, as frozen steps: `migrations/NN-*.sql` takes the schema from version
//! `NN - 1` to `NN` (SQLite's `user_version`). A released step never changes; a change
//! of schema is a new step. Each file says why its step was taken.

use rusqlite::Connection;

use crate::Result;

/// Each entry migrates the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/01-schema.sql"),
    include_str!("../migrations/02-group-uses.sql"),
    include_str!("../migrations/03-imports.sql"),
    include_str!("../migrations/04-http-api.sql"),
    include_str!("../migrations/05-customer-writes.sql"),
    include_str!("../migrations/06-events-point-at-entries.sql"),
    include_str!("../migrations/07-group-led-indexes.sql"),
    include_str!("../migrations/08-slimmer-events.sql"),
    include_str!("../migrations/09-no-audit-by-group.sql"),
    include_str!("../migrations/10-customers-by-write.sql"),
    include_str!("../migrations/11-run-errors.sql"),
    include_str!("../migrations/12-addition-stretches.sql"),
    include_str!("../migrations/13-slimmer-rows.sql"),
    include_str!("../migrations/14-run-owners.sql"),
    include_str!("../migrations/15-data-dir-as-given.sql"),
    include_str!("../migrations/16-webhook-leases.sql"),
    include_str!("../migrations/17-import-rows-by-group.sql"),
    include_str!("../migrations/18-token-expiry.sql"),
    include_str!("../migrations/19-webhook-management.sql"),
    include_str!("../migrations/20-plugin-signatures.sql"),
    include_str!("../migrations/21-plugin-budgets.sql"),
    include_str!("../migrations/22-staff.sql"),
    include_str!("../migrations/23-token-scope.sql"),
    include_str!("../migrations/24-plugin-listing.sql"),
];

/// Bring the schema of `tx` up to date.
pub(crate) fn migrate(tx: &Connection) -> Result<()> {
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use cohort_model::Source;
    use cohort_store::conformance::{CAUSE, add};
    use cohort_store::plan::CLOCK_ACTOR;
    use cohort_store::prelude::*;
    use cohort_store::{AuditEntry, Listing};
    use std::path::Path;

    /// Migration 13 stopped storing a rule's own actor and words, and is frozen: the
    /// words it names must stay those the planner gives and the readers restore.
    #[test]
    fn the_frozen_migration_names_the_rule_as_the_planner_does() {
        let step = MIGRATIONS[12];
        let prefix = cohort_planner::rule_words!(actor_prefix);
        assert!(step.contains(&format!("nullif(actor, '{prefix}' || grp)")));
        assert!(step.contains(&format!(
            "nullif(reason, '{}')",
            cohort_planner::RULE_MATCHES
        )));
    }

    /// A store at `path` as version `version` of the schema left it.
    fn store_at_version(path: &Path, version: usize) -> Connection {
        let conn = Connection::open(path).expect("open");
        for migration in &MIGRATIONS[..version] {
            conn.execute_batch(migration).expect("migrate");
        }
        conn.pragma_update(None, "user_version", version as i64)
            .expect("version");
        conn
    }

    /// A store left at any older version opens, migrates to the newest, keeps what it
    /// held, and takes new writes.
    #[test]
    fn a_store_at_every_older_version_migrates_and_keeps_its_data() {
        for version in 0..MIGRATIONS.len() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("store.db");
            {
                let conn = store_at_version(&path, version);
                if version >= 1 {
                    conn.execute_batch(
                        r#"INSERT INTO customers (id, record, registered_at, updated_at)
                               VALUES ('c1', '{"id":"c1","country":"DE"}', 1, 1);
                           INSERT INTO groups (id, definition, updated_at)
                               VALUES ('g', '{"id":"g","name":"G"}', 1);"#,
                    )
                    .expect("rows of the old version");
                }
            }
            let store = SqliteStore::open(&path)
                .unwrap_or_else(|e| panic!("a store at version {version} opens: {e}"));
            if version >= 1 {
                let c1 = store.customer("c1").expect("read").expect("kept");
                assert_eq!(c1.country.as_deref(), Some("DE"), "version {version}");
                assert_eq!(store.group("g").expect("read").expect("kept").name, "G");
            }
            store
                .apply(&[add("c2", "g")], &CAUSE, 10)
                .expect("a write after migrating");
            assert_eq!(
                store.events_after(0, 10).expect("events").len(),
                1,
                "version {version}"
            );
        }
    }

    #[test]
    fn events_written_before_version_8_read_the_same_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        {
            let conn = store_at_version(&path, 7);
            // A removal as version 7 wrote it (the event repeating its audit entry),
            // and an activation by the clock (no audit entry).
            conn.execute_batch(
                "INSERT INTO audit (id, at, customer, grp, action, source, actor, trigger,
                                    run, reason, membership)
                     VALUES (1, 30, 'c1', 'g', 'removed', NULL, 'ops', 'manual', NULL,
                             'by hand', 4);
                 INSERT INTO outbox (id, at, kind, customer, grp, membership, audit)
                     VALUES (1, 30, 'membership.removed', 'c1', 'g', 4, 1),
                            (2, 40, 'membership.activated', 'c2', 'g', 5, NULL);",
            )
            .expect("version 7 rows");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        store.apply(&[add("c3", "g")], &CAUSE, 50).expect("apply");
        let events = store.events_after(0, 10).expect("events");
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                let who = (
                    e.customer.as_str(),
                    e.group.as_deref().unwrap_or_default(),
                    e.membership.unwrap_or_default(),
                );
                (e.id, e.event.as_str(), e.at, who, e.actor.as_str())
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "membership.removed", 30, ("c1", "g", 4), "ops"),
                (2, "membership.activated", 40, ("c2", "g", 5), CLOCK_ACTOR),
                (3, "membership.added", 50, ("c3", "g", 1), "rule:g"),
            ]
        );
    }

    #[test]
    fn entries_read_the_same_across_version_12_and_new_additions_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        let entry = |e: &AuditEntry| {
            let source = e.source.map(|s| s.as_str());
            let who = (
                e.customer.clone(),
                e.group.clone().unwrap_or_default(),
                e.actor.clone(),
            );
            (
                e.id,
                e.action.clone(),
                source,
                who,
                e.trigger.to_string(),
                e.reason.clone(),
            )
        };
        let before = {
            let conn = store_at_version(&path, 11);
            // Entries as version 11 wrote them: two additions, one whose reason is not
            // its membership's, and a removal without a source.
            conn.execute_batch(
                "INSERT INTO memberships (id, customer, grp, source, actor, reason, start)
                     VALUES (1, 'c1', 'g', 'rule', 'rule:g', 'matches', 10),
                            (2, 'c2', 'g', 'import', 'ops', 'line 2', 10);
                 INSERT INTO audit (id, at, customer, grp, action, source, actor, trigger,
                                    run, reason, membership)
                     VALUES (1, 10, 'c1', 'g', 'added', 'rule', 'rule:g', 'manual', 7,
                             'matches', 1),
                            (2, 10, 'c2', 'g', 'added', 'import', 'ops', 'import', NULL,
                             'imported', 2),
                            (3, 20, 'c1', 'g', 'removed', NULL, 'ops', 'manual', NULL,
                             'by hand', 1);",
            )
            .expect("version 11 rows");
            // Version 11 read its entries as they were, newest first.
            conn.prepare(
                "SELECT id, action, source, customer, grp, actor, trigger, reason
                 FROM audit ORDER BY id DESC",
            )
            .expect("query")
            .query_map([], |r| {
                let source: Option<String> = r.get(2)?;
                let source = source.and_then(|s| Source::parse(&s)).map(|s| s.as_str());
                let who = (r.get(3)?, r.get(4)?, r.get(5)?);
                Ok((r.get(0)?, r.get(1)?, source, who, r.get(6)?, r.get(7)?))
            })
            .expect("rows")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows")
        };
        let store = SqliteStore::open(&path).expect("reopen");
        let history = |customer| -> Vec<_> {
            store
                .history(customer, None, None, 10)
                .expect("history")
                .iter()
                .map(entry)
                .collect()
        };
        assert_eq!(history(None), before);
        // An addition now leaves out what its membership says, and is read whole.
        store.apply(&[add("c1", "h")], &CAUSE, 30).expect("apply");
        let added = (
            4,
            "added".to_string(),
            Some("rule"),
            ("c1".to_string(), "h".to_string(), "rule:g".to_string()),
            "manual".to_string(),
            "the rule matches".to_string(),
        );
        let mut all = vec![added.clone()];
        all.extend(before.iter().cloned());
        assert_eq!(history(None), all);
        assert_eq!(
            history(Some("c1")),
            [added, before[0].clone(), before[2].clone()],
            "c1's, newest first"
        );
        let compact: Vec<i64> = store
            .conn()
            .prepare("SELECT id FROM audit WHERE count IS NOT NULL")
            .expect("query")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(compact, [4], "entries written before stay as they were");
    }

    #[test]
    fn memberships_read_the_same_across_version_13_which_leaves_out_a_rule_s_own_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.db");
        {
            let conn = store_at_version(&path, 12);
            // Memberships as version 12 wrote them: one by its group's rule, one by
            // hand, one whose actor is another group's rule; the first one's entry is a
            // row of additions, with its event.
            conn.execute_batch(
                "INSERT INTO memberships (id, customer, grp, source, actor, reason, start)
                     VALUES (1, 'c1', 'g', 'rule', 'rule:g', 'the rule matches', 10),
                            (2, 'c2', 'g', 'manual', 'ops', 'by hand', 10),
                            (3, 'c3', 'g', 'rule', 'rule:h', 'the rule matches', 10);
                 INSERT INTO audit (id, at, action, trigger, run, membership, count)
                     VALUES (1, 10, 'added', 'manual', 7, 1, 1);
                 INSERT INTO outbox (id, audit) VALUES (1, 1);",
            )
            .expect("version 12 rows");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let stored = || -> Vec<(i64, Option<String>, Option<String>)> {
            store
                .conn()
                .prepare("SELECT id, actor, reason FROM memberships ORDER BY id")
                .expect("query")
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            stored(),
            [
                (1, None, None),
                (2, some("ops"), some("by hand")),
                (3, some("rule:h"), None)
            ]
        );
        let told = || -> Vec<(String, String, String)> {
            store
                .group_memberships_page("g", Listing::All, 10, 0, 10)
                .expect("memberships")
                .into_iter()
                .map(|m| (m.customer, m.actor, m.reason))
                .collect()
        };
        let told_as = |c: &str, actor: &str, reason: &str| {
            (c.to_string(), actor.to_string(), reason.to_string())
        };
        assert_eq!(
            told(),
            [
                told_as("c1", "rule:g", "the rule matches"),
                told_as("c2", "ops", "by hand"),
                told_as("c3", "rule:h", "the rule matches"),
            ]
        );
        // A new addition by the group's rule is written without them, and read whole
        // by the history and the feed as well.
        store.apply(&[add("c4", "g")], &CAUSE, 20).expect("apply");
        assert_eq!(stored()[3], (4, None, None));
        assert_eq!(told()[3], told_as("c4", "rule:g", "the rule matches"));
        for customer in ["c1", "c4"] {
            let history = store.history(Some(customer), None, None, 10).expect("h");
            assert_eq!(
                (history[0].actor.as_str(), history[0].reason.as_str()),
                ("rule:g", "the rule matches"),
                "{customer}"
            );
        }
        let log = store.history(None, None, None, 10).expect("log");
        assert_eq!(
            log.iter()
                .map(|e| (e.customer.as_str(), e.actor.as_str(), e.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                ("c4", "rule:g", "the rule matches"),
                ("c1", "rule:g", "the rule matches")
            ]
        );
        let events = store.events_after(0, 10).expect("events");
        assert_eq!(
            events
                .iter()
                .map(|e| (e.id, e.actor.as_str(), e.reason.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "rule:g", "the rule matches"),
                (2, "rule:g", "the rule matches")
            ]
        );
    }
}
