//! Condition "country by GeoIP": the country of the customer's registration IP, looked
//! up in a MaxMind-format database (GeoIP2 / GeoLite2 Country or City), is one of the
//! configured ISO 3166-1 alpha-2 codes.
//!
//! The database is a file in the read-only data directory the operator grants to this
//! plugin (seen as `/data`). An address the database does not cover, or a customer
//! without a registration IP, does not match. A database that is missing, unreadable
//! or fails verification is a configuration error; a lookup that fails (an IPv6
//! address in an IPv4-only database) is "no decision" for that customer — never "no".

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path};

use cohort_plugin_sdk::config::{self, Problems};
use cohort_plugin_sdk::{
    Capability, ConfigError, Customer, Fields, IpAddress, Plugin, PluginInfo, Timestamp, Verdict,
    country, export_plugin,
};
use maxminddb::{PathElement, Reader};
use serde::Deserialize;

/// Where the granted data directory appears.
const DATA_DIR: &str = "/data";
const ISO_CODE: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    countries: Vec<String>,
    /// File name of the database inside the data directory.
    database: String,
}

/// Data records whose answer is kept, at most: a Country database has a few hundred
/// distinct records, a City database can have millions.
const KEPT: usize = 65_536;

struct GeoipCountry {
    countries: Vec<String>,
    reader: Reader<Vec<u8>>,
    /// Whether the record at a data-section offset names a configured country. Many
    /// networks share one record, and decoding a record (a map walked by key) cost
    /// more than finding it; with this, a record is decoded once per instance.
    answers: RefCell<HashMap<usize, bool>>,
}

impl Plugin for GeoipCountry {
    fn describe() -> PluginInfo {
        PluginInfo {
            id: "geoip-country".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The country of the customer's registration IP, by a MaxMind database in the granted data directory, is one of a set.".into(),
            config_schema: r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "countries": {
      "description": "ISO 3166-1 alpha-2 codes, any case",
      "type": "array", "items": { "type": "string", "pattern": "^[A-Za-z]{2}$" }, "minItems": 1
    },
    "database": {
      "description": "file name of a MaxMind Country or City database (.mmdb) in the granted data directory",
      "type": "string", "minLength": 1
    }
  },
  "required": ["countries", "database"],
  "additionalProperties": false
}"#
            .into(),
            reads: Fields::REGISTRATION_IP,
            capabilities: vec![Capability::DataDir],
        }
    }

    fn prepare(json: &str) -> Result<Self, Vec<ConfigError>> {
        let cfg: Config = config::parse(json)?;
        let mut problems = Problems::new();
        let countries = country::codes(&mut problems, "/countries", &cfg.countries);

        let relative = Path::new(&cfg.database);
        let plain = !cfg.database.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            problems.push(
                "/database",
                format!(
                    "`{}` must be a file name inside the data directory, without `..` or a leading `/`",
                    cfg.database
                ),
            );
            return problems.fail();
        }
        let path = Path::new(DATA_DIR).join(relative);
        let reader = match std::fs::read(&path) {
            Err(e) => {
                problems.push(
                    "/database",
                    format!(
                        "cannot read `{}`: {} (grant the plugin a data directory that holds the database)",
                        path.display(),
                        plain_io(&e)
                    ),
                );
                None
            }
            // Verified once here, so that a damaged file is refused when the rule is
            // saved instead of answering "not found" for the addresses it lost.
            Ok(bytes) => match Reader::from_source(bytes).and_then(|r| r.verify().map(|()| r)) {
                Ok(reader) => Some(reader),
                Err(e) => {
                    problems.push(
                        "/database",
                        format!("`{}` is not a sound MaxMind database: {e}", path.display()),
                    );
                    None
                }
            },
        };
        match reader {
            Some(reader) => problems.finish(GeoipCountry {
                countries,
                reader,
                answers: RefCell::new(HashMap::new()),
            }),
            None => problems.fail(),
        }
    }

    fn evaluate(&self, _as_of: Timestamp, customer: Customer<'_>) -> Verdict {
        let Some(ip) = customer.registration_ip().map(ip_addr) else {
            return Verdict::NoMatch;
        };
        let failed = |e| Verdict::Error(format!("GeoIP lookup of {ip} failed: {e}"));
        let found = match self.reader.lookup(ip) {
            Ok(found) => found,
            Err(e) => return failed(e),
        };
        let Some(offset) = found.offset() else {
            return Verdict::NoMatch;
        };
        if let Some(&answer) = self.answers.borrow().get(&offset) {
            return Verdict::from_bool(answer);
        }
        let answer = match found.decode_path::<&str>(&ISO_CODE) {
            Ok(Some(code)) => self
                .countries
                .binary_search_by(|c| c.as_str().cmp(code))
                .is_ok(),
            Ok(None) => false,
            Err(e) => return failed(e),
        };
        let mut answers = self.answers.borrow_mut();
        if answers.len() < KEPT {
            answers.insert(offset, answer);
        }
        Verdict::from_bool(answer)
    }

    /// The database is read once, when the configuration is prepared: an answer
    /// changes only with the customer's address. A new database file is a new
    /// configuration to prepare.
    const TIMELESS: bool = true;

    fn explain(&self, _as_of: Timestamp, customer: Customer<'_>) -> String {
        let wanted: Vec<String> = self.countries.iter().map(|c| format!("`{c}`")).collect();
        let wanted = wanted.join(", ");
        let Some(ip) = customer.registration_ip().map(ip_addr) else {
            return format!("no registration IP is given; the rule asks for one of {wanted}");
        };
        match self
            .reader
            .lookup(ip)
            .and_then(|found| found.decode_path::<&str>(&ISO_CODE))
        {
            Ok(Some(code)) => {
                let is = if self.countries.iter().any(|c| c == code) {
                    "one"
                } else {
                    "not one"
                };
                format!("`{ip}` is in `{code}` by the GeoIP database, {is} of {wanted}")
            }
            Ok(None) => format!("`{ip}` has no country in the GeoIP database"),
            Err(e) => format!("the GeoIP lookup of `{ip}` failed: {e}"),
        }
    }
}

export_plugin!(GeoipCountry);

fn ip_addr(address: IpAddress) -> IpAddr {
    match address {
        IpAddress::Ipv4(n) => IpAddr::V4(Ipv4Addr::from(n)),
        IpAddress::Ipv6((high, low)) => {
            IpAddr::V6(Ipv6Addr::from((u128::from(high) << 64) | u128::from(low)))
        }
    }
}

/// An I/O error in the operator's words: what went wrong, without the sandbox's error
/// number (`os error 44` is WASI's "no such file", not the host's).
fn plain_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "there is no such file".into(),
        std::io::ErrorKind::PermissionDenied => "it may not be read".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        kind => kind.to_string(),
    }
}
