//! Signed plugins from the command line, against the real binary: keys, signatures,
//! trusted keys, and a store that requires them.

mod common;

use common::Cohort;

/// A plugin file that is no standard plugin, in the test's directory.
fn plugin_file(c: &Cohort) -> String {
    let wasm = std::fs::read(cohort_artifacts::HOSTILE_PATH).expect("the hostile plugin");
    let path = c.file("vendor.wasm", "");
    std::fs::write(&path, wasm).expect("write");
    path
}

/// A key made by `cohort plugin keygen`: the secret key's file and the public key.
fn keygen(c: &Cohort, name: &str) -> (String, String) {
    let path = c.file(name, "");
    std::fs::remove_file(&path).expect("keygen makes the file itself");
    let public = c
        .ok(&["plugin", "keygen", "--out", &path])
        .trim()
        .to_string();
    assert!(public.starts_with("ed25519:"), "{public}");
    (path, public)
}

#[test]
fn a_store_that_requires_signatures_takes_only_plugins_its_keys_signed() {
    let c = Cohort::new();
    let plugin = plugin_file(&c);
    let (secret, public) = keygen(&c, "vendor.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is its owner's only");
    }
    let again = c.fails(&["plugin", "keygen", "--out", &secret]);
    assert!(again.contains("must not exist yet"), "{again}");

    c.ok(&["trust", "require", "on"]);
    let unsigned = c.fails(&["plugin", "add", &plugin]);
    assert!(unsigned.contains("requires plugins signed"), "{unsigned}");
    // Cohort's own plugins need no signature.
    c.ok(&["plugin", "add", "country"]);

    // Signed, by a key the store does not trust yet.
    let signed = c.ok(&["plugin", "sign", &plugin, "--key", &secret]);
    assert!(signed.contains("signed `hostile`"), "{signed}");
    let untrusted = c.fails(&["plugin", "verify", &plugin]);
    assert!(untrusted.contains("does not trust"), "{untrusted}");
    let refused = c.fails(&["plugin", "add", &plugin]);
    assert!(
        refused.contains(&public) && refused.contains("does not trust"),
        "{refused}"
    );

    // Trusted: verified, added with the signature beside it, and listed as its.
    c.ok(&["trust", "add", "vendor", &public]);
    let verified = c.ok(&["plugin", "verify", &plugin]);
    assert!(verified.contains("signed by `vendor`"), "{verified}");
    c.ok(&["plugin", "add", &plugin]);
    let listed = c.ok(&["plugin", "list"]);
    let line = |id: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in {listed}"))
            .to_string()
    };
    assert!(line("hostile").contains("signed by: vendor"), "{listed}");
    assert!(line("country").contains("signed by: standard"), "{listed}");

    // The same component with a section added is another component: the signature
    // does not hold for it.
    let mut tampered = std::fs::read(&plugin).expect("read");
    tampered.extend_from_slice(&[0x00, 0x05, 0x04, b'n', b'o', b't', b'e']);
    let other = c.file("tampered.wasm", "");
    std::fs::write(&other, tampered).expect("write");
    let sig = format!("{plugin}.sig");
    let mismatch = c.fails(&["plugin", "add", &other, "--signature", &sig]);
    assert!(
        mismatch.contains("does not match this component"),
        "{mismatch}"
    );
    let mismatch = c.fails(&["plugin", "verify", &other, "--signature", &sig]);
    assert!(mismatch.contains("does not match"), "{mismatch}");

    // Signed by someone else: refused; once the vendor's key is no longer trusted, its
    // plugin stays but cannot be added again.
    let (stranger, _) = keygen(&c, "stranger.key");
    let theirs = c.file("theirs.sig", "");
    c.ok(&[
        "plugin", "sign", &plugin, "--key", &stranger, "--out", &theirs,
    ]);
    let refused = c.fails(&["plugin", "add", &plugin, "--signature", &theirs]);
    assert!(refused.contains("does not trust"), "{refused}");
    c.ok(&["trust", "remove", "vendor"]);
    assert!(c.ok(&["plugin", "list"]).contains("signed by: vendor"));
    c.fails(&["plugin", "add", &plugin]);
    c.ok(&["trust", "require", "off"]);
    let unsigned = c.file("unsigned.wasm", "");
    std::fs::copy(&plugin, &unsigned).expect("copy");
    c.ok(&["plugin", "add", &unsigned]);
    let trust = c.ok(&["trust", "list"]);
    assert!(trust.contains("not required"), "{trust}");
}

#[test]
fn a_signed_plugin_is_uploaded_with_its_signature_over_http() {
    use common::http::{Api, Server, expect, read, token};
    use reqwest::StatusCode;
    use sha2::{Digest, Sha256};

    let c = Cohort::new();
    let plugin = plugin_file(&c);
    let (secret, public) = keygen(&c, "vendor.key");
    c.ok(&["plugin", "sign", &plugin, "--key", &secret]);
    c.ok(&["trust", "add", "vendor", &public]);
    c.ok(&["trust", "require", "on"]);
    let admin = token(&c, "root", "admin");
    let server = Server::start(&c, &[]);
    let api = Api::new(&server, Some(&admin));
    let wasm = std::fs::read(&plugin).expect("read");
    let path = format!("/v1/plugins?sha256={}", hex::encode(Sha256::digest(&wasm)));
    let upload = |signature: Option<&str>| {
        let mut r = api
            .request("POST", &path)
            .header("content-type", "application/wasm")
            .body(wasm.clone());
        if let Some(s) = signature {
            r = r.header("Cohort-Plugin-Signature", s);
        }
        r.send().expect("upload")
    };
    let (status, problem) = read(upload(None));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .expect("type")
            .ends_with("untrusted-plugin"),
        "{problem}"
    );
    let (status, _) = read(upload(Some("not json")));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let signature: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{plugin}.sig")).expect("sig"))
            .expect("json");
    expect(upload(Some(&signature.to_string())), StatusCode::CREATED);
    let listed = expect(api.get("/v1/plugins"), StatusCode::OK);
    let hostile = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["id"] == "hostile")
        .expect("listed");
    assert_eq!(hostile["signer"], "vendor");
    assert_eq!(hostile["signer_key"], public.as_str());
}
