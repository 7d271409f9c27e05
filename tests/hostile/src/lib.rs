//! A plugin that misbehaves on purpose. Its configuration names the misbehaviour; it
//! acts it out only for customers tagged `hostile` and answers "match" for everyone
//! else, so a test can show that the host contains the failure and that the next,
//! well-behaved batch succeeds.

use std::cell::Cell;
use std::hint::black_box;

use cohort_plugin_sdk::config;
use cohort_plugin_sdk::{
    Capability, ConfigError, Customer, Fields, Pair, Plugin, PluginInfo, Symbol, Timestamp, Value,
    Verdict, export_plugin, intern, symbol_text,
};
use serde::Deserialize;

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Behaviour {
    /// loop forever: the fuel limit or the epoch deadline must stop it
    Spin,
    /// allocate without end: the memory cap must stop it
    Hog,
    /// recurse without end: the stack cap must stop it
    Deep,
    /// read a file: "match" if it could, an error saying why not otherwise; only
    /// inside a granted data directory may it succeed
    Read,
    /// write a file: "match" if it could; a granted directory is read-only
    Write,
    /// look at the environment, the clock, randomness and the network, and report
    /// what it saw as an error message
    Peek,
    /// panic, which is a wasm trap
    Trap,
    /// intern a fresh string of `size` bytes per customer, and answer "match" if the
    /// host gives its text back
    Intern,
    /// answer no decision, with every fact the plugin was sent as the message (the
    /// 0.1.0 test plugin `legacy` has the same behaviour, so a test can compare what
    /// the two contract versions carry); attributes as an older contract has them,
    /// text only
    Echo,
    /// answer no decision, with the typed attributes and the registration time as the
    /// message: what only contract 0.3.0 carries
    EchoTyped,
    /// match, holding until `size` seconds after the as-of time
    Expire,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    behaviour: Behaviour,
    /// the file to read or write, for `read` and `write`; for `intern`, the start of
    /// every string, so that two configurations intern different strings
    #[serde(default)]
    path: String,
    /// bytes of each string `intern` makes
    #[serde(default)]
    size: usize,
    /// bytes of a string `intern` makes once, while preparing
    #[serde(default)]
    prepare_size: usize,
}

struct Hostile {
    behaviour: Behaviour,
    path: String,
    size: usize,
    hostile: Symbol,
    /// Makes each interned string new.
    interned: Cell<u64>,
}

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Misbehaves on purpose for customers tagged `hostile`.".into(),
            config_schema: r#"{"type":"object"}"#.into(),
            reads: Fields::all(),
            capabilities: vec![Capability::DataDir],
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        if cfg.prepare_size > 0 {
            intern(&format!("{}{}", cfg.path, "p".repeat(cfg.prepare_size)));
        }
        Ok(Hostile {
            behaviour: cfg.behaviour,
            path: cfg.path,
            size: cfg.size,
            hostile: intern("hostile"),
            interned: Cell::new(0),
        })
    }

    fn valid_until(&self, as_of: Timestamp, _customer: Customer<'_>) -> Timestamp {
        match self.behaviour {
            Behaviour::Expire => as_of.saturating_add(i64::try_from(self.size).unwrap_or(i64::MAX)),
            _ => as_of.saturating_add(1),
        }
    }

    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        if !customer.tags().contains(&self.hostile) {
            return Verdict::Match;
        }
        match self.behaviour {
            Behaviour::Spin => spin(),
            Behaviour::Hog => hog(),
            Behaviour::Deep => Verdict::from_bool(deep(black_box(1)) == 0),
            Behaviour::Read => match std::fs::read(&self.path) {
                Ok(_) => Verdict::Match,
                Err(e) => Verdict::Error(format!("cannot read `{}`: {e}", self.path)),
            },
            Behaviour::Write => match std::fs::write(&self.path, "written by a plugin") {
                Ok(()) => Verdict::Match,
                Err(e) => Verdict::Error(format!("cannot write `{}`: {e}", self.path)),
            },
            Behaviour::Peek => Verdict::Error(peek()),
            Behaviour::Trap => panic!("hostile plugin traps on purpose"),
            Behaviour::Intern => {
                let n = self.interned.get();
                self.interned.set(n + 1);
                let mut text = format!("{}{n}-", self.path);
                text.extend(std::iter::repeat_n(
                    'i',
                    self.size.saturating_sub(text.len()),
                ));
                Verdict::from_bool(symbol_text(intern(&text)).as_deref() == Some(text.as_str()))
            }
            Behaviour::Echo => Verdict::Error(facts(customer)),
            Behaviour::EchoTyped => Verdict::Error(format!(
                "{:?}",
                (customer.attributes(), customer.registered())
            )),
            Behaviour::Expire => Verdict::Match,
        }
    }
}

/// Every fact of `c`, in `Debug` form.
fn facts(c: Customer<'_>) -> String {
    format!(
        "{:?}",
        (
            c.country(),
            c.registration_ip(),
            c.registration_params(),
            c.payers(),
            c.provider(),
            c.auth_methods(),
            c.verification_status(),
            c.verification_methods(),
            c.subscriptions(),
            c.tags(),
            c.attributes()
                .iter()
                .filter_map(|a| match a.value {
                    Value::Text(value) => Some(Pair { key: a.key, value }),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
    )
}

fn peek() -> String {
    use std::hash::BuildHasher;
    let env = std::env::vars().count();
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    // std seeds RandomState from WASI randomness: two fresh instances hash alike only
    // if the randomness they were given is the same.
    let hash = std::collections::hash_map::RandomState::new().hash_one(42u32);
    let net = match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => "connected".to_string(),
        Err(e) => format!("refused ({})", e.kind()),
    };
    format!("env={env} clock={clock} hash={hash:016x} net={net}")
}

fn spin() -> Verdict {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn hog() -> Verdict {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(black_box(vec![1u8; 1 << 20]));
    }
}

/// Keeps its state in wasm locals, not the shadow stack, so that it is the host's
/// call-stack cap that stops it.
#[allow(
    unconditional_recursion,
    reason = "it recurses until the host's stack limit stops it: that is the test"
)]
fn deep(n: u64) -> u64 {
    black_box(deep(black_box(n + 1))).wrapping_add(1)
}

export_plugin!(Hostile);
