//! The server's settings: defaults, then a TOML file, then `COHORT_*` environment
//! variables, then command-line flags (applied by the caller), each overriding the one
//! before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The embedded store (an SQLite file).
    pub db: PathBuf,
    /// Compiled plugins are cached here; none if absent.
    pub cache_dir: Option<PathBuf>,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Largest JSON body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest plugin or CSV upload accepted, in bytes.
    pub max_upload_bytes: usize,
    /// How often due schedules are run and windows that opened or closed are announced.
    pub tick_seconds: u64,
    /// The directory under which data directories may be granted to plugins over the
    /// API (`POST /v1/plugins/standard?geoip_dir=...`); without it, none may.
    pub data_root: Option<PathBuf>,
    pub webhooks: WebhookConfig,
    pub limits: LimitsConfig,
}

/// Requests per token (see `limits.rs`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests a second each token may make on average; 0 for no limit.
    pub rate_per_second: f64,
    /// Requests a token may make at once after being idle.
    pub burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rate_per_second: 0.0,
            burst: 100,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Events per delivery, at most.
    pub batch: usize,
    /// How long a receiver may take to answer, in milliseconds.
    pub timeout_ms: u64,
    /// The wait before the first retry, doubled after each failure up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// How often to look for new events when there were none, in milliseconds.
    pub poll_ms: u64,
    /// How long a server's right to deliver a webhook lasts, renewed while it delivers:
    /// servers sharing a store deliver each webhook one at a time, and when
    /// the one delivering dies, another resumes this long after. At least twice
    /// `timeout_ms`: renewed once half has gone, it must outlast a slow receiver.
    pub lease_seconds: u64,
    /// Whether webhooks may be delivered to loopback, private, link-local and other
    /// non-public addresses: for a platform that receives events inside its own
    /// network. Off, such a target is refused when the webhook is made and whenever a
    /// name resolves to one.
    pub allow_private_targets: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: PathBuf::from("cohort.db"),
            cache_dir: None,
            log_format: LogFormat::Text,
            max_body_bytes: 1 << 20,
            max_upload_bytes: 256 << 20,
            tick_seconds: 1,
            data_root: None,
            webhooks: WebhookConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            batch: 100,
            timeout_ms: 10_000,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 300_000,
            poll_ms: 250,
            lease_seconds: 30,
            allow_private_targets: false,
        }
    }
}

impl WebhookConfig {
    /// The wait after `attempts` failures in a row.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u64 << attempts.saturating_sub(1).min(20);
        Duration::from_millis(
            self.backoff_initial_ms
                .saturating_mul(factor)
                .min(self.backoff_max_ms),
        )
    }
}

/// A setting that cannot be used, naming where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {problem}")]
pub struct ConfigError {
    pub source_name: String,
    pub problem: String,
}

impl Config {
    /// Defaults overridden by the file at `path`, if given.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let error = |problem: String| ConfigError {
            source_name: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| error(e.to_string()))
    }

    /// Override settings from `COHORT_*` variables, read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError {
                source_name: format!("environment variable {name}"),
                problem: format!("`{value}`: {e}"),
            })
        }
        let set =
            |name: &str, apply: &mut dyn FnMut(&str) -> Result<(), ConfigError>| match var(name) {
                Some(v) => apply(&v),
                None => Ok(()),
            };
        set("COHORT_LISTEN", &mut |v| {
            self.listen = parse("COHORT_LISTEN", v)?;
            Ok(())
        })?;
        set("COHORT_DB", &mut |v| {
            self.db = PathBuf::from(v);
            Ok(())
        })?;
        set("COHORT_CACHE_DIR", &mut |v| {
            self.cache_dir = Some(PathBuf::from(v));
            Ok(())
        })?;
        set("COHORT_LOG_FORMAT", &mut |v| {
            self.log_format = match v {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError {
                        source_name: "environment variable COHORT_LOG_FORMAT".into(),
                        problem: format!("`{v}`: expected `text` or `json`"),
                    });
                }
            };
            Ok(())
        })?;
        set("COHORT_MAX_BODY_BYTES", &mut |v| {
            self.max_body_bytes = parse("COHORT_MAX_BODY_BYTES", v)?;
            Ok(())
        })?;
        set("COHORT_MAX_UPLOAD_BYTES", &mut |v| {
            self.max_upload_bytes = parse("COHORT_MAX_UPLOAD_BYTES", v)?;
            Ok(())
        })?;
        set("COHORT_RATE_LIMIT_PER_SECOND", &mut |v| {
            self.limits.rate_per_second = parse("COHORT_RATE_LIMIT_PER_SECOND", v)?;
            Ok(())
        })?;
        set("COHORT_RATE_LIMIT_BURST", &mut |v| {
            self.limits.burst = parse("COHORT_RATE_LIMIT_BURST", v)?;
            Ok(())
        })?;
        set("COHORT_TICK_SECONDS", &mut |v| {
            self.tick_seconds = parse("COHORT_TICK_SECONDS", v)?;
            Ok(())
        })?;
        set("COHORT_WEBHOOK_BACKOFF_INITIAL_MS", &mut |v| {
            self.webhooks.backoff_initial_ms = parse("COHORT_WEBHOOK_BACKOFF_INITIAL_MS", v)?;
            Ok(())
        })?;
        set("COHORT_DATA_ROOT", &mut |v| {
            self.data_root = Some(PathBuf::from(v));
            Ok(())
        })?;
        set("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", &mut |v| {
            self.webhooks.allow_private_targets = parse("COHORT_WEBHOOK_ALLOW_PRIVATE_TARGETS", v)?;
            Ok(())
        })?;
        set("COHORT_WEBHOOK_LEASE_SECONDS", &mut |v| {
            self.webhooks.lease_seconds = parse("COHORT_WEBHOOK_LEASE_SECONDS", v)?;
            Ok(())
        })?;
        set("COHORT_WEBHOOK_BACKOFF_MAX_MS", &mut |v| {
            self.webhooks.backoff_max_ms = parse("COHORT_WEBHOOK_BACKOFF_MAX_MS", v)?;
            Ok(())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ndb = \"/var/lib/cohort.db\"\n[webhooks]\nbatch = 10\n",
        )
        .expect("write");
        let mut config = Config::load(Some(&path)).expect("load");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.webhooks.batch, 10);
        assert_eq!(
            config.webhooks.timeout_ms, 10_000,
            "unset keys keep defaults"
        );
        config
            .apply_env(|name| (name == "COHORT_LISTEN").then(|| "127.0.0.1:7000".to_string()))
            .expect("env");
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.db, PathBuf::from("/var/lib/cohort.db"));
    }

    #[test]
    fn mistakes_name_their_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cohort.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\nlisten_port = 1\n").expect("write");
        let e = Config::load(Some(&path)).expect_err("unknown key");
        assert!(e.to_string().contains("listen_port"), "{e}");
        let e = Config::default()
            .apply_env(|name| (name == "COHORT_TICK_SECONDS").then(|| "soon".to_string()))
            .expect_err("bad number");
        assert!(e.to_string().contains("COHORT_TICK_SECONDS"), "{e}");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let w = WebhookConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..WebhookConfig::default()
        };
        let waits: Vec<u128> = (1..=6).map(|a| w.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
    }
}
