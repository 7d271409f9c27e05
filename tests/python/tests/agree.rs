//! The standard conditions re-written in Python give exactly the Rust plugins'
//! answers: the same verdicts (match, no match, no decision) over the same customers,
//! across batch boundaries, and the same configuration errors at the same fields.

mod common;

use cohort_host::{Host, PrepareError};
use cohort_model::{Customer, CustomerRecord, Verdict};

/// Verdicts, or the (path, message) of every configuration error.
#[derive(Debug, PartialEq)]
enum Outcome {
    Verdicts(Vec<Verdict>),
    Rejected(Vec<(String, String)>),
}

impl Outcome {
    /// The same outcome with only the paths of configuration errors kept, for errors
    /// whose words come from each language's own parser (JSON syntax, regular
    /// expressions) rather than from the SDK or the plugin.
    fn paths(self) -> Outcome {
        match self {
            Outcome::Rejected(errors) => Outcome::Rejected(
                errors
                    .into_iter()
                    .map(|(path, _)| (path, String::new()))
                    .collect(),
            ),
            verdicts => verdicts,
        }
    }
}

/// Where `python` differs from `rust`, in a line rather than thousands of verdicts.
fn difference(python: &Outcome, rust: &Outcome) -> Option<String> {
    match (python, rust) {
        (Outcome::Verdicts(p), Outcome::Verdicts(r)) => {
            if p.len() != r.len() {
                return Some(format!("{} verdicts against {}", p.len(), r.len()));
            }
            let i = p.iter().zip(r).position(|(p, r)| p != r)?;
            Some(format!("customer {i}: Python {:?}, Rust {:?}", p[i], r[i]))
        }
        (p, r) if p == r => None,
        (Outcome::Verdicts(_), r) => Some(format!("Python decides, Rust {r:?}")),
        (p, Outcome::Verdicts(_)) => Some(format!("Python {p:?}, Rust decides")),
        (p, r) => Some(format!("Python {p:?}, Rust {r:?}")),
    }
}

/// `count` customers whose facts vary from one to the next: with and without a
/// country, and with registration parameters of several names and values.
fn customers(host: &Host, count: usize) -> Vec<Customer> {
    const COUNTRIES: [&str; 7] = ["DE", "FR", "US", "GB", "SE", "", "CN"];
    const SOURCES: [&str; 6] = [
        "partner-42",
        "Partner-7",
        "newsletter",
        "",
        "partner-x",
        "PARTNER-1",
    ];
    (0..count)
        .map(|i| {
            let mut record = serde_json::json!({ "id": format!("c{i}") });
            let country = COUNTRIES[i % COUNTRIES.len()];
            if !country.is_empty() {
                record["country"] = country.into();
            }
            let mut params = serde_json::Map::new();
            if i % 3 != 0 {
                params.insert("fromsite".into(), ["true", "false"][i % 2].into());
            }
            let source = SOURCES[(i / 2) % SOURCES.len()];
            if !source.is_empty() {
                params.insert("utm_source".into(), source.into());
            }
            if i % 11 == 0 {
                params.insert("FromSite".into(), "true".into());
            }
            record["registration_params"] = params.into();
            serde_json::from_value::<CustomerRecord>(record)
                .expect("test customer parses")
                .intern(host.interner())
                .expect("test customer is valid")
        })
        .collect()
}

fn outcome(host: &Host, plugin: &[u8], config: &str, customers: &[Customer]) -> Outcome {
    let plugin = host.load(plugin).expect("plugin loads");
    match plugin.prepare(config, None) {
        Ok(mut condition) => {
            let evaluation = condition.evaluate(1_800_000_000, customers);
            assert!(
                evaluation.failures.is_empty(),
                "{config}: {:?}",
                evaluation.failures
            );
            Outcome::Verdicts(evaluation.verdicts.to_vec())
        }
        Err(PrepareError::Config { errors, .. }) => {
            Outcome::Rejected(errors.into_iter().map(|e| (e.path, e.message)).collect())
        }
        Err(other) => panic!("{config}: {other}"),
    }
}

/// Both plugins over every configuration; `paths_only` lists the configurations whose
/// errors are compared by field only.
fn agree(rust: &[u8], python_path: &str, configs: &[&str], paths_only: &[&str]) {
    let host = common::host();
    let python = std::fs::read(python_path).expect("the Python plugin was built");
    // The same self-description: id, version, words, what it reads, and the same
    // configuration schema (as JSON, whatever its spacing).
    let described = |wasm: &[u8]| {
        let mut info = host.load(wasm).expect("plugin loads").info().clone();
        let schema: serde_json::Value =
            serde_json::from_str(&info.config_schema).expect("the schema is JSON");
        info.config_schema = schema.to_string();
        info
    };
    assert_eq!(
        described(&python),
        described(rust),
        "the descriptions differ"
    );
    // Two and a half batches of 1,024, so that batch boundaries are crossed.
    let customers = customers(&host, 2_600);
    let mut decided = 0;
    for config in configs {
        let mut want = outcome(&host, rust, config, &customers);
        let mut got = outcome(&host, &python, config, &customers);
        if paths_only.contains(config) {
            (want, got) = (want.paths(), got.paths());
        }
        if let Some(difference) = difference(&got, &want) {
            panic!("the Python plugin disagrees on {config}: {difference}");
        }
        if let Outcome::Verdicts(v) = &want {
            // A configuration that matches nobody or everybody would agree by accident.
            assert!(
                v.contains(&Verdict::Match) && v.contains(&Verdict::NoMatch),
                "{config} does not tell the plugins apart"
            );
            decided += 1;
        }
    }
    assert!(decided >= 3, "too few configurations ran");
}

