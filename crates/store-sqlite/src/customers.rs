//! Customers' records, each write numbered so that a cache fetches what changed.

use cohort_model::{CustomerRecord, Timestamp};
use cohort_planner::Change;
use cohort_store::load::{Chunk, Each, parse_in_parallel};
use cohort_store::{Applied, Cause, Customers, Erasure};
use rusqlite::{Connection, OptionalExtension, params};

use crate::memberships::apply_all;
use crate::{Error, Result, SqliteStore, corrupt, sql};

/// Customers written after a write number, in write order.
const CUSTOMERS_SINCE: &str =
    "SELECT id, record, seq FROM customers WHERE seq > ?1 ORDER BY seq, id";

const UPSERT_CUSTOMER: &str = "INSERT INTO customers (id, record, registered_at, updated_at, seq)
     VALUES (?1, ?2, ?3, ?3, ?4)
     ON CONFLICT (id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at,
        seq = excluded.seq";

/// The number the next write of customers takes.
fn next_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM customers")?
        .query_row([], |r| r.get(0))?)
}

fn customer_exists_in(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM customers WHERE id = ?1")?
        .exists([id])?)
}

/// Write one customer's record as write number `seq`; `true` when it is new.
fn upsert_customer_in(
    conn: &Connection,
    record: &CustomerRecord,
    now: Timestamp,
    seq: i64,
) -> Result<bool> {
    let json = serde_json::to_string(record).map_err(|e| corrupt("customer", &record.id, e))?;
    let existed = customer_exists_in(conn, &record.id)?;
    conn.prepare_cached(UPSERT_CUSTOMER)?
        .execute(params![record.id, json, now, seq])?;
    Ok(!existed)
}

