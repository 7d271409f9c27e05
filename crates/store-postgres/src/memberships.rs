//! Memberships and pins, and the writing of a batch of changes (through the journal).

use cohort_model::{Held, Membership, Source, State, Timestamp};
use cohort_planner::Change;
use cohort_store::{Applied, Cause, Ending, Listing, Memberships, PlanRead, Trigger};
use postgres::Row;
use postgres::fallible_iterator::FallibleIterator;

use crate::journal::apply_all;
use crate::{PgStore, Result, count, named, sql};

pub(crate) const MEMBERSHIP_COLUMNS: &str =
    "id, customer, grp, source, actor, reason, starts, ends";

fn source(id: i64, text: &str) -> Result<Source> {
    named(text, Source::parse, "membership", &id.to_string())
}

pub(crate) fn membership(r: &Row) -> Result<Membership> {
    let id: i64 = r.get(0);
    Ok(Membership {
        id,
        customer: r.get(1),
        group: r.get(2),
        source: source(id, r.get(3))?,
        actor: r.get(4),
        reason: r.get(5),
        start: r.get(6),
        end: r.get(7),
    })
}

/// An ending from a row of (membership, at, actor, trigger, reason).
fn ending(r: &Row) -> Result<Ending> {
    let membership: i64 = r.get(0);
    Ok(Ending {
        membership,
        at: r.get(1),
        actor: r.get(2),
        trigger: named(
            r.get(3),
            Trigger::parse,
            "audit entry",
            &membership.to_string(),
        )?,
        reason: r.get(4),
    })
}

