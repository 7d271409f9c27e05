//! `cohort serve` and the commands that set it up: API tokens and the OpenAPI document.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use cohort_host::Limits;
use cohort_server::{Config, LogFormat};
use cohort_store::Role;

use crate::assemble::{self, Stack};
use crate::ops::{StoreArgs, now, print_json, stack, time};

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML configuration file (see README); environment variables `COHORT_*` and these
    /// flags override it
    #[arg(long, env = "COHORT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080 [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Log as JSON lines instead of text
    #[arg(long, value_enum)]
    log_format: Option<Format>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn serve(
    args: ServeArgs,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    config.apply_env(|name| std::env::var(name).ok())?;
    if let Some(db) = &store.db {
        config.db = db.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(format) = args.log_format {
        config.log_format = match format {
            Format::Text => LogFormat::Text,
            Format::Json => LogFormat::Json,
        };
    }
    if config.cache_dir.is_none() {
        config.cache_dir = cache_dir;
    }
    cohort_server::init_logging(config.log_format);
    let Stack { engine, access } =
        assemble::open(&config.db, Limits::default(), config.cache_dir.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(cohort_server::serve(engine, access, config, |addr| {
        // Scripts and tests read the bound address (the port may have been 0).
        println!("listening on http://{addr}");
    }))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token; it is printed once and only its digest is kept
    Create {
        /// A name for the token: the actor the audit history records
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// When the token stops being accepted (RFC 3339, e.g. 2027-01-01T00:00:00Z);
        /// never, if not given
        #[arg(long)]
        expires: Option<chrono::DateTime<chrono::Utc>>,
        /// The only groups the token sees (and only those groups' customers and
        /// history), by id, comma-separated; every group if not given
        #[arg(long, value_delimiter = ',', value_name = "GROUPS")]
        groups: Option<Vec<String>>,
    },
    /// List tokens (names and roles; the tokens themselves are not kept)
    List,
    /// Revoke a token by name
    Revoke { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    ReadOnly,
    Operator,
    Admin,
}

pub fn token(
    cmd: TokenCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let stack = stack(store, cache_dir)?;
    let store_ = stack.access.as_ref();
    match cmd {
        TokenCommand::Create {
            name,
            role,
            expires,
            groups,
        } => {
            let expires = expires.map(|t| t.timestamp());
            let name = cohort_store::check_new_token(&name, expires, now())
                .map_err(|(_, why)| anyhow::anyhow!(why))?;
            if let Some(groups) = &groups {
                stack.engine.check_scope(groups)?;
            }
            let role = Role::from(role);
            let token = cohort_server::auth::new_token()
                .map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
            store_
                .create_token(
                    &name,
                    role,
                    groups.as_deref(),
                    &cohort_server::auth::digest(&token),
                    now(),
                    expires,
                )
                .with_context(|| format!("cannot create token `{name}` (is the name taken?)"))?;
            if store.json {
                print_json(&serde_json::json!({
                    "name": name,
                    "role": role,
                    "expires_at": expires.map(cohort_model::rfc3339::format),
                    "groups": groups,
                    "token": token
                }))?;
            } else {
                println!("{token}");
                eprintln!(
                    "token `{name}` ({}) created; it is shown only now",
                    role.as_str()
                );
            }
        }
        TokenCommand::List => {
            let tokens = store_.tokens()?;
            if store.json {
                print_json(&tokens)?;
            } else {
                for t in tokens {
                    println!(
                        "{:<24} {:<10} {} created {}{}",
                        t.name,
                        t.role.as_str(),
                        t.groups
                            .as_ref()
                            .map_or_else(|| "every group".to_string(), |g| g.join(",")),
                        time(t.created_at),
                        t.revoked_at
                            .map(|r| format!(", revoked {}", time(r)))
                            .or_else(|| t.expires_at.map(|e| {
                                let word = if t.expired(now()) {
                                    "expired"
                                } else {
                                    "expires"
                                };
                                format!(", {word} {}", time(e))
                            }))
                            .unwrap_or_default()
                    );
                }
            }
        }
        TokenCommand::Revoke { name } => {
            anyhow::ensure!(
                store_.revoke_token(&name, now())?,
                "no live token named `{name}`"
            );
            println!("revoked token `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print the OpenAPI document.
pub fn openapi() -> anyhow::Result<ExitCode> {
    println!("{}", cohort_server::openapi().to_pretty_json()?);
    Ok(ExitCode::SUCCESS)
}
