//! Taking in a whole store another backend handed over (`cohort_store::copy::Kept`),
//! ids, positions and digests kept: how a platform that outgrows the embedded store
//! moves up without losing history.

use cohort_store::StoreError;
use cohort_store::copy::{Kept, Sink};
use postgres::Transaction;

use crate::{PgStore, Result, big, sql};

/// The tables a store must have empty to take a copy.
const TABLES: [&str; 12] = [
    "staff",
    "plugins",
    "plugin_budgets",
    "customers",
    "groups",
    "memberships",
    "audit",
    "outbox",
    "runs",
    "imports",
    "tokens",
    "webhooks",
];

impl PgStore {
    /// Take a whole store in one transaction: `fill` hands its rows to the sink it is
    /// given, batch by batch (a dump, say). The store must be empty; if anything fails,
    /// it stays empty. Returns how many rows of each kind it took.
    pub fn restore(
        &self,
        fill: &mut dyn FnMut(&mut Sink<'_>) -> cohort_store::Result<()>,
    ) -> cohort_store::Result<Vec<(&'static str, u64)>> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction().map_err(crate::Error::from)?;
        sql(|| {
            for table in TABLES {
                let held: bool = tx
                    .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])?
                    .get(0);
                if held {
                    return Err(StoreError::Open {
                        path: self.describe(),
                        problem: format!(
                            "a copy goes into an empty store, and this one has {table}"
                        ),
                    }
                    .into());
                }
            }
            Ok(())
        })?;
        let mut counts: Vec<(&'static str, u64)> = Vec::new();
        let mut sink = |rows: Vec<Kept>| -> cohort_store::Result<()> {
            for row in &rows {
                match counts.iter_mut().find(|(k, _)| *k == row.kind()) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((row.kind(), 1)),
                }
            }
            sql(|| take(&mut tx, rows))
        };
        fill(&mut sink)?;
        sql(|| {
            renumber(&mut tx)?;
            Ok(())
        })?;
        tx.commit().map_err(crate::Error::from)?;
        Ok(counts)
    }
}

