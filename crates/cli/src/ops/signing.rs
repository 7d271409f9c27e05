//! Signed plugins from the command line: keys, signatures, and the keys a store trusts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use cohort_engine::signing::{self, PluginSignature};
use cohort_engine::{Engine, Provenance};
use cohort_store::TrustedKey;

use super::{StoreArgs, now, open, print_json, time};

/// Where a plugin file's signature is looked for unless another is named: beside it.
pub fn signature_beside(plugin: &Path) -> PathBuf {
    let mut name = plugin.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Read a signature file.
pub fn read_signature(path: &Path) -> anyhow::Result<PluginSignature> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signature `{}`", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a plugin signature", path.display()))
}

/// Write a new secret key to `out` (readable by its owner only, never over another
/// file) and print its public key.
pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let (secret, public) = signing::new_key().map_err(anyhow::Error::msg)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot create `{}` (it must not exist yet)", out.display()))?;
    writeln!(file, "{secret}")?;
    println!("{public}");
    eprintln!(
        "secret key written to `{}`; give operators the public key above (`cohort trust add NAME KEY`)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Sign the plugin `file` with the secret key in `key`, into `out` (beside the file if
/// not given).
pub fn sign(
    engine: &Engine,
    file: &Path,
    key: &Path,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let (info, sha256) = engine.describe_wasm(&wasm)?;
    let secret = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the key `{}`", key.display()))?;
    let signature = signing::sign(&secret, &sha256, &info.id, &info.version)
        .map_err(|e| anyhow::anyhow!("`{}`: {e}", key.display()))?;
    let out = out.unwrap_or_else(|| signature_beside(file));
    std::fs::write(&out, serde_json::to_string_pretty(&signature)? + "\n")
        .with_context(|| format!("cannot write `{}`", out.display()))?;
    println!(
        "signed `{}` {} (sha256 {}) with {}: `{}`",
        info.id,
        info.version,
        &sha256[..12],
        signature.key,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Check the plugin `file` against its signature and the store's trusted keys.
pub fn verify(
    engine: &Engine,
    file: &Path,
    signature: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let (info, sha256) = engine.describe_wasm(&wasm)?;
    let path = signature.unwrap_or_else(|| signature_beside(file));
    let signature = read_signature(&path)?;
    if let Err(e) = signing::verify(&signature, &sha256, &info.id, &info.version) {
        eprintln!("`{}`: {e}", file.display());
        return Ok(ExitCode::FAILURE);
    }
    let key = signing::public_key(&signature.key).map_err(anyhow::Error::msg)?;
    let trusted = engine
        .store()
        .trusted_keys()?
        .into_iter()
        .find(|t| signing::public_key(&t.public_key).is_ok_and(|k| k == key));
    match trusted {
        Some(t) => {
            println!(
                "`{}` {} is signed by `{}` ({}), a key this store trusts",
                info.id, info.version, t.name, signature.key
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "`{}` {} is signed by {}, which this store does not trust",
                info.id, info.version, signature.key
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// How a plugin to add is vouched for: a bundled one is Cohort's own; a file's
/// signature is the one named, or the one beside it if there is one.
pub fn provenance_of(
    plugin: &str,
    signature: Option<PathBuf>,
) -> anyhow::Result<Option<PluginSignature>> {
    if cohort_artifacts::STANDARD
        .iter()
        .any(|(id, _)| *id == plugin)
    {
        return Ok(None);
    }
    let beside = signature_beside(Path::new(plugin));
    match signature {
        Some(path) => Ok(Some(read_signature(&path)?)),
        None if beside.exists() => Ok(Some(read_signature(&beside)?)),
        None => Ok(None),
    }
}

/// The provenance for adding `plugin`, given what [`provenance_of`] read.
pub fn provenance<'a>(plugin: &str, signature: Option<&'a PluginSignature>) -> Provenance<'a> {
    match signature {
        Some(s) => Provenance::Signed(s),
        None if cohort_artifacts::STANDARD
            .iter()
            .any(|(id, _)| *id == plugin) =>
        {
            Provenance::Standard
        }
        None => Provenance::Unsigned,
    }
}

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust a public key (`ed25519:<hex>`, as `cohort plugin keygen` prints it) to
    /// sign plugins, under a name of your choosing
    Add { name: String, key: String },
    /// The keys this store trusts, and whether it requires signed plugins
    List,
    /// Stop trusting a key (plugins it signed stay)
    Remove { name: String },
    /// Require (`on`) or stop requiring (`off`) a trusted signature on every plugin
    /// added from now on (bundled plugins are Cohort's own and need none)
    Require {
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
}

pub fn trust(
    cmd: TrustCommand,
    store: &StoreArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let engine = open(store, cache_dir)?;
    let s = engine.store();
    match cmd {
        TrustCommand::Add { name, key } => {
            cohort_model::check_label(&name, 64)
                .map_err(|e| anyhow::anyhow!("the key's name {e}"))?;
            signing::public_key(&key).map_err(anyhow::Error::msg)?;
            s.trust_key(&TrustedKey {
                name: name.clone(),
                public_key: key.trim().to_string(),
                added_at: now(),
            })?;
            println!("trusting `{name}` to sign plugins");
        }
        TrustCommand::List => {
            let keys = s.trusted_keys()?;
            let required = s.signatures_required()?;
            if store.json {
                print_json(&serde_json::json!({"required": required, "keys": keys}))?;
            } else {
                println!(
                    "signed plugins: {}",
                    if required { "required" } else { "not required" }
                );
                for k in keys {
                    println!(
                        "{:<20} {}  since {}",
                        k.name,
                        k.public_key,
                        time(k.added_at)
                    );
                }
            }
        }
        TrustCommand::Remove { name } => {
            if !s.distrust_key(&name)? {
                eprintln!("no trusted key `{name}`");
                return Ok(ExitCode::FAILURE);
            }
            println!("no longer trusting `{name}`");
        }
        TrustCommand::Require { setting } => {
            let on = setting == "on";
            s.require_signatures(on)?;
            println!(
                "{}",
                if on {
                    "plugins added from now on must be signed by a trusted key"
                } else {
                    "plugins may be added unsigned"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
