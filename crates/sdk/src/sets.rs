//! Sets of configured values that a plugin checks customer symbols against.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::{Symbol, intern, symbol_text};

/// Exact strings, interned once: membership is a binary search over a few numbers.
#[derive(Debug, Clone, Default)]
pub struct SymbolSet(Vec<Symbol>);

impl SymbolSet {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut symbols: Vec<Symbol> = values.into_iter().map(intern).collect();
        symbols.sort_unstable();
        symbols.dedup();
        SymbolSet(symbols)
    }

    pub fn contains(&self, symbol: Symbol) -> bool {
        self.0.binary_search(&symbol).is_ok()
    }

    /// Whether any of `symbols` is in the set.
    pub fn any(&self, symbols: &[Symbol]) -> bool {
        symbols.iter().any(|&s| self.contains(s))
    }

    /// The set as an explanation shows it: "`a`, `b`".
    pub fn names(&self) -> String {
        let mut names: Vec<String> = self.0.iter().map(|&s| crate::explain::quoted(s)).collect();
        names.sort_unstable();
        names.join(", ")
    }
}

/// Strings compared without regard to case (`Google` is `google`). Platforms spell
/// method names as they like; an operator should not have to guess which.
///
/// The text of a customer's symbol is fetched from the host once and the answer kept
/// in a [`SymbolMemo`], so the cost per customer is an array read.
#[derive(Debug, Default)]
pub struct CaselessSet {
    words: HashSet<String>,
    seen: SymbolMemo,
}

impl CaselessSet {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        CaselessSet {
            words: values.into_iter().map(caseless).collect(),
            seen: SymbolMemo::default(),
        }
    }

    pub fn contains(&self, symbol: Symbol) -> bool {
        self.seen.get_or(symbol, |s| {
            symbol_text(s).is_some_and(|text| self.words.contains(&caseless(&text)))
        })
    }

    /// Whether any of `symbols` is in the set.
    pub fn any(&self, symbols: &[Symbol]) -> bool {
        symbols.iter().any(|&s| self.contains(s))
    }

    /// The set as an explanation shows it, in lower case: "`google`, `phone`".
    pub fn names(&self) -> String {
        let mut names: Vec<String> = self.words.iter().map(|w| format!("`{w}`")).collect();
        names.sort_unstable();
        names.join(", ")
    }
}

/// A yes-or-no answer per symbol, worked out once.
///
/// The host numbers symbols densely from zero, so the answers for the first
/// [`SymbolMemo::DENSE`] symbols live in a byte array indexed by the symbol: a lookup
/// in the hot loop is one load, where a hash map costs a SipHash of the key (tens of
/// nanoseconds in wasm, more than the rest of a simple condition). Rarer, larger
/// symbols fall back to a map, so a huge symbol cannot make the guest allocate much.
#[derive(Debug, Default)]
pub struct SymbolMemo {
    /// 0: not worked out yet; 1: no; 2: yes.
    dense: RefCell<Vec<u8>>,
    sparse: RefCell<HashMap<Symbol, bool>>,
}

impl SymbolMemo {
    /// Symbols below this are kept in the array (at most 1 MiB of guest memory).
    pub const DENSE: Symbol = 1 << 20;

    /// The answer for `symbol`, computing it with `compute` the first time.
    pub fn get_or(&self, symbol: Symbol, compute: impl FnOnce(Symbol) -> bool) -> bool {
        if symbol < Self::DENSE {
            let i = symbol as usize;
            if let Some(&known) = self.dense.borrow().get(i)
                && known != 0
            {
                return known == 2;
            }
            let answer = compute(symbol);
            let mut dense = self.dense.borrow_mut();
            if dense.len() <= i {
                dense.resize(i + 1, 0);
            }
            dense[i] = if answer { 2 } else { 1 };
            answer
        } else {
            if let Some(&known) = self.sparse.borrow().get(&symbol) {
                return known;
            }
            let answer = compute(symbol);
            self.sparse.borrow_mut().insert(symbol, answer);
            answer
        }
    }
}

/// The form both sides are compared in: trimmed and lower-cased.
pub fn caseless(text: &str) -> String {
    text.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_memo_computes_each_symbol_once_dense_or_sparse() {
        let memo = SymbolMemo::default();
        let calls = Cell::new(0);
        let even = |s: Symbol| {
            calls.set(calls.get() + 1);
            s.is_multiple_of(2)
        };
        let big = SymbolMemo::DENSE + 7;
        for _ in 0..3 {
            assert!(memo.get_or(4, even));
            assert!(!memo.get_or(9, even));
            assert!(!memo.get_or(big, even));
            assert!(memo.get_or(0, even));
        }
        assert_eq!(calls.get(), 4, "one computation per distinct symbol");
        assert_eq!(
            memo.dense.borrow().len(),
            10,
            "the array grows to the largest dense symbol"
        );
        assert_eq!(memo.sparse.borrow().len(), 1, "large symbols go to the map");
    }
}
