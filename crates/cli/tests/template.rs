//! The plugin author's path, as a third party walks it: copy the template out of the
//! repository, build it on its own for wasm32-wasip2, and run it with `cohort`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_plugin_built_from_the_template_outside_the_workspace_loads_and_runs() {
    let template = repo().join("templates/condition-plugin");
    let work = tempfile::tempdir().expect("tempdir");
    let plugin = work.path().join("my-condition");
    std::fs::create_dir_all(plugin.join("src")).expect("mkdir");
    for file in ["src/lib.rs", "customers.jsonl"] {
        std::fs::copy(template.join(file), plugin.join(file)).expect("copy template");
    }
    // The one edit the guide asks for: point the SDK dependency at this checkout.
    let sdk = repo().join("crates/sdk").canonicalize().expect("sdk path");
    let manifest = std::fs::read_to_string(template.join("Cargo.toml"))
        .expect("template manifest")
        .replace("../../crates/sdk", &sdk.display().to_string());
    std::fs::write(plugin.join("Cargo.toml"), manifest).expect("write manifest");
    // Same dependency versions as the workspace, so the build needs no new downloads.
    std::fs::copy(repo().join("Cargo.lock"), plugin.join("Cargo.lock")).expect("copy lock");

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("template-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&plugin)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "the template does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/my_condition.wasm");

    let cohort = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cohort"))
            .arg("--no-cache")
            .args(args)
            .current_dir(&plugin)
            .output()
            .expect("cohort runs")
    };
    let wasm = wasm.display().to_string();
    let described = cohort(&["describe", &wasm, "--json"]);
    assert!(
        described.status.success(),
        "{}",
        String::from_utf8_lossy(&described.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&described.stdout).expect("JSON");
    assert_eq!(info["id"], "tagged");
    assert_eq!(info["reads"], serde_json::json!(["tags"]));

    let ran = cohort(&[
        "eval",
        &wasm,
        "--config",
        r#"{"tags":["vip"]}"#,
        "--customers",
        "customers.jsonl",
        "--json",
    ]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let verdicts: Vec<String> = String::from_utf8_lossy(&ran.stdout)
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            v["verdict"]["verdict"].as_str().map(str::to_string)
        })
        .collect();
    assert_eq!(verdicts, ["match", "match", "no-match", "no-match"]);

    let refused = cohort(&[
        "eval",
        &wasm,
        "--config",
        r#"{"tag":["vip"]}"#,
        "--customers",
        "customers.jsonl",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown field `tag`"));
}
