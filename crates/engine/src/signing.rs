//! Signed plugins: an Ed25519 signature over a component's digest and its declared id
//! and version, by a key the operator trusts.
//!
//! What is signed is the line `cohort plugin signature v1`, then the component's
//! sha256 in hex, its id and its version, each on a line of its own: a signature of one
//! plugin cannot pass for another's, nor for another version of it. Keys are written
//! `ed25519:` and 64 hex digits (the public key), and kept as 64 hex digits (the
//! secret key, in a file only its owner reads).

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// How a public key is written.
const PREFIX: &str = "ed25519:";

/// A plugin's signature, as `cohort plugin sign` writes it beside the component (the
/// id, version and digest are there for people; what counts is checked against the
/// component itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSignature {
    pub id: String,
    pub version: String,
    pub sha256: String,
    /// The signer's public key, `ed25519:<hex>`.
    pub key: String,
    /// The signature, in hex.
    pub signature: String,
}

fn message(sha256: &str, id: &str, version: &str) -> Vec<u8> {
    format!("cohort plugin signature v1\n{sha256}\n{id}\n{version}\n").into_bytes()
}

/// A new secret key (hex) and its public key (`ed25519:<hex>`).
pub fn new_key() -> Result<(String, String), String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness for a key: {e}"))?;
    let key = SigningKey::from_bytes(&secret);
    Ok((
        hex::encode(secret),
        format!("{PREFIX}{}", hex::encode(key.verifying_key().as_bytes())),
    ))
}

/// The public key (`ed25519:<hex>`) of a secret key written in hex.
fn signing_key(secret_hex: &str) -> Result<SigningKey, String> {
    let bytes: [u8; 32] = hex::decode(secret_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("a secret key is 64 hex digits, as `cohort plugin keygen` writes it")?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A public key written `ed25519:<hex>`.
pub fn public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = text
        .trim()
        .strip_prefix(PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("`{text}` is not a public key: `ed25519:` and 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("`{text}` is not a public key: {e}"))
}

/// Sign the plugin with `sha256`, `id` and `version` with the secret key `secret_hex`.
pub fn sign(
    secret_hex: &str,
    sha256: &str,
    id: &str,
    version: &str,
) -> Result<PluginSignature, String> {
    let key = signing_key(secret_hex)?;
    let signature = key.sign(&message(sha256, id, version));
    Ok(PluginSignature {
        id: id.to_string(),
        version: version.to_string(),
        sha256: sha256.to_string(),
        key: format!("{PREFIX}{}", hex::encode(key.verifying_key().as_bytes())),
        signature: hex::encode(signature.to_bytes()),
    })
}

/// Whether `signature` is its key's over the plugin with `sha256`, `id` and `version`;
/// why not otherwise.
pub fn verify(
    signature: &PluginSignature,
    sha256: &str,
    id: &str,
    version: &str,
) -> Result<(), String> {
    let key = public_key(&signature.key)?;
    let bytes: [u8; 64] = hex::decode(signature.signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("a signature is 128 hex digits")?;
    key.verify(
        &message(sha256, id, version),
        &Signature::from_bytes(&bytes),
    )
    .map_err(|_| {
        format!(
            "the signature by {} does not match this component ({id} {version}, sha256 {sha256}): \
                 it was changed after it was signed, or the signature is another plugin's",
            signature.key
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_plugin_only() {
        let (secret, public) = new_key().expect("key");
        let s = sign(&secret, "ab12", "country", "1.0.0").expect("signed");
        assert_eq!(s.key, public);
        assert!(verify(&s, "ab12", "country", "1.0.0").is_ok());
        for (sha, id, version) in [
            ("ab13", "country", "1.0.0"),
            ("ab12", "countries", "1.0.0"),
            ("ab12", "country", "1.0.1"),
        ] {
            assert!(
                verify(&s, sha, id, version).is_err(),
                "{sha} {id} {version}"
            );
        }
        let (_, other) = new_key().expect("key");
        let forged = PluginSignature { key: other, ..s };
        assert!(verify(&forged, "ab12", "country", "1.0.0").is_err());
        assert!(public_key("ed25519:00").is_err());
        assert!(sign("not hex", "ab12", "country", "1.0.0").is_err());
    }
}
