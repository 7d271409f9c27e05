//! Inputs for the property tests that fuzz Cohort's readers of outside data (CSV
//! imports, customer and group JSON, plugin components): a file of a corpus, changed by
//! a few mutations of the kinds that break parsers (bits flipped, bytes set to a
//! delimiter, quote or control character, runs deleted, repeated or cut off).
//! Included by each crate's `tests/fuzz.rs` with `#[path]`, so that the mutations are
//! written once. The corpora are in `tests/corpus/` at the repository's root; a case
//! that ever fails is kept by proptest in the test's `.proptest-regressions` file.

#![allow(
    dead_code,
    reason = "each test binary that includes these helpers uses some of them"
)]

use std::path::Path;

use proptest::prelude::*;

/// Bytes that mean something to one of the readers.
const TOKENS: &[&[u8]] = &[
    b",",
    b";",
    b"\t",
    b"|",
    b"\"",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\\u0000",
    b"\\u202e",
    b"\0",
    b"\xff",
    b"-1",
    b"1e999",
    b"null",
    b"T25:61:61Z",
];

#[derive(Clone, Debug)]
pub enum Mutation {
    Flip { at: u32, bit: u8 },
    Token { at: u32, token: usize },
    Insert { at: u32, bytes: Vec<u8> },
    Delete { at: u32, len: u16 },
    Repeat { at: u32, len: u16, times: u8 },
    Truncate { at: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<u32>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<u32>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Token { at, token }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<u32>(), 1u16..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<u32>(), 1u16..64, 1u8..16).prop_map(|(at, len, times)| Mutation::Repeat {
            at,
            len,
            times
        }),
        any::<u32>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// `bytes` with `m` applied; positions wrap around the input's length.
fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |at: u32, len: usize| if len == 0 { 0 } else { at as usize % (len + 1) };
    match m {
        Mutation::Flip { at: a, bit } if !bytes.is_empty() => {
            let i = *a as usize % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        Mutation::Flip { .. } => {}
        Mutation::Token { at: a, token } => {
            let i = at(*a, bytes.len());
            bytes.splice(i..i, TOKENS[*token].iter().copied());
        }
        Mutation::Insert { at: a, bytes: new } => {
            let i = at(*a, bytes.len());
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::Delete { at: a, len } => {
            let i = at(*a, bytes.len());
            let end = (i + *len as usize).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Repeat { at: a, len, times } => {
            let i = at(*a, bytes.len());
            let end = (i + *len as usize).min(bytes.len());
            let run = bytes[i..end].to_vec();
            for _ in 0..*times {
                bytes.splice(end..end, run.iter().copied());
            }
        }
        Mutation::Truncate { at: a } => {
            let i = at(*a, bytes.len());
            bytes.truncate(i);
        }
    }
}

/// Every file of the corpus folder `name` under `tests/corpus/`.
pub fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("tests/corpus").join(name))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| panic!("no corpus `{name}` under tests/corpus"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus folder")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("a corpus file"))
        .collect()
}

/// A file of `seeds`, mutated a few times (or not at all).
pub fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "a corpus needs a file");
    (0..seeds.len(), prop::collection::vec(mutation(), 0..6)).prop_map(move |(i, mutations)| {
        let mut bytes = seeds[i].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        bytes
    })
}
