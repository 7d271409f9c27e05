//! Builds the Python plugins beside this file with the SDK's own build command
//! (`sdk/python/build-plugin`, which runs componentize-py), as a plugin author would,
//! and emits a constant with the path of each component. Nothing built is committed.
//!
//! componentize-py comes from `scripts/setup`, which installs it pinned under
//! `target/python-tools`; one on `PATH` or in `COMPONENTIZE_PY` is used otherwise.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, the plugin's module, relative to this crate)
const PLUGINS: &[(&str, &str)] = &[
    ("COUNTRY", "country/country.py"),
    (
        "REGISTRATION_PARAM",
        "registration_param/registration_param.py",
    ),
    ("SDK_CHECKS", "sdk_checks/sdk_checks.py"),
];

fn main() {
    let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = crate_dir
        .parent()
        .and_then(Path::parent)
        .expect("tests/python lives two levels below the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    // The plugins' sources, not the tests beside them: editing a test rebuilds nothing.
    for watched in ["wit", "sdk/python"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for (_, module) in PLUGINS {
        let dir = Path::new(module).parent().unwrap_or(Path::new(module));
        println!("cargo:rerun-if-changed={}", crate_dir.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=COMPONENTIZE_PY");

    let tool = env::var_os("COMPONENTIZE_PY")
        .map(PathBuf::from)
        .or_else(|| {
            let pinned = root.join("target/python-tools/bin/componentize-py");
            pinned.exists().then_some(pinned)
        });
    // componentize-py runs one build on one core for a few seconds: build them side
    // by side.
    let builds: Vec<_> = PLUGINS
        .iter()
        .map(|(name, module)| {
            let output = out_dir.join(format!("{}.wasm", name.to_ascii_lowercase()));
            let mut cmd = Command::new("python3");
            cmd.arg(root.join("sdk/python/build-plugin"))
                .arg(crate_dir.join(module))
                .arg("--output")
                .arg(&output);
            if let Some(tool) = &tool {
                cmd.env("COMPONENTIZE_PY", tool);
            }
            let child = cmd
                .spawn()
                .expect("failed to start python3 for sdk/python/build-plugin");
            (name, module, output, child)
        })
        .collect();

    let mut generated = String::new();
    for (name, module, output, mut child) in builds {
        let status = child.wait().expect("wait for build-plugin");
        assert!(
            status.success(),
            "building {module} failed ({status}): is componentize-py installed? Run scripts/setup."
        );
        writeln!(
            generated,
            "/// Path of the component built from `{module}`."
        )
        .ok();
        writeln!(
            generated,
            "pub const {name}_PATH: &str = {:?};",
            output.display().to_string()
        )
        .ok();
    }
    std::fs::write(out_dir.join("python_plugins.rs"), generated).expect("write python_plugins.rs");
}
