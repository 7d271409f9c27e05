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
}

/// Strings compared without regard to case (`Google` is `google`). Platforms spell
/// method names as they like; an operator should not have to guess which.
///
/// The text of a customer's symbol is fetched from the host once and the answer cached
/// per symbol, so the cost per customer is a hash lookup.
#[derive(Debug, Default)]
pub struct CaselessSet {
    words: HashSet<String>,
    seen: RefCell<HashMap<Symbol, bool>>,
}

impl CaselessSet {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        CaselessSet {
            words: values.into_iter().map(caseless).collect(),
            seen: RefCell::new(HashMap::new()),
        }
    }

    pub fn contains(&self, symbol: Symbol) -> bool {
        if let Some(&known) = self.seen.borrow().get(&symbol) {
            return known;
        }
        let found = symbol_text(symbol).is_some_and(|text| self.words.contains(&caseless(&text)));
        self.seen.borrow_mut().insert(symbol, found);
        found
    }

    /// Whether any of `symbols` is in the set.
    pub fn any(&self, symbols: &[Symbol]) -> bool {
        symbols.iter().any(|&s| self.contains(s))
    }
}

/// The form both sides are compared in: trimmed and lower-cased.
pub fn caseless(text: &str) -> String {
    text.trim().to_lowercase()
}