/// Insert one batch of rows, each into its table.
fn take(tx: &mut Transaction<'_>, rows: Vec<Kept>) -> Result<()> {
    let mut customers: (Vec<String>, Vec<String>, Vec<i64>, Vec<i64>) = Default::default();
    let mut memberships = Vec::new();
    let mut entries = Vec::new();
    let mut events = Vec::new();
    for row in rows {
        match row {
            Kept::Plugin { plugin: p, wasm } => {
                tx.execute(
                    "INSERT INTO plugins (id, version, sha256, wasm, data_dir, data_dir_as_given,
                                          added_at, signer, signer_key)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &p.id,
                        &p.version,
                        &p.sha256,
                        &wasm,
                        &p.data_dir,
                        &p.data_dir_as_given,
                        &p.added_at,
                        &p.signer,
                        &p.signer_key,
                    ],
                )?;
                // Each version carries its id's budget: the first one writes it.
                if !p.budget.is_empty() {
                    tx.execute(
                        "INSERT INTO plugin_budgets (id, budget) VALUES ($1, $2)
                         ON CONFLICT (id) DO NOTHING",
                        &[&p.id, &serde_json::to_string(&p.budget).unwrap_or_default()],
                    )?;
                }
            }
            Kept::Customer {
                id,
                record,
                registered_at,
                updated_at,
            } => {
                customers.0.push(id);
                customers.1.push(record);
                customers.2.push(registered_at);
                customers.3.push(updated_at);
            }
            Kept::Group {
                id,
                definition,
                updated_at,
                last_periodic_run,
            } => {
                tx.execute(
                    "INSERT INTO groups (id, definition, updated_at, last_periodic_run)
                     VALUES ($1, $2, $3, $4)",
                    &[&id, &definition, &updated_at, &last_periodic_run],
                )?;
            }
            Kept::Use {
                group,
                kind,
                entity,
            } => {
                tx.execute(
                    "INSERT INTO group_uses (grp, kind, entity) VALUES ($1, $2, $3)",
                    &[&group, &kind, &entity],
                )?;
            }
            Kept::Membership {
                membership,
                announced,
            } => memberships.push((membership, announced)),
            Kept::Exclusion {
                customer,
                group,
                actor,
                reason,
                at,
            } => {
                tx.execute(
                    "INSERT INTO exclusions (customer, grp, actor, reason, at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&customer, &group, &actor, &reason, &at],
                )?;
            }
            Kept::Entry { entry, membership } => entries.push((entry, membership)),
            Kept::Event(event) => events.push(event),
            Kept::Run(r) => {
                let failures = serde_json::to_string(&r.failures)
                    .map_err(|e| crate::corrupt("run", &r.id.to_string(), e))?;
                tx.execute(
                    "INSERT INTO runs (id, grp, trigger, dry_run, actor, as_of, started_at,
                                       finished_at, status, customers, matched, added, removed,
                                       undecided, failures, error)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                             $16)",
                    &[
                        &r.id,
                        &r.group,
                        &r.trigger.as_str(),
                        &r.dry_run,
                        &r.actor,
                        &r.as_of,
                        &r.started_at,
                        &r.finished_at,
                        &r.status.as_str(),
                        &big(r.customers),
                        &big(r.matched),
                        &big(r.added),
                        &big(r.removed),
                        &big(r.undecided),
                        &failures,
                        &r.error,
                    ],
                )?;
            }
            Kept::Import(r) => {
                tx.execute(
                    "INSERT INTO imports (id, actor, file_name, sha256, started_at, finished_at,
                                          status, dry_run, partial, rows, added, updated,
                                          unchanged, rejected)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    &[
                        &r.id,
                        &r.actor,
                        &r.file_name,
                        &r.sha256,
                        &r.started_at,
                        &r.finished_at,
                        &r.status,
                        &r.dry_run,
                        &r.partial,
                        &big(r.rows),
                        &big(r.added),
                        &big(r.updated),
                        &big(r.unchanged),
                        &big(r.rejected),
                    ],
                )?;
            }
            Kept::Problem { import, problem } => {
                tx.execute(
                    "INSERT INTO import_errors (import, line, col, message)
                     VALUES ($1, $2, $3, $4)",
                    &[
                        &import,
                        &big(problem.line),
                        &problem.column,
                        &problem.message,
                    ],
                )?;
            }
            Kept::Token { token, hash } => {
                tx.execute(
                    "INSERT INTO tokens (id, name, role, hash, created_at, revoked_at, expires_at,
                                         group_scope)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &token.id,
                        &token.name,
                        &token.role.as_str(),
                        &hash,
                        &token.created_at,
                        &token.revoked_at,
                        &token.expires_at,
                        &token
                            .groups
                            .as_ref()
                            .map(|g| serde_json::Value::from(g.as_slice()).to_string()),
                    ],
                )?;
            }
            Kept::TrustedKey(k) => {
                tx.execute(
                    "INSERT INTO trusted_keys (name, public_key, added_at) VALUES ($1, $2, $3)",
                    &[&k.name, &k.public_key, &k.added_at],
                )?;
            }
            Kept::Staff(login) => {
                let m = &login.member;
                let scope = m
                    .groups
                    .as_ref()
                    .map(|g| serde_json::to_string(g).unwrap_or_default());
                let failed = i32::try_from(login.failed_sign_ins).unwrap_or(i32::MAX);
                tx.execute(
                    "INSERT INTO staff (name, role, group_scope, password_hash, created_at,
                                        password_changed_at, failed_sign_ins, locked_until)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &m.name,
                        &m.role.as_str(),
                        &scope,
                        &login.password_hash,
                        &m.created_at,
                        &m.password_changed_at,
                        &failed,
                        &login.locked_until,
                    ],
                )?;
            }
            Kept::SignaturesRequired(required) => {
                tx.execute(
                    "INSERT INTO settings (name, value) VALUES ('signatures_required', $1)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    &[&required.to_string()],
                )?;
            }
            Kept::Webhook(w) => {
                tx.execute(
                    "INSERT INTO webhooks (id, url, secret, created_at, position, attempts,
                                           last_error, last_delivered_at, events, paused,
                                           previous_secret, previous_secret_until)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    &[
                        &w.id,
                        &w.url,
                        &w.secret,
                        &w.created_at,
                        &w.position,
                        &i32::try_from(w.attempts).unwrap_or(i32::MAX),
                        &w.last_error,
                        &w.last_delivered_at,
                        &w.events,
                        &w.paused,
                        &w.previous_secret,
                        &w.previous_secret_until,
                    ],
                )?;
            }
        }
    }
    if !customers.0.is_empty() {
        tx.execute(
            "INSERT INTO customers (id, record, registered_at, updated_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])",
            &[&customers.0, &customers.1, &customers.2, &customers.3],
        )?;
    }
    if !memberships.is_empty() {
        let m = &memberships;
        tx.execute(
            "INSERT INTO memberships
                (id, customer, grp, source, actor, reason, starts, ends, announced)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::bigint[], $8::bigint[], $9::text[])",
            &[
                &m.iter().map(|(m, _)| m.id).collect::<Vec<_>>(),
                &m.iter()
                    .map(|(m, _)| m.customer.as_str())
                    .collect::<Vec<_>>(),
                &m.iter().map(|(m, _)| m.group.as_str()).collect::<Vec<_>>(),
                &m.iter().map(|(m, _)| m.source.as_str()).collect::<Vec<_>>(),
                &m.iter().map(|(m, _)| m.actor.as_str()).collect::<Vec<_>>(),
                &m.iter().map(|(m, _)| m.reason.as_str()).collect::<Vec<_>>(),
                &m.iter().map(|(m, _)| m.start).collect::<Vec<_>>(),
                &m.iter().map(|(m, _)| m.end).collect::<Vec<_>>(),
                &m.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>(),
            ],
        )?;
    }
    if !entries.is_empty() {
        let e = &entries;
        tx.execute(
            "INSERT INTO audit
                (id, at, customer, grp, action, source, actor, trigger, run, reason, membership)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[],
                                  $11::bigint[])",
            &[
                &e.iter().map(|(e, _)| e.id).collect::<Vec<_>>(),
                &e.iter().map(|(e, _)| e.at).collect::<Vec<_>>(),
                &e.iter()
                    .map(|(e, _)| e.customer.as_str())
                    .collect::<Vec<_>>(),
                &e.iter()
                    .map(|(e, _)| e.group.as_deref())
                    .collect::<Vec<_>>(),
                &e.iter().map(|(e, _)| e.action.as_str()).collect::<Vec<_>>(),
                &e.iter()
                    .map(|(e, _)| e.source.map(|s| s.as_str()))
                    .collect::<Vec<_>>(),
                &e.iter().map(|(e, _)| e.actor.as_str()).collect::<Vec<_>>(),
                &e.iter()
                    .map(|(e, _)| e.trigger.as_str())
                    .collect::<Vec<_>>(),
                &e.iter().map(|(e, _)| e.run).collect::<Vec<_>>(),
                &e.iter().map(|(e, _)| e.reason.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
            ],
        )?;
    }
    if !events.is_empty() {
        let e = &events;
        tx.execute(
            "INSERT INTO outbox (id, at, kind, customer, grp, membership, trigger, actor, reason)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                                  $6::bigint[], $7::text[], $8::text[], $9::text[])",
            &[
                &e.iter().map(|e| e.id).collect::<Vec<_>>(),
                &e.iter().map(|e| e.at).collect::<Vec<_>>(),
                &e.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|e| e.customer.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|e| e.group.as_deref()).collect::<Vec<_>>(),
                &e.iter().map(|e| e.membership).collect::<Vec<_>>(),
                &e.iter().map(|e| e.trigger.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
            ],
        )?;
    }
    Ok(())
}

/// Move every sequence and counter past the ids the copy brought, so that what is
/// written next follows them: the next membership, entry, run, import, token, webhook,
/// and the feed's next position.
fn renumber(tx: &mut Transaction<'_>) -> Result<()> {
    tx.batch_execute(
        "SELECT setval('membership_ids', coalesce((SELECT max(id) FROM memberships), 0) + 1,
                       false);
         SELECT setval('audit_ids', coalesce((SELECT max(id) FROM audit), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('runs', 'id'),
                       coalesce((SELECT max(id) FROM runs), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('imports', 'id'),
                       coalesce((SELECT max(id) FROM imports), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('tokens', 'id'),
                       coalesce((SELECT max(id) FROM tokens), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('webhooks', 'id'),
                       coalesce((SELECT max(id) FROM webhooks), 0) + 1, false);
         UPDATE feed_head SET position = coalesce((SELECT max(id) FROM outbox), 0);
         UPDATE stamps SET n = n + 1 WHERE name = 'groups';
         INSERT INTO stamps (name, n)
             SELECT 'memberships:' || grp, count(*) FROM memberships GROUP BY grp
             ON CONFLICT (name) DO UPDATE SET n = stamps.n + excluded.n;",
    )?;
    Ok(())
}
