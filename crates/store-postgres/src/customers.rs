//! Customers' facts and their registration, and the reading of what changed since a
//! reader last looked.
//!
//! Many servers write customers at once, and a transaction that started first may
//! commit last: a reader that kept "the latest write seen" as a number would pass a
//! write still in flight and never see it. So a row names the transaction that wrote it
//! (`written`), and a read remembers what its snapshot could not see: the transactions
//! in flight then, and where numbering stood (`Read`). The next read asks for exactly
//! those: rows of a transaction in flight last time, or numbered since. The position a
//! caller keeps is a token for that memory (`Reads`); a token this store does not hold
//! (from before a restart) reads everything again, which is safe.

use std::collections::HashMap;

use cohort_model::{CustomerRecord, Timestamp};
use cohort_planner::Change;
use cohort_store::load::{Chunk, Each, parse_in_parallel};
use cohort_store::{Applied, Cause, Customers, Erasure};
use postgres::IsolationLevel;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use crate::journal::apply_all;
use crate::pool::Tx;
use crate::reads::Read;
use crate::{Error, PgStore, Result, corrupt, count, sql};

/// Rows per statement of a bulk upsert.
const CHUNK: usize = 10_000;

/// Insert or replace `records` (the last of each id wins); returns how many were new.
fn upsert_in(tx: &mut Tx<'_>, records: &[CustomerRecord], now: Timestamp) -> Result<u64> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        last.insert(&r.id, i);
    }
    let mut new = 0;
    let statement = tx.prepared(
        "INSERT INTO customers (id, record, registered_at, updated_at)
         SELECT id, record, $3, $3 FROM unnest($1::text[], $2::text[]) AS t(id, record)
         ON CONFLICT (id) DO UPDATE SET record = excluded.record,
            updated_at = excluded.updated_at, written = pg_current_xact_id()
         RETURNING xmax = 0",
    )?;
    let kept: Vec<&CustomerRecord> = records
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(r.id.as_str()) == Some(i))
        .map(|(_, r)| r)
        .collect();
    for chunk in kept.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
        let json = chunk
            .iter()
            .map(|r| serde_json::to_string(r).map_err(|e| corrupt("customer", &r.id, e)))
            .collect::<Result<Vec<String>>>()?;
        for row in tx.query(&statement, &[&ids, &json, &now])? {
            new += u64::from(row.get::<_, bool>(0));
        }
    }
    Ok(new)
}

impl Customers for PgStore {
    fn upsert_customer(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
    ) -> cohort_store::Result<bool> {
        Ok(self.upsert_customers(std::slice::from_ref(record), now)? == 1)
    }

