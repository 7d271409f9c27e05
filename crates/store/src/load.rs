//! Parsing a first load of customers on every core while the backend reads.
//!
//! A cache of customers starts from every record the store holds (a million, say), and a
//! run can do nothing until it has them. Parsing the records' JSON is most of that work,
//! so the thread that holds the backend's connection only reads, and one thread per core
//! parses and hands records on. Rows cross in chunks with one buffer for all their text,
//! so what one thread allocates and another frees is a few buffers per chunk, not every
//! field of every record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use cohort_model::CustomerRecord;

use crate::{Result, StoreError};

/// Rows of customer records read together: their ids and texts in one buffer.
#[derive(Default)]
pub struct Chunk {
    text: String,
    /// Where each row's id ends and its record ends, in `text`.
    ends: Vec<(usize, usize)>,
}

impl Chunk {
    /// Add a row: the customer's id and the record's JSON.
    pub fn push(&mut self, id: &str, record: &str) {
        self.text.push_str(id);
        let id_end = self.text.len();
        self.text.push_str(record);
        self.ends.push((id_end, self.text.len()));
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Hand the chunk's records to `each` as they parse; a record that does not parse
    /// ends them, and is named in the error.
    fn parse(&self, number: usize, each: &Each<'_>) -> Result<()> {
        let mut records = Records {
            chunk: self,
            next: 0,
            error: None,
        };
        each(number, &mut records);
        records.error.map_or(Ok(()), Err)
    }
}

/// Where records go: a batch's number and its records.
pub type Each<'a> = dyn Fn(usize, &mut dyn Iterator<Item = CustomerRecord>) + Sync + 'a;

/// The records of one [`Chunk`], parsed one at a time as they are asked for.
struct Records<'c> {
    chunk: &'c Chunk,
    next: usize,
    error: Option<StoreError>,
}

impl Iterator for Records<'_> {
    type Item = CustomerRecord;

    fn next(&mut self) -> Option<CustomerRecord> {
        let &(id_end, end) = self.chunk.ends.get(self.next)?;
        let start = match self.next {
            0 => 0,
            n => self.chunk.ends[n - 1].1,
        };
        let (id, json) = (
            &self.chunk.text[start..id_end],
            &self.chunk.text[id_end..end],
        );
        match serde_json::from_str(json) {
            Ok(record) => {
                self.next += 1;
                Some(record)
            }
            Err(e) => {
                self.error = Some(StoreError::corrupt("customer", id, e));
                self.next = self.chunk.ends.len();
                None
            }
        }
    }
}

/// Hand every row `fill` reads to `each`, in batches of `batch` numbered from 0 (see
/// [`crate::Customers::customers_since`]). `fill` adds up to the number of rows asked
/// for to a chunk, fewer only at the end; it runs on the calling thread, which may hold
/// a connection no other thread can use. A few rows are parsed right here; more are
/// parsed on one thread per core, and so handed over out of order.
pub fn parse_in_parallel(
    batch: usize,
    fill: &mut dyn FnMut(&mut Chunk, usize) -> Result<()>,
    each: &Each<'_>,
) -> Result<()> {
    let batch = batch.max(1);
    let mut first = Chunk::default();
    fill(&mut first, batch)?;
    if first.len() < batch {
        return first.parse(0, each);
    }
    let parsers = std::thread::available_parallelism().map_or(2, usize::from);
    let (send, receive) = std::sync::mpsc::sync_channel::<(usize, Chunk)>(parsers);
    let receive = Mutex::new(receive);
    // The earliest chunk that held a record that does not parse, and why: the error a
    // reader that parsed in order would have met first.
    let broken: Mutex<Option<(usize, StoreError)>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    // Parsed chunks go back to the reader to be filled again: a chunk's text is
    // megabytes, and a new one each time is memory the system must hand over and zero
    // afresh (the first load of a million customers read 700 MB that way).
    let (done, to_refill) = std::sync::mpsc::channel::<Chunk>();
    let parse = || {
        loop {
            let next = receive
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv();
            let Ok((number, chunk)) = next else { return };
            if let Err(e) = chunk.parse(number, each) {
                failed.store(true, Ordering::Relaxed);
                let mut broken = broken.lock().unwrap_or_else(PoisonError::into_inner);
                if broken.as_ref().is_none_or(|(at, _)| number < *at) {
                    *broken = Some((number, e));
                }
            }
            // The reader may be done already; the chunk is then simply let go.
            let _ = done.send(chunk);
        }
    };
    let read = std::thread::scope(|scope| {
        for _ in 0..parsers {
            scope.spawn(parse);
        }
        let mut chunk = first;
        let mut number = 0;
        // A record that does not parse fails the load: nothing more to read then.
        while !chunk.is_empty() && !failed.load(Ordering::Relaxed) {
            if send.send((number, chunk)).is_err() {
                break;
            }
            number += 1;
            chunk = to_refill.try_recv().unwrap_or_default();
            chunk.clear();
            fill(&mut chunk, batch)?;
        }
        drop(send);
        Ok::<_, StoreError>(())
    });
    if let Some((_, e)) = broken.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every batch's ids by number, for `rows` rows read `batch` at a time; the row
    /// numbered `bad`, if any, does not parse.
    fn load(rows: usize, batch: usize, bad: Option<usize>) -> (Vec<Vec<String>>, Result<()>) {
        let mut next = 0;
        let mut fill = |chunk: &mut Chunk, size: usize| {
            while chunk.len() < size && next < rows {
                let id = format!("c{next:05}");
                let json = if Some(next) == bad {
                    "{".to_string()
                } else {
                    format!(r#"{{"id":"{id}"}}"#)
                };
                chunk.push(&id, &json);
                next += 1;
            }
            Ok(())
        };
        let batches = Mutex::new(std::collections::BTreeMap::new());
        let loaded = parse_in_parallel(batch, &mut fill, &|number, records| {
            let ids: Vec<String> = records.map(|c| c.id).collect();
            assert!(
                batches
                    .lock()
                    .expect("batches")
                    .insert(number, ids)
                    .is_none()
            );
        });
        let batches = batches.into_inner().expect("batches");
        (batches.into_values().collect(), loaded)
    }

    #[test]
    fn batches_are_numbered_in_read_order_whichever_thread_parses_them() {
        let (batches, loaded) = load(1_000, 7, None);
        loaded.expect("load");
        let ids: Vec<String> = batches.concat();
        let expected: Vec<String> = (0..1_000).map(|i| format!("c{i:05}")).collect();
        assert_eq!(ids, expected);
        assert!(batches[..batches.len() - 1].iter().all(|b| b.len() == 7));
    }

    #[test]
    fn a_record_that_does_not_parse_fails_the_load_naming_it() {
        let (_, loaded) = load(1_000, 7, Some(500));
        let error = loaded.expect_err("a broken record").to_string();
        assert!(error.contains("customer `c00500`"), "{error}");
        let (_, few) = load(3, 7, Some(1));
        assert!(few.is_err(), "a load of one batch checks its records too");
    }
}