#[test]
fn country_agrees_with_the_rust_plugin() {
    agree(
        cohort_artifacts::COUNTRY,
        cohort_python_plugins::COUNTRY_PATH,
        &[
            r#"{"countries":["DE"]}"#,
            r#"{"countries":["de","Fr"," us "]}"#,
            r#"{"countries":["SE","SE","cn"]}"#,
            r#"{"countries":["XX","de","UK"]}"#,
            r#"{"countries":["ſe"]}"#,
            r#"{"countries":[]}"#,
            r#"{"countries":["DE", 7]}"#,
            r#"{"countries":[1.5, true]}"#,
            r#"{"countries":[true]}"#,
            r#"{"countries":"DE"}"#,
            r#"{"countries":null}"#,
            r#"{"countries":{}}"#,
            r#"{}"#,
            r#"{"contries":["DE"]}"#,
            r#"{"countries":["DE"],"extra":1}"#,
            r#"{"countries":["DE"],"countries":["FR"]}"#,
            r#"{"countries":["DE"]} x"#,
            "nope",
        ],
        &[r#"{"countries":["DE"]} x"#, "nope"],
    );
}

#[test]
fn registration_param_agrees_with_the_rust_plugin() {
    let long = format!(
        r#"{{"name":"utm_source","operator":"matches","pattern":"{}"}}"#,
        "a".repeat(1001)
    );
    agree(
        cohort_artifacts::REGISTRATION_PARAM,
        cohort_python_plugins::REGISTRATION_PARAM_PATH,
        &[
            r#"{"name":"fromsite","operator":"equals","value":"true"}"#,
            r#"{"name":"fromsite","operator":"one-of","values":["true","false"]}"#,
            r#"{"name":"utm_source","operator":"present"}"#,
            r#"{"name":"FromSite","operator":"present"}"#,
            r#"{"name":"utm_source","operator":"matches","pattern":"^partner-[0-9]+$"}"#,
            r#"{"name":"utm_source","operator":"matches","pattern":"(?i)partner"}"#,
            r#"{"name":"utm_source","operator":"one-of","values":["newsletter","Partner-7"]}"#,
            r#"{"name":"fromsite","operator":"present","value":null}"#,
            r#"{"name":" ","operator":"present","value":"a","pattern":"x"}"#,
            r#"{"name":"x","operator":"equals"}"#,
            r#"{"name":"x","operator":"one-of"}"#,
            r#"{"name":"x","operator":"one-of","values":[]}"#,
            r#"{"name":"x","operator":"matches"}"#,
            r#"{"name":"x","operator":"matches","pattern":"(a"}"#,
            &long,
            r#"{"name":"x","operator":"foo"}"#,
            r#"{"name":"x","operator":7}"#,
            r#"{"name":"x","operator":"equals","value":5}"#,
            r#"{"name":"x","operator":"one-of","values":["a",5]}"#,
            r#"{"operator":"present"}"#,
            r#"{"name":"x"}"#,
            r#"{"name":"x","operator":"present","other":1}"#,
            "[]",
        ],
        &[
            r#"{"name":"x","operator":"matches","pattern":"(a"}"#,
            // serde's words for a number where a name belongs are "expected value".
            r#"{"name":"x","operator":7}"#,
            // serde reads a JSON array as a struct's fields in order.
            "[]",
        ],
    );
}

#[test]
fn country_explains_itself_and_says_how_long_it_holds_as_the_rust_plugin_does() {
    let host = common::host();
    let customers = customers(&host, 14);
    let python = std::fs::read(cohort_python_plugins::COUNTRY_PATH).expect("built");
    let told = |wasm: &[u8]| {
        let mut condition = host
            .load(wasm)
            .expect("loads")
            .prepare(r#"{"countries":["de","FR"]}"#, None)
            .expect("prepares");
        let verdicts = condition.evaluate(1_800_000_000, &customers).verdicts;
        let until: Vec<i64> = (0..verdicts.len()).map(|i| verdicts.until(i)).collect();
        let why = condition
            .explain(1_800_000_000, &customers)
            .expect("explains")
            .expect("contract 0.3.0");
        (until, why)
    };
    let (rust, python) = (told(cohort_artifacts::COUNTRY), told(&python));
    assert_eq!(python, rust);
    assert_eq!(rust.0, vec![cohort_model::FOREVER; 14]);
    assert_eq!(rust.1[0], "country `DE` is one of `DE`, `FR`");
    assert_eq!(rust.1[2], "country `US` is not one of `DE`, `FR`");
    assert_eq!(
        rust.1[5],
        "no country is given; the rule asks for one of `DE`, `FR`"
    );
}
