//! What the latest reads of changed customers could not see, by the token each handed
//! its caller as its position (see `customers`).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// What one read's snapshot could not see.
#[derive(Clone, Debug)]
pub(crate) struct Read {
    /// The first transaction number not yet handed out then: every later one is unseen.
    pub next: i64,
    /// The transactions in flight then, below `next`.
    pub in_flight: Vec<i64>,
}

/// Tokens kept: a cache of customers holds the latest token only; a few more serve
/// callers that read in turns.
const KEPT: usize = 16;

/// The latest reads, by token. Tokens grow, and start from a random point per store so
/// that another store's token is not mistaken for one of this store's.
pub(crate) struct Reads {
    state: Mutex<(i64, VecDeque<(i64, Read)>)>,
}

impl Reads {
    pub(crate) fn new(start: i64) -> Reads {
        Reads {
            state: Mutex::new((start, VecDeque::new())),
        }
    }

    /// Keep `read`; returns its token, greater than any before.
    pub(crate) fn remember(&self, read: Read) -> i64 {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += 1;
        let token = state.0;
        state.1.push_back((token, read));
        if state.1.len() > KEPT {
            state.1.pop_front();
        }
        token
    }

    /// The read `token` stands for, if this store still keeps it.
    pub(crate) fn recall(&self, token: i64) -> Option<Read> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .1
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, read)| read.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_grow_and_old_ones_are_forgotten() {
        let reads = Reads::new(1_000);
        let read = |next| Read {
            next,
            in_flight: vec![next - 1],
        };
        let first = reads.remember(read(10));
        assert_eq!(reads.recall(first).map(|r| r.next), Some(10));
        let mut last = first;
        for i in 0..KEPT as i64 {
            let token = reads.remember(read(20 + i));
            assert!(token > last);
            last = token;
        }
        assert!(reads.recall(first).is_none(), "past the kept ones");
        assert_eq!(reads.recall(last).map(|r| r.in_flight), Some(vec![34]));
        assert!(Reads::new(5_000).recall(last).is_none());
    }
}