    fn update_customer_if(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
        precondition: &dyn Fn(&CustomerRecord) -> bool,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // The stored row stays locked until the write: no other server's write
            // comes between the look and it.
            let stored = tx
                .query_opt(
                    "SELECT record FROM customers WHERE id = $1 FOR UPDATE",
                    &[&record.id],
                )?
                .map(|r| {
                    serde_json::from_str::<CustomerRecord>(r.get(0))
                        .map_err(|e| corrupt("customer", &record.id, e))
                })
                .transpose()?;
            if !stored.as_ref().is_some_and(precondition) {
                return Ok(false);
            }
            upsert_in(&mut tx, std::slice::from_ref(record), now)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn upsert_customers(
        &self,
        records: &[CustomerRecord],
        now: Timestamp,
    ) -> cohort_store::Result<u64> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            let new = upsert_in(&mut tx, records, now)?;
            tx.commit()?;
            Ok(new)
        })
    }

    fn register(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
        batches: &[(&[Change], Cause<'_>)],
    ) -> cohort_store::Result<Option<Vec<Applied>>> {
        sql(|| {
            let mut conn = self.pool.get()?;
            let mut tx = conn.begin()?;
            // The insert takes the row's lock: a second registration of the customer
            // waits for this one to commit, then finds it and applies nothing.
            let applied = if upsert_in(&mut tx, std::slice::from_ref(record), now)? == 1 {
                Some(apply_all(&mut tx, batches, now)?)
            } else {
                None
            };
            tx.commit()?;
            Ok(applied)
        })
    }

    fn erase_customer(
        &self,
        id: &str,
        cause: &Cause<'_>,
        reason: &str,
        at: Timestamp,
    ) -> cohort_store::Result<Option<Erasure>> {
        sql(|| self.erase(id, cause, reason, at))
    }

    fn erasures_stamp(&self) -> cohort_store::Result<i64> {
        sql(|| self.erasures())
    }

    fn customer_exists(&self, id: &str) -> cohort_store::Result<bool> {
        sql(|| {
            Ok(self
                .pool
                .get()?
                .query_opt("SELECT 1 FROM customers WHERE id = $1", &[&id])?
                .is_some())
        })
    }

    fn customer(&self, id: &str) -> cohort_store::Result<Option<CustomerRecord>> {
        sql(|| {
            let row = self
                .pool
                .get()?
                .query_opt("SELECT record FROM customers WHERE id = $1", &[&id])?;
            row.map(|r| serde_json::from_str(r.get(0)).map_err(|e| corrupt("customer", id, e)))
                .transpose()
        })
    }

    fn customers_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> cohort_store::Result<Vec<CustomerRecord>> {
        sql(|| {
            let rows = self.pool.get()?.query(
                "SELECT id, record FROM customers WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after.unwrap_or(""), &(limit as i64)],
            )?;
            rows.iter()
                .map(|r| {
                    let id: &str = r.get(0);
                    serde_json::from_str(r.get(1)).map_err(|e| corrupt("customer", id, e))
                })
                .collect()
        })
    }

    fn customers_since(
        &self,
        seq: Option<i64>,
        batch: usize,
        each: &Each<'_>,
    ) -> cohort_store::Result<i64> {
        let mut conn = self.pool.get()?;
        // One snapshot for the position and the rows.
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(Error::from)?;
        let row = tx
            .query_one(
                "SELECT pg_snapshot_xmax(s)::text::bigint,
                        ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x)
                 FROM pg_current_snapshot() s",
                &[],
            )
            .map_err(Error::from)?;
        let now = Read {
            next: row.get(0),
            in_flight: row.get(1),
        };
        // What this reader saw last time, if it is this store's: else everything.
        let before = seq.and_then(|token| self.reads.recall(token));
        let (next, in_flight): (i64, &[i64]) =
            before.as_ref().map_or((0, &[]), |b| (b.next, &b.in_flight));
        let mut rows = tx
            .query_raw(
                "SELECT id, record FROM customers
                 WHERE written >= $1::bigint::text::xid8
                    OR written = ANY($2::bigint[]::text[]::xid8[])
                 ORDER BY written, id",
                [&next as &(dyn ToSql + Sync), &in_flight],
            )
            .map_err(Error::from)?;
        let mut seen = 0usize;
        // The driver's stream of rows fails if asked again once it has ended.
        let mut ended = false;
        let mut fill = |chunk: &mut Chunk, size: usize| -> cohort_store::Result<()> {
            sql(|| {
                while chunk.len() < size && !ended {
                    let Some(row) = rows.next()? else {
                        ended = true;
                        break;
                    };
                    chunk.push(row.get(0), row.get(1));
                    seen += 1;
                }
                Ok(())
            })
        };
        parse_in_parallel(batch, &mut fill, each)?;
        drop(rows);
        tx.commit().map_err(Error::from)?;
        // Nothing new: the position stays, so that a caller sees nothing moved (what
        // was in flight then is still asked for next time).
        Ok(match seq {
            Some(seq) if seen == 0 && before.is_some() => seq,
            _ => self.reads.remember(now),
        })
    }

    fn count_customers(&self) -> cohort_store::Result<u64> {
        sql(|| {
            let n: i64 = self
                .pool
                .get()?
                .query_one("SELECT count(*) FROM customers", &[])?
                .get(0);
            Ok(count(n))
        })
    }
}
