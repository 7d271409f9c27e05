//! The whole store as rows (`cohort_store::copy::Kept`), for moving it to another
//! backend: every table, with the rows the journal folds (see migrations 12 and 13)
//! unfolded, as the readers tell them.

use cohort_model::{Membership, Source};
use cohort_store::copy::{Kept, Sink};
use cohort_store::prelude::*;
use cohort_store::{AuditEntry, ImportProblem, Role, TokenRecord, Trigger, plugin_budget};
use rusqlite::Connection;

use crate::{Result, SqliteStore, corrupt, named, sql};

/// Rows handed over at once.
const BATCH: usize = 10_000;

/// Hand the rows of `query` over in batches, each row made by `row`.
fn each_row(
    conn: &Connection,
    query: &str,
    row: impl Fn(&rusqlite::Row<'_>) -> Result<Kept>,
    each: &mut Sink<'_>,
) -> Result<()> {
    let mut stmt = conn.prepare(query)?;
    let mut rows = stmt.query([])?;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(r) = rows.next()? {
        batch.push(row(r)?);
        if batch.len() == BATCH {
            each(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        each(batch)?;
    }
    Ok(())
}

fn source(id: i64, text: &str) -> Result<Source> {
    Source::parse(text)
        .ok_or_else(|| corrupt("membership", &id.to_string(), format!("source `{text}`")))
}

impl SqliteStore {
    /// Hand every row the store keeps to `each`, in batches, table by table in an order
    /// a restore can follow. For a store nothing writes to meanwhile (the copy's
    /// command says so): the tables are read one after another.
    pub fn dump(&self, each: &mut Sink<'_>) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.reader();
            let tx = conn.transaction()?;
            each_row(
                &tx,
                "SELECT p.id, version, sha256, data_dir, data_dir_as_given, added_at, wasm,
                        signer, signer_key, b.budget
                 FROM plugins p LEFT JOIN plugin_budgets b ON b.id = p.id
                 ORDER BY p.id, version",
                |r| {
                    let id: String = r.get(0)?;
                    let budget = plugin_budget(&id, r.get::<_, Option<String>>(9)?.as_deref())?;
                    Ok(Kept::Plugin {
                        plugin: cohort_store::StoredPlugin {
                            id,
                            version: r.get(1)?,
                            sha256: r.get(2)?,
                            data_dir: r.get(3)?,
                            data_dir_as_given: r.get(4)?,
                            added_at: r.get(5)?,
                            signer: r.get(7)?,
                            signer_key: r.get(8)?,
                            budget,
                        },
                        wasm: r.get(6)?,
                    })
                },
                each,
            )?;
            each_row(
                &tx,
                "SELECT id, record, registered_at, updated_at FROM customers ORDER BY seq, id",
                |r| {
                    Ok(Kept::Customer {
                        id: r.get(0)?,
                        record: r.get(1)?,
                        registered_at: r.get(2)?,
                        updated_at: r.get(3)?,
                    })
                },
                each,
            )?;
            each_row(
                &tx,
                "SELECT id, definition, updated_at, last_periodic_run FROM groups ORDER BY id",
                |r| {
                    Ok(Kept::Group {
                        id: r.get(0)?,
                        definition: r.get(1)?,
                        updated_at: r.get(2)?,
                        last_periodic_run: r.get(3)?,
                    })
                },
                each,
            )?;
            each_row(
                &tx,
                "SELECT grp, kind, entity FROM group_uses ORDER BY grp, kind, entity",
                |r| {
                    Ok(Kept::Use {
                        group: r.get(0)?,
                        kind: r.get(1)?,
                        entity: r.get(2)?,
                    })
                },
                each,
            )?;
            each_row(
                &tx,
                concat!(
                    "SELECT id, customer, grp, source, coalesce(actor, ",
                    rule_actor!("grp"),
                    "), coalesce(reason, ",
                    rule_matches!(),
                    "), start, end, announced FROM memberships ORDER BY id"
                ),
                |r| {
                    let id: i64 = r.get(0)?;
                    Ok(Kept::Membership {
                        membership: Membership {
                            id,
                            customer: r.get(1)?,
                            group: r.get(2)?,
                            source: source(id, &r.get::<_, String>(3)?)?,
                            actor: r.get(4)?,
                            reason: r.get(5)?,
                            start: r.get(6)?,
                            end: r.get(7)?,
                        },
                        announced: r.get(8)?,
                    })
                },
                each,
            )?;
            each_row(
                &tx,
                "SELECT customer, grp, actor, reason, at FROM exclusions ORDER BY customer, grp",
                |r| {
                    Ok(Kept::Exclusion {
                        customer: r.get(0)?,
                        group: r.get(1)?,
                        actor: r.get(2)?,
                        reason: r.get(3)?,
                        at: r.get(4)?,
                    })
                },
                each,
            )?;
            // A row of additions (with a count) stands for the entries of the
            // memberships up to its own, entry `id - k` being that of membership
            // `membership - k`.
            each_row(
                &tx,
                concat!(
                    "SELECT a.id - (a.membership - m.id), a.at, m.customer, m.grp, a.action,
                            m.source, coalesce(m.actor, ",
                    rule_actor!("m.grp"),
                    "), a.trigger, a.run, coalesce(m.reason, ",
                    rule_matches!(),
                    "), m.id
                     FROM audit a JOIN memberships m
                       ON m.id > a.membership - a.count AND m.id <= a.membership
                     WHERE a.count IS NOT NULL
                     UNION ALL
                     SELECT id, at, customer, grp, action, source, actor, trigger, run, reason,
                            membership
                     FROM audit WHERE count IS NULL
                     ORDER BY 1"
                ),
                |r| {
                    let id: i64 = r.get(0)?;
                    let source: Option<String> = r.get(5)?;
                    Ok(Kept::Entry {
                        entry: AuditEntry {
                            id,
                            at: r.get(1)?,
                            customer: r.get(2)?,
                            group: r.get(3)?,
                            action: r.get(4)?,
                            source: source.and_then(|s| Source::parse(&s)),
                            actor: r.get(6)?,
                            trigger: named(r, 7, Trigger::parse)?,
                            run: r.get(8)?,
                            reason: r.get(9)?,
                        },
                        membership: r.get(10)?,
                    })
                },
                each,
            )?;
            each_row(
                &tx,
                "SELECT id, name, role, created_at, revoked_at, hash, expires_at, group_scope
                 FROM tokens ORDER BY id",
                |r| {
                    let name: String = r.get(1)?;
                    let role: String = r.get(2)?;
                    let groups = r
                        .get::<_, Option<String>>(7)?
                        .map(|json| serde_json::from_str(&json))
                        .transpose()
                        .map_err(|e| corrupt("token", &name, format!("groups: {e}")))?;
                    Ok(Kept::Token {
                        token: TokenRecord {
                            id: r.get(0)?,
                            role: Role::parse(&role)
                                .ok_or_else(|| corrupt("token", &name, "role"))?,
                            name,
                            created_at: r.get(3)?,
                            revoked_at: r.get(4)?,
                            expires_at: r.get(6)?,
                            groups,
                        },
                        hash: r.get(5)?,
                    })
                },
                each,
            )?;
            drop(tx);
            drop(conn);
            // What the readers tell whole already: the feed, runs, imports, webhooks.
            let mut after = 0;
            loop {
                let events = self.events_after(after, BATCH)?;
                let Some(last) = events.last() else { break };
                after = last.id;
                each(events.into_iter().map(Kept::Event).collect())?;
            }
            let mut before = None;
            loop {
                let runs = self.runs(None, before, BATCH)?;
                let Some(last) = runs.last() else { break };
                before = Some(last.id);
                each(runs.into_iter().map(Kept::Run).collect())?;
            }
            let mut before = None;
            let mut imports = Vec::new();
            loop {
                let page = self.imports(before, BATCH)?;
                let Some(last) = page.last() else { break };
                before = Some(last.id);
                imports.extend(page.iter().map(|i| i.id));
                each(page.into_iter().map(Kept::Import).collect())?;
            }
            for import in imports {
                let mut after = None;
                loop {
                    let page = self.import_problems_page(import, after, BATCH)?;
                    let Some((cursor, _)) = page.last() else {
                        break;
                    };
                    after = Some(*cursor);
                    each(
                        page.into_iter()
                            .map(|(_, problem): (_, ImportProblem)| Kept::Problem {
                                import,
                                problem,
                            })
                            .collect(),
                    )?;
                }
            }
            each(self.webhooks()?.into_iter().map(Kept::Webhook).collect())?;
            each(
                self.trusted_keys()?
                    .into_iter()
                    .map(Kept::TrustedKey)
                    .collect(),
            )?;
            each(vec![Kept::SignaturesRequired(self.signatures_required()?)])?;
            let mut staff = Vec::new();
            for member in self.staff()? {
                if let Some(login) = self.staff_login(&member.name)? {
                    staff.push(Kept::Staff(login));
                }
            }
            each(staff)?;
            Ok(())
        })
    }
}
