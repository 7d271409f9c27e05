//! Staff passwords: what is a password, and its argon2id digest. The console signs
//! members in against these; the CLI sets them.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password taken, in characters. Length is what resists guessing; no
/// rule about character classes, which push people to predictable patterns.
pub const MIN_PASSWORD: usize = 10;
/// The longest, in bytes: argon2 reads every byte, and a huge password would make each
/// sign-in attempt cost the server more.
pub const MAX_PASSWORD: usize = 1024;

/// Why `password` will not do, if it will not.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.trim().is_empty() {
        return Err("the password is blank".into());
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password is shorter than {MIN_PASSWORD} characters"
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("the password is longer than {MAX_PASSWORD} bytes"));
    }
    Ok(())
}

/// argon2id with OWASP's first recommended setting: 19 MiB, two passes, one lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The digest the store keeps: argon2id in the PHC string form, with a random salt
/// and the parameters it was made with.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` is the one `digest` was made from. A digest that cannot be
/// read matches nothing.
pub fn verify_password(password: &str, digest: &str) -> bool {
    PasswordHash::new(digest)
        .is_ok_and(|hash| hasher().verify_password(password.as_bytes(), &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_verifies_its_password_only_and_is_salted() {
        let one = hash_password("correct horse battery").expect("hash");
        let two = hash_password("correct horse battery").expect("hash");
        assert!(one.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{one}");
        assert_ne!(one, two, "a salt of its own each time");
        assert!(verify_password("correct horse battery", &one));
        assert!(verify_password("correct horse battery", &two));
        assert!(!verify_password("correct horse batterY", &one));
        assert!(!verify_password("correct horse battery", "not a digest"));
    }

    #[test]
    fn a_password_is_long_enough_and_not_too_long() {
        assert!(check_password("short").is_err());
        assert!(check_password("          ").is_err());
        assert_eq!(check_password("ten chars!"), Ok(()));
        // Characters, not bytes: ten accented letters are ten characters.
        assert_eq!(check_password("éééééééééé"), Ok(()));
        assert!(check_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
    }
}