impl Customers for SqliteStore {
    fn upsert_customer(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let new = upsert_customer_in(&tx, record, now, next_seq(&tx)?)?;
            tx.commit()?;
            Ok(new)
        })
    }

    fn update_customer_if(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
        precondition: &dyn Fn(&CustomerRecord) -> bool,
    ) -> cohort_store::Result<bool> {
        sql(|| {
            let mut conn = self.conn();
            // The write lock is held from here (see `SqliteStore::setup`).
            let tx = conn.transaction()?;
            let stored: Option<String> = tx
                .prepare_cached("SELECT record FROM customers WHERE id = ?1")?
                .query_row([&record.id], |r| r.get(0))
                .optional()?;
            let stored: Option<CustomerRecord> = stored
                .map(|j| serde_json::from_str(&j).map_err(|e| corrupt("customer", &record.id, e)))
                .transpose()?;
            if !stored.as_ref().is_some_and(precondition) {
                return Ok(false);
            }
            upsert_customer_in(&tx, record, now, next_seq(&tx)?)?;
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
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let seq = next_seq(&tx)?;
            let mut new = 0;
            for record in records {
                new += u64::from(upsert_customer_in(&tx, record, now, seq)?);
            }
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
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let applied = if upsert_customer_in(&tx, record, now, next_seq(&tx)?)? {
                Some(apply_all(&tx, batches, now)?)
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
        sql(|| customer_exists_in(&self.conn(), id))
    }

    fn customer(&self, id: &str) -> cohort_store::Result<Option<CustomerRecord>> {
        sql(|| {
            let json: Option<String> = self
                .reader()
                .prepare_cached("SELECT record FROM customers WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt("customer", id, e)))
                .transpose()
        })
    }

    fn customers_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> cohort_store::Result<Vec<CustomerRecord>> {
        sql(|| {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT id, record FROM customers WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after.unwrap_or(""), limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::with_capacity(limit.min(100_000));
            for row in rows {
                let (id, json) = row?;
                out.push(serde_json::from_str(&json).map_err(|e| corrupt("customer", &id, e))?);
            }
            Ok(out)
        })
    }

    fn customers_since(
        &self,
        seq: Option<i64>,
        batch: usize,
        each: &Each<'_>,
    ) -> cohort_store::Result<i64> {
        let conn = self.reader();
        let since = seq.unwrap_or(-1);
        let mut last = since.max(0);
        // In write order, so that the index on `seq` answers "nothing changed" without
        // reading the table.
        let mut stmt = conn.prepare_cached(CUSTOMERS_SINCE).map_err(Error::from)?;
        let mut rows = stmt.query([since]).map_err(Error::from)?;
        let mut fill = |chunk: &mut Chunk, size: usize| -> cohort_store::Result<()> {
            sql(|| {
                while chunk.len() < size {
                    let Some(row) = rows.next()? else { break };
                    let text = |i| -> rusqlite::Result<&str> { Ok(row.get_ref(i)?.as_str()?) };
                    chunk.push(text(0)?, text(1)?);
                    last = last.max(row.get(2)?);
                }
                Ok(())
            })
        };
        parse_in_parallel(batch, &mut fill, each)?;
        Ok(last)
    }

    fn count_customers(&self) -> cohort_store::Result<u64> {
        sql(|| {
            let n: i64 = self
                .reader()
                .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))?;
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cohort_store::StoreError;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Every batch's records, by the batch's number, and whether the read succeeded.
    fn read_since(
        store: &SqliteStore,
        since: Option<i64>,
        batch: usize,
    ) -> (BTreeMap<usize, Vec<String>>, cohort_store::Result<i64>) {
        let batches = Mutex::new(BTreeMap::new());
        let seq = store.customers_since(since, batch, &|number, records| {
            let ids: Vec<String> = records.map(|c| c.id).collect();
            let old = batches.lock().expect("batches").insert(number, ids);
            assert!(old.is_none(), "batch {number} handed over twice");
        });
        (batches.into_inner().expect("batches"), seq)
    }

    /// What a cache of customers relies on: every record once, in write order (batches
    /// numbered in that order, however many threads hand them over), then only what
    /// was written since; and a record that does not parse fails the load with an
    /// error naming it.
    #[test]
    fn customers_since_hands_every_record_in_write_order_then_only_what_changed() {
        let store = SqliteStore::in_memory().expect("store");
        let record = |i: usize| CustomerRecord {
            id: format!("c{i:05}"),
            ..CustomerRecord::default()
        };
        let first: Vec<CustomerRecord> = (0..2_055).rev().map(record).collect();
        store.upsert_customers(&first, 0).expect("load");
        store.upsert_customers(&[record(3)], 1).expect("update");
        // One write numbers all its customers alike; they come in id order.
        let mut expected: Vec<String> = (0..2_055)
            .filter(|&i| i != 3)
            .map(|i| record(i).id)
            .collect();
        expected.push(record(3).id);
        for batch in [100, 5_000] {
            let (batches, seq) = read_since(&store, None, batch);
            let seq = seq.expect("read");
            assert_eq!(batches.len(), 2_055usize.div_ceil(batch));
            assert!(batches.values().all(|ids| ids.len() <= batch));
            assert_eq!(
                batches.into_values().flatten().collect::<Vec<_>>(),
                expected
            );
            let (batches, again) = read_since(&store, Some(seq), batch);
            assert_eq!(again.expect("read"), seq);
            assert!(batches.values().all(Vec::is_empty), "{batches:?}");
        }
        // Handed over as the index walks, not after sorting every record.
        let plan: Vec<String> = store
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {CUSTOMERS_SINCE}"))
            .expect("plan")
            .query_map([-1], |r| r.get(3))
            .expect("plan")
            .collect::<rusqlite::Result<_>>()
            .expect("plan");
        assert_eq!(
            plan,
            ["SEARCH customers USING INDEX customers_by_seq (seq>?)"]
        );

        let seq = read_since(&store, None, 100).1.expect("read");
        store
            .conn()
            .execute(
                "UPDATE customers SET record = '{', seq = 100 WHERE id = 'c00005'",
                [],
            )
            .expect("break a record");
        match read_since(&store, Some(seq), 100).1 {
            Err(StoreError::Corrupt { what, id, .. }) => {
                assert_eq!((what, id.as_str()), ("customer", "c00005"));
            }
            other => panic!("expected the broken record named, got {other:?}"),
        }
        // A whole load is parsed on several threads, batch by batch: a broken record
        // deep in it is named too, the first in write order when two are broken, and
        // every record before it was handed over.
        for id in ["c01500", "c01990"] {
            store
                .conn()
                .execute("UPDATE customers SET record = '[' WHERE id = ?1", [id])
                .expect("break a record");
        }
        let (batches, read) = read_since(&store, None, 100);
        match read {
            Err(StoreError::Corrupt { what, id, .. }) => {
                assert_eq!((what, id.as_str()), ("customer", "c01500"));
            }
            other => panic!("expected the first broken record named, got {other:?}"),
        }
        // c00000 to c01499, but for c00003 and c00005, written again since.
        let before: Vec<String> = batches.into_values().flatten().take(1_498).collect();
        let written_before: Vec<String> = (0..1_500)
            .filter(|&i| i != 3 && i != 5)
            .map(|i| record(i).id)
            .collect();
        assert_eq!(before, written_before);
    }
}
