//! Interned strings.
//!
//! Plugins compare customer facts by number, not by string: copying strings into a
//! guest dominates the cost of a call (see wit/README.md). The interner hands out one
//! number per distinct string and never forgets one, so a symbol stays valid for the
//! life of the process and a plugin may cache what it derived from it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// An interned string. Only meaningful together with the [`Interner`] that made it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(u32);

impl Symbol {
    /// The number that marks "no value" in a column of optional symbols; never handed
    /// out by an interner.
    pub const ABSENT: u32 = u32::MAX;

    /// Numbers from here up are never handed out by an interner: a host numbers a
    /// plugin call's own strings there (see `cohort-host`), so they can never equal
    /// a fact's symbol.
    pub const LOCAL_FLOOR: u32 = 0xC000_0000;

    /// The number that crosses the plugin boundary.
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// A symbol from the number a plugin handed back; check it with
    /// [`Interner::resolve`] before trusting it.
    pub fn from_u32(n: u32) -> Self {
        Symbol(n)
    }
}

/// An append-only, thread-safe string table.
#[derive(Debug, Default)]
pub struct Interner {
    inner: RwLock<Table>,
}

#[derive(Debug, Default)]
struct Table {
    ids: HashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The symbol of `text`, adding it if it is new.
    ///
    /// # Panics
    /// When more than [`Symbol::LOCAL_FLOOR`] (about three billion) distinct strings
    /// have been interned: the contract's symbol is 32 bits wide with the top of the
    /// range reserved, and a process that sees billions of distinct facts has a bug
    /// elsewhere.
    pub fn intern(&self, text: &str) -> Symbol {
        if let Some(sym) = self.lookup(text) {
            return sym;
        }
        // A poisoned lock only means another thread panicked while holding it; the
        // table itself is always left consistent (insert happens after push).
        let mut table = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = table.ids.get(text) {
            return Symbol(id);
        }
        let id = u32::try_from(table.strings.len())
            .ok()
            .filter(|&id| id < Symbol::LOCAL_FLOOR)
            // Three billion distinct strings: the host's limits on what plugins may
            // intern (`cohort-host`'s symbols.rs) keep the table far below.
            .expect("symbol table overflow");
        let text: Arc<str> = Arc::from(text);
        table.strings.push(Arc::clone(&text));
        table.ids.insert(text, id);
        Symbol(id)
    }

    /// The symbol of `text` if it was ever interned.
    pub fn lookup(&self, text: &str) -> Option<Symbol> {
        let table = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        table.ids.get(text).copied().map(Symbol)
    }

    /// The string of `symbol`, or `None` for a number this interner never handed out.
    pub fn resolve(&self, symbol: Symbol) -> Option<Arc<str>> {
        let table = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        table.strings.get(symbol.0 as usize).cloned()
    }

    /// How many distinct strings have been interned.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .strings
            .len()
    }

    /// A [`Memo`] in front of this interner, for one thread's many strings.
    pub fn memo(&self) -> Memo<'_> {
        Memo {
            interner: self,
            seen: HashMap::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A thread's own front for an [`Interner`]: the strings it has met and their symbols.
///
/// Threads that intern side by side (a first load's parsers) would otherwise take the
/// shared table's lock for every string, and a read lock still writes its counter: the
/// cores pass that cache line back and forth for each of a record's twenty strings,
/// which are the same few hundred strings over and over.
pub struct Memo<'i> {
    interner: &'i Interner,
    seen: HashMap<Box<str>, Symbol, foldhash::fast::RandomState>,
}

impl Memo<'_> {
    pub fn intern(&mut self, text: &str) -> Symbol {
        if let Some(&symbol) = self.seen.get(text) {
            return symbol;
        }
        let symbol = self.interner.intern(text);
        self.seen.insert(text.into(), symbol);
        symbol
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_string_same_symbol_and_round_trip() {
        let interner = Interner::new();
        let de = interner.intern("DE");
        let fr = interner.intern("FR");
        assert_ne!(de, fr);
        assert_eq!(interner.intern("DE"), de);
        assert_eq!(interner.resolve(fr).as_deref(), Some("FR"));
        assert_eq!(interner.lookup("GB"), None);
        assert_eq!(interner.len(), 2);
    }

    #[test]
    fn unknown_number_resolves_to_none() {
        let interner = Interner::new();
        interner.intern("x");
        assert_eq!(interner.resolve(Symbol::from_u32(7)), None);
    }

    #[test]
    fn concurrent_interning_agrees() {
        let interner = Arc::new(Interner::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let interner = Arc::clone(&interner);
                std::thread::spawn(move || {
                    (0..1000)
                        .map(|i| interner.intern(&format!("s{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<Symbol>> = handles
            .into_iter()
            .map(|h| h.join().expect("thread panicked"))
            .collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(interner.len(), 1000);
    }
}
