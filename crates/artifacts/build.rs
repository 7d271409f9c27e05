//! Builds every guest crate of the workspace for wasm32-wasip2 and emits a constant per
//! artifact, so that no `.wasm` is ever committed and tests always run the plugins built
//! from the source beside them.
//!
//! All guests are built by one nested `cargo build`, in a target directory of their
//! own (the outer build holds the lock on the main one), so their shared dependencies
//! compile once.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// (constant name, package, shipped with the product?)
const GUESTS: &[(&str, &str, bool)] = &[
    ("COUNTRY", "cohort-plugin-country", true),
    ("GEOIP_COUNTRY", "cohort-plugin-geoip-country", true),
    (
        "REGISTRATION_PARAM",
        "cohort-plugin-registration-param",
        true,
    ),
    ("PAYER_STATUS", "cohort-plugin-payer-status", true),
    ("PROVIDER", "cohort-plugin-provider", true),
    ("AUTH_METHOD", "cohort-plugin-auth-method", true),
    (
        "VERIFICATION_STATUS",
        "cohort-plugin-verification-status",
        true,
    ),
    (
        "VERIFICATION_METHOD",
        "cohort-plugin-verification-method",
        true,
    ),
    ("PRODUCT", "cohort-plugin-product", true),
    ("ATTRIBUTE", "cohort-plugin-attribute", true),
    ("REGISTERED", "cohort-plugin-registered", true),
    ("HOSTILE", "cohort-plugin-hostile", false),
    ("LEGACY", "cohort-plugin-legacy", false),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("crates/artifacts lives two levels below the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("guests");

    for watched in [
        "wit",
        "crates/sdk",
        "plugins",
        "tests/hostile",
        "tests/legacy",
        "Cargo.lock",
        // The guest profile, which the plugins are built with, is the workspace's.
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    require_target();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // The outer build's flags are for the host target; the guests get their own.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to start cargo for the guest build");
    assert!(
        status.success(),
        "building the wasm plugins failed: {status}"
    );

    let mut generated = String::new();
    let mut shipped = Vec::new();
    for (name, package, ships) in GUESTS {
        let file = target_dir
            .join(TARGET)
            .join(PROFILE)
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            file.exists(),
            "the guest build did not produce {}",
            file.display()
        );
        let path = file.display().to_string();
        writeln!(generated, "/// Path of the built `{package}` component.").ok();
        writeln!(generated, "pub const {name}_PATH: &str = {path:?};").ok();
        if *ships {
            writeln!(generated, "/// The built `{package}` component.").ok();
            writeln!(
                generated,
                "pub const {name}: &[u8] = include_bytes!({path:?});"
            )
            .ok();
            shipped.push((name, package));
        }
    }
    writeln!(
        generated,
        "/// Every plugin shipped with the product, by the id it describes itself with."
    )
    .ok();
    writeln!(generated, "pub const STANDARD: &[(&str, &[u8])] = &[").ok();
    for (name, package) in shipped {
        // Standard plugins are named `cohort-plugin-<id>`; the host's tests check that
        // each describes itself with that id.
        let id = package.trim_start_matches("cohort-plugin-");
        writeln!(generated, "    ({id:?}, {name}),").ok();
    }
    writeln!(generated, "];").ok();
    std::fs::write(out_dir.join("artifacts.rs"), generated).expect("write artifacts.rs");
}

/// Fail early with the fix, rather than with rustc's "can't find crate for `core`".
fn require_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("failed to run rustc --print sysroot");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let lib = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    assert!(
        lib.exists(),
        "the {TARGET} target is not installed: run `rustup target add {TARGET}` (or scripts/setup)"
    );
}
