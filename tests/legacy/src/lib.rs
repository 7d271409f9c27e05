//! A plugin built against `cohort:plugin@0.1.0` directly, as plugins were before 0.2.0:
//! the host must keep running it. It does not use the SDK, which follows the newest
//! contract.
//!
//! Configuration `{"tag": "vip"}`: a customer matches when tagged `vip`. With
//! `"echo": true`, every customer is instead left undecided with a message that lists
//! every fact the plugin was sent, in the same form as the hostile plugin's `echo`
//! behaviour (built against the newest contract), so a test can show that both
//! versions see the same customers.

#[allow(unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "plugin",
    });
}

use bindings::cohort::plugin::host::intern;
use bindings::cohort::plugin::types::{
    ConfigError, Customers, Fields, PluginInfo, Undecided, Verdicts, VerificationStatus,
};
use bindings::exports::cohort::plugin::condition::{Evaluator, Guest, GuestEvaluator};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    tag: String,
    #[serde(default)]
    echo: bool,
}

struct Legacy;

impl Guest for Legacy {
    type Evaluator = Prepared;

    fn describe() -> PluginInfo {
        PluginInfo {
            id: "legacy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Matches customers with a tag; built against contract 0.1.0.".into(),
            config_schema: r#"{"type":"object","required":["tag"]}"#.into(),
            reads: Fields::all(),
            capabilities: Vec::new(),
        }
    }

    fn prepare(config: String) -> Result<Evaluator, Vec<ConfigError>> {
        let config: Config = serde_json::from_str(&config).map_err(|e| {
            vec![ConfigError {
                path: String::new(),
                message: e.to_string(),
            }]
        })?;
        if config.tag.is_empty() {
            return Err(vec![ConfigError {
                path: "/tag".into(),
                message: "must not be empty".into(),
            }]);
        }
        Ok(Evaluator::new(Prepared {
            tag: intern(&config.tag),
            echo: config.echo,
        }))
    }
}

struct Prepared {
    tag: u32,
    echo: bool,
}

impl GuestEvaluator for Prepared {
    fn evaluate(&self, _as_of: i64, c: Customers) -> Result<Verdicts, String> {
        let n = c.count as usize;
        let mut out = Verdicts {
            matches: Vec::with_capacity(n),
            undecided: Vec::new(),
        };
        for i in 0..n {
            let tags = ragged(&c.tags.offsets, &c.tags.items, i);
            out.matches.push(u8::from(tags.contains(&self.tag)));
            if self.echo {
                out.undecided.push(Undecided {
                    index: i as u32,
                    message: facts(&c, i),
                });
            }
        }
        Ok(out)
    }
}

/// Customer `i`'s facts, as the SDK's row view would give them, in `Debug` form.
fn facts(c: &Customers, i: usize) -> String {
    let symbol = |column: &[u32]| column.get(i).copied().filter(|&s| s != u32::MAX);
    format!(
        "{:?}",
        (
            symbol(&c.country),
            c.registration_ip.get(i).copied().flatten(),
            ragged(
                &c.registration_params.offsets,
                &c.registration_params.items,
                i
            ),
            ragged(&c.payers.offsets, &c.payers.items, i),
            symbol(&c.provider),
            ragged(&c.auth_methods.offsets, &c.auth_methods.items, i),
            c.verification_status
                .get(i)
                .copied()
                .unwrap_or(VerificationStatus::Unverified),
            ragged(
                &c.verification_methods.offsets,
                &c.verification_methods.items,
                i
            ),
            ragged(&c.subscriptions.offsets, &c.subscriptions.items, i),
            ragged(&c.tags.offsets, &c.tags.items, i),
            ragged(&c.attributes.offsets, &c.attributes.items, i),
        )
    )
}

fn ragged<'a, T>(offsets: &[u32], items: &'a [T], i: usize) -> &'a [T] {
    match (offsets.get(i), offsets.get(i + 1)) {
        (Some(&start), Some(&end)) => items.get(start as usize..end as usize).unwrap_or(&[]),
        _ => &[],
    }
}

/// The generated export glue is unsafe code; it stays in here.
#[allow(unsafe_code)]
mod export {
    use super::Legacy;
    crate::bindings::export!(Legacy with_types_in crate::bindings);
}
