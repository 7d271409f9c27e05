//! The plugin author's path, as a third party walks it: copy the template out of the
//! repository, build it on its own for wasm32-wasip2, and run it with `cohort`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo build` of the plugin in `dir` for wasm32-wasip2, into `target`, as an author
/// would run it (without the workspace's flags).
fn build_plugin(dir: &Path, target: &Path) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs")
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
    let build = build_plugin(&plugin, &target);
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

    let lines = eval_tagged(&cohort, &wasm);
    assert_eq!(verdicts(&lines), ["match", "match", "no-match", "no-match"]);
    // The template says why, and that tags do not run out.
    assert_eq!(lines[1]["explanation"], "tags include `VIP`, one of `vip`");
    assert_eq!(
        lines[2]["explanation"],
        "tags `newsletter` include none of `vip`"
    );
    assert!(lines[..4].iter().all(|l| l["until"].is_null()), "{lines:?}");

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
    assert_eq!(
        info["budget"]["declared"],
        serde_json::json!({}),
        "{info:#}"
    );

    // A budget the source declares reaches the host through the toolchain: the SDK's
    // macro puts it in a custom section of the component's core module.
    let mut source = std::fs::read_to_string(plugin.join("src/lib.rs")).expect("source");
    source.push_str(
        "\ncohort_plugin_sdk::declare_budget!(r#\"{\"memory_mib\": 96, \"fuel_per_customer\": 50000}\"#);\n",
    );
    std::fs::write(plugin.join("src/lib.rs"), source).expect("write source");
    let rebuilt = build_plugin(&plugin, &target);
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let described = cohort(&["describe", &wasm, "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&described.stdout).expect("JSON");
    assert_eq!(
        info["budget"]["declared"],
        serde_json::json!({"memory_mib": 96, "fuel_per_customer": 50000}),
        "{info:#}"
    );
    assert_eq!(info["budget"]["granted"]["memory_mib"], 96);
    assert_eq!(
        verdicts(&eval_tagged(&cohort, &wasm)),
        ["match", "match", "no-match", "no-match"]
    );
}

/// The template's plugin (`wasm`) over its customers with the configuration the guide
/// uses, through `cohort eval --json`: each line it prints.
fn eval_tagged(cohort: &dyn Fn(&[&str]) -> Output, wasm: &str) -> Vec<serde_json::Value> {
    let ran = cohort(&[
        "eval",
        wasm,
        "--config",
        r#"{"tags":["vip"]}"#,
        "--customers",
        "customers.jsonl",
        "--json",
        "--explain",
    ]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    String::from_utf8_lossy(&ran.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn verdicts(lines: &[serde_json::Value]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|v| v["verdict"]["verdict"].as_str())
        .collect()
}

/// componentize-py as `scripts/setup` installs it, unless one is named.
fn componentize_py() -> PathBuf {
    std::env::var_os("COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/python-tools/bin/componentize-py"))
}

#[test]
fn a_python_plugin_built_from_the_template_runs_and_is_compiled_once_per_machine() {
    let template = repo().join("templates/python-condition");
    let work = tempfile::tempdir().expect("tempdir");
    let plugin = work.path().join("my-condition");
    std::fs::create_dir_all(&plugin).expect("mkdir");
    for file in ["tagged.py", "customers.jsonl"] {
        std::fs::copy(template.join(file), plugin.join(file)).expect("copy template");
    }
    // The guide's one build command, from the author's directory.
    let build = Command::new("python3")
        .arg(repo().join("sdk/python/build-plugin"))
        .args(["tagged.py", "-o", "tagged.wasm"])
        .current_dir(&plugin)
        .env("COMPONENTIZE_PY", componentize_py())
        .output()
        .expect("python3 runs");
    assert!(
        build.status.success(),
        "the Python template does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    assert!(
        !plugin.join("__pycache__").exists(),
        "the build writes nothing beside the author's sources"
    );

    let cache = work.path().join("cache");
    let cohort = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cohort"))
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .current_dir(&plugin)
            .output()
            .expect("cohort runs")
    };
    let describe = || {
        let out = cohort(&["describe", "tagged.wasm", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    let first = describe();
    assert_eq!(first["id"], "tagged");
    assert_eq!(first["reads"], serde_json::json!(["tags"]));
    assert_eq!(first["compiled"], "fresh");
    // The build declares a budget sized for Python, which the host grants.
    assert_eq!(
        first["budget"]["declared"]["fuel_per_customer"], 2_000_000,
        "{first}"
    );
    assert_eq!(first["budget"]["granted"]["memory_mib"], 256);
    // A second process takes the compiled plugin from the disk cache.
    assert_eq!(describe()["compiled"], "disk-cache");

    let lines = eval_tagged(&cohort, "tagged.wasm");
    assert_eq!(verdicts(&lines), ["match", "match", "no-match", "no-match"]);
    assert_eq!(
        lines[1]["explanation"],
        "tags `newsletter`, `VIP`; the rule asks for one of `vip`"
    );
    assert!(lines[..4].iter().all(|l| l["until"].is_null()), "{lines:?}");
    let summary = &lines.last().expect("a summary line")["summary"];
    assert_eq!(summary["fuel_per_customer"], 2_000_000, "{summary}");
    assert_eq!(summary["memory_cap_bytes"], 256 << 20, "{summary}");
    assert!(
        summary["fuel_used"].as_u64().is_some_and(|f| f > 0),
        "{summary}"
    );
    assert!(
        summary["peak_memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{summary}"
    );

    let refused = cohort(&[
        "eval",
        "tagged.wasm",
        "--config",
        r#"{"tags":["vip", " "]}"#,
        "--customers",
        "customers.jsonl",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("`/tags/1`: must not be blank"), "{stderr}");
}
