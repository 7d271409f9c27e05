//! What a plugin's `host.intern` may make the host keep.
//!
//! Strings interned while describing or preparing (a configuration's countries or
//! products) go into the shared table for good: the customers' facts are interned
//! there, and a plugin compares their symbols with its own. They count against a
//! budget per call and one per plugin, over all its instances.
//!
//! A string the table does not know, interned while evaluating, can equal no fact. It
//! gets a number of its own from the top of the range, valid for that call only, and
//! is forgotten when the next call starts; numbers are never reused by one instance,
//! so a symbol a plugin kept from an earlier call matches nothing rather than another
//! string. Without this, a plugin that interned a fresh string per customer grew the
//! host without bound while its own memory stayed small.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cohort_model::{Interner, Symbol};

use crate::Limits;

/// The symbols of one plugin instance's calls, and what they have cost.
pub(crate) struct Symbols {
    interner: Arc<Interner>,
    /// Bytes this plugin has added to the shared table, over all its instances.
    plugin_bytes: Arc<AtomicUsize>,
    limits: Budget,
    /// Whether new strings go into the shared table (describe, prepare) or live for
    /// the current call only (evaluate).
    evaluating: bool,
    call_bytes: usize,
    call_strings: u32,
    /// This call's own strings, by number and by text.
    local: HashMap<u32, Arc<str>>,
    local_ids: HashMap<Arc<str>, u32>,
    /// The next number for a call's own string; counts down to `Symbol::LOCAL_FLOOR`.
    next_local: u32,
    /// Why the last call was stopped, so that its trap is reported as this.
    pub(crate) exceeded: Option<String>,
}

#[derive(Copy, Clone)]
struct Budget {
    bytes_per_call: usize,
    strings_per_call: u32,
    bytes_per_plugin: usize,
}

impl Symbols {
    pub(crate) fn new(
        interner: Arc<Interner>,
        plugin_bytes: Arc<AtomicUsize>,
        limits: &Limits,
    ) -> Self {
        Symbols {
            interner,
            plugin_bytes,
            limits: Budget {
                bytes_per_call: limits.interned_bytes_per_call,
                strings_per_call: limits.interned_strings_per_call,
                bytes_per_plugin: limits.interned_bytes_per_plugin,
            },
            evaluating: false,
            call_bytes: 0,
            call_strings: 0,
            local: HashMap::new(),
            local_ids: HashMap::new(),
            next_local: Symbol::ABSENT - 1,
            exceeded: None,
        }
    }

    /// Start a call: an evaluation, or describing or preparing.
    pub(crate) fn start_call(&mut self, evaluating: bool) {
        self.evaluating = evaluating;
        self.call_bytes = 0;
        self.call_strings = 0;
        self.local.clear();
        self.local_ids.clear();
        self.exceeded = None;
    }

    /// The symbol of `text`, or why the call must stop.
    pub(crate) fn intern(&mut self, text: &str) -> Result<u32, String> {
        if let Some(sym) = self.interner.lookup(text) {
            return Ok(sym.as_u32());
        }
        if self.evaluating
            && let Some(&n) = self.local_ids.get(text)
        {
            return Ok(n);
        }
        self.spend(text.len())?;
        if !self.evaluating {
            return Ok(self.interner.intern(text).as_u32());
        }
        if self.next_local < Symbol::LOCAL_FLOOR {
            return self.stop(format!(
                "interned more than {} strings of its own in one instance",
                Symbol::ABSENT - Symbol::LOCAL_FLOOR
            ));
        }
        let n = self.next_local;
        self.next_local -= 1;
        let text: Arc<str> = Arc::from(text);
        self.local.insert(n, Arc::clone(&text));
        self.local_ids.insert(text, n);
        Ok(n)
    }

    /// The string of `symbol`: the shared table's, or this call's own.
    pub(crate) fn text(&self, symbol: u32) -> Option<Arc<str>> {
        if symbol >= Symbol::LOCAL_FLOOR {
            return self.local.get(&symbol).cloned();
        }
        self.interner.resolve(Symbol::from_u32(symbol))
    }

    fn spend(&mut self, bytes: usize) -> Result<(), String> {
        let b = self.limits;
        self.call_strings += 1;
        self.call_bytes = self.call_bytes.saturating_add(bytes);
        if self.call_strings > b.strings_per_call {
            return self.stop(format!(
                "interned more than {} new strings in one call",
                b.strings_per_call
            ));
        }
        if self.call_bytes > b.bytes_per_call {
            return self.stop(format!(
                "interned more than {} KiB of new strings in one call",
                b.bytes_per_call >> 10
            ));
        }
        if !self.evaluating {
            let before = self.plugin_bytes.fetch_add(bytes, Ordering::Relaxed);
            if before.saturating_add(bytes) > b.bytes_per_plugin {
                self.plugin_bytes.fetch_sub(bytes, Ordering::Relaxed);
                return self.stop(format!(
                    "added more than {} KiB of strings to the host's table",
                    b.bytes_per_plugin >> 10
                ));
            }
        }
        Ok(())
    }

    fn stop<T>(&mut self, why: String) -> Result<T, String> {
        self.exceeded = Some(why.clone());
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(interner: &Arc<Interner>) -> Symbols {
        Symbols::new(
            Arc::clone(interner),
            Arc::new(AtomicUsize::new(0)),
            &Limits::default(),
        )
    }

    #[test]
    fn an_evaluations_own_strings_end_with_its_call_and_their_numbers_are_not_reused() {
        let interner = Arc::new(Interner::new());
        let de = interner.intern("DE").as_u32();
        let mut s = symbols(&interner);
        s.start_call(true);
        assert_eq!(s.intern("DE"), Ok(de), "a known string keeps its symbol");
        let own = s.intern("fresh").expect("within the limits");
        assert!(own >= Symbol::LOCAL_FLOOR && own != Symbol::ABSENT);
        assert_eq!(s.intern("fresh"), Ok(own), "the same within the call");
        assert_eq!(s.text(own).as_deref(), Some("fresh"));
        assert_eq!(interner.lookup("fresh"), None);

        s.start_call(true);
        assert_eq!(s.text(own), None, "forgotten when the call ends");
        let again = s.intern("other").expect("within the limits");
        assert_ne!(
            again, own,
            "a kept symbol never comes to mean another string"
        );
    }

    #[test]
    fn describing_and_preparing_intern_for_good() {
        let interner = Arc::new(Interner::new());
        let mut s = symbols(&interner);
        s.start_call(false);
        let fr = s.intern("FR").expect("within the limits");
        assert_eq!(interner.lookup("FR").map(Symbol::as_u32), Some(fr));
        s.start_call(true);
        assert_eq!(s.text(fr).as_deref(), Some("FR"));
    }
}