impl PgStore {
    /// How the memberships that `filter` picks (of `key`) were ended, in membership order.
    fn endings_where(
        &self,
        filter: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Ending>> {
        let rows = self.pool.get()?.query(
            &format!(
                "SELECT m.id, a.at, a.actor, a.trigger, a.reason FROM memberships m
                 JOIN audit a ON a.membership = m.id AND a.action = 'removed'
                 WHERE {filter} ORDER BY m.id, a.id"
            ),
            params,
        )?;
        rows.iter().map(ending).collect()
    }

    fn memberships(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Membership>> {
        self.pool
            .get()?
            .query(sql, params)?
            .iter()
            .map(membership)
            .collect()
    }
}

impl Memberships for PgStore {
    fn group_memberships(&self, group: &str) -> cohort_store::Result<Vec<Membership>> {
        sql(|| {
            self.memberships(
                &format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE grp = $1
                     ORDER BY customer, id"
                ),
                &[&group],
            )
        })
    }

    fn group_holdings(
        &self,
        group: &str,
        each: &mut dyn FnMut(&str, Held),
    ) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            // In the order of `memberships_by_group`, streamed: a group may have millions.
            let mut rows = conn.query_raw(
                "SELECT customer, id, source, starts, ends FROM memberships
                 WHERE grp = $1 ORDER BY grp, customer, starts",
                &[&group],
            )?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(1);
                each(
                    r.get(0),
                    Held {
                        id,
                        source: source(id, r.get(2))?,
                        start: r.get(3),
                        end: r.get(4),
                    },
                );
            }
            Ok(())
        })
    }

    fn membership_stamp(&self, group: &str) -> cohort_store::Result<i64> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_opt(
                    "SELECT n FROM stamps WHERE name = 'memberships:' || $1",
                    &[&group],
                )?
                .map_or(0, |r| r.get(0)))
        })
    }

    fn customer_memberships(&self, customer: &str) -> cohort_store::Result<Vec<Membership>> {
        sql(|| {
            self.memberships(
                &format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE customer = $1
                     ORDER BY grp, id"
                ),
                &[&customer],
            )
        })
    }

    fn customer_memberships_in(
        &self,
        customer: &str,
        groups: &[&str],
    ) -> cohort_store::Result<Vec<Membership>> {
        sql(|| {
            // A registration asks this for every group it plans.
            let mut conn = self.pool.get()?;
            let statement = conn.prepared(
                "SELECT id, customer, grp, source, actor, reason, starts, ends FROM memberships
                 WHERE customer = $1 AND grp = ANY($2) ORDER BY grp, id",
            )?;
            conn.query(&statement, &[&customer, &groups])?
                .iter()
                .map(membership)
                .collect()
        })
    }

    fn endings_in(&self, group: &str, first: i64, last: i64) -> cohort_store::Result<Vec<Ending>> {
        sql(|| {
            self.endings_where(
                "m.grp = $1 AND m.id BETWEEN $2 AND $3",
                &[&group, &first, &last],
            )
        })
    }

    fn customer_endings(&self, customer: &str) -> cohort_store::Result<Vec<Ending>> {
        sql(|| self.endings_where("m.customer = $1", &[&customer]))
    }

    fn exclusions(&self, group: &str) -> cohort_store::Result<Vec<String>> {
        sql(|| {
            let rows = self
                .pool
                .get()?
                .query("SELECT customer FROM exclusions WHERE grp = $1", &[&group])?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn excluded_from(&self, customer: &str) -> cohort_store::Result<Vec<String>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                "SELECT grp FROM exclusions WHERE customer = $1",
                &[&customer],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn count_active(&self, group: &str, at: Timestamp) -> cohort_store::Result<u64> {
        sql(|| {
            // The same rule as `cohort_model::state`: an empty window is never active.
            let n: i64 = self
                .pool
                .get()?
                .query_one(
                    "SELECT count(*) FROM memberships WHERE grp = $1 AND starts <= $2
                       AND (ends IS NULL OR (ends > $2 AND ends > starts))",
                    &[&group, &at],
                )?
                .get(0);
            Ok(count(n))
        })
    }

    fn set_exclusion(
        &self,
        customer: &str,
        group: &str,
        pinned: bool,
        actor: &str,
        reason: &str,
        at: Timestamp,
    ) -> cohort_store::Result<()> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.transaction()?;
            let changed = if pinned {
                tx.execute(
                    "INSERT INTO exclusions (customer, grp, actor, reason, at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[&customer, &group, &actor, &reason, &at],
                )?
            } else {
                tx.execute(
                    "DELETE FROM exclusions WHERE customer = $1 AND grp = $2",
                    &[&customer, &group],
                )?
            };
            if changed > 0 {
                // A pin is in the history, not in the feed (it changes no membership).
                let action = if pinned { "excluded" } else { "unexcluded" };
                tx.execute(
                    "INSERT INTO audit (id, at, customer, grp, action, source, actor, trigger,
                                        run, reason)
                     VALUES (nextval('audit_ids'), $1, $2, $3, $4, 'manual', $5, 'manual',
                             NULL, $6)",
                    &[&at, &customer, &group, &action, &actor, &reason],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn apply_guarded(
        &self,
        changes: &[Change],
        cause: &Cause<'_>,
        at: Timestamp,
        read: &PlanRead<'_>,
    ) -> cohort_store::Result<Option<Applied>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // Writers for one customer take turns on the customer's row, held to
            // commit; each then reads what the one before it committed.
            tx.execute(
                "SELECT 1 FROM customers WHERE id = $1 FOR UPDATE",
                &[&read.customer],
            )?;
            let now = tx
                .query(
                    &format!(
                        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships
                         WHERE customer = $1 AND grp = ANY($2)"
                    ),
                    &[&read.customer, &read.groups],
                )?
                .iter()
                .map(membership)
                .collect::<Result<Vec<_>>>()?;
            if !read.still(&now) {
                return Ok(None);
            }
            let mut applied = apply_all(&mut tx, &[(changes, cause.clone())], at)?;
            tx.commit()?;
            Ok(Some(applied.remove(0)))
        })
    }

    fn apply_batches(
        &self,
        batches: &[(&[Change], Cause<'_>)],
        at: Timestamp,
    ) -> cohort_store::Result<Vec<Applied>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            let applied = apply_all(&mut tx, batches, at)?;
            tx.commit()?;
            Ok(applied)
        })
    }

    fn group_customers_after(
        &self,
        group: &str,
        after: &str,
        limit: usize,
    ) -> cohort_store::Result<Vec<String>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                "SELECT customer FROM (
                     SELECT customer FROM memberships WHERE grp = $1 AND customer > $2
                     UNION SELECT customer FROM exclusions WHERE grp = $1 AND customer > $2) c
                 ORDER BY customer LIMIT $3",
                &[&group, &after, &(limit as i64)],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn group_memberships_page(
        &self,
        group: &str,
        listing: Listing,
        at: Timestamp,
        after: i64,
        limit: usize,
    ) -> cohort_store::Result<Vec<Membership>> {
        sql(|| {
            let filter = match listing {
                // Every parameter needs a type PostgreSQL can tell: this one names `$3`.
                Listing::All => "$3::bigint IS NOT NULL",
                Listing::Only(State::Pending) => "starts > $3",
                Listing::Only(State::Active) => "starts <= $3 AND (ends IS NULL OR ends > $3)",
                Listing::Only(State::Expired) => "ends IS NOT NULL AND ends <= $3",
            };
            self.memberships(
                &format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM memberships
                     WHERE grp = $1 AND id > $2 AND ({filter})
                     ORDER BY id LIMIT $4"
                ),
                &[&group, &after, &at, &(limit as i64)],
            )
        })
    }
}
