//! The real `cohort` binary on a fresh store of its own, for the CLI's tests.
#![allow(
    dead_code,
    reason = "each test binary that includes these helpers uses some of them"
)]

pub mod browser;
pub mod console;
pub mod http;
pub mod receiver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `cohort` on a store of its own, with a folder of its own for files beside it.
pub struct Cohort {
    _dir: tempfile::TempDir,
    /// What `--db` is given: a file in `dir`, or a PostgreSQL URL.
    pub db: PathBuf,
    pub dir: PathBuf,
}

impl Cohort {
    /// On the embedded store, a file.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("cohort.db");
        Cohort {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            db,
        }
    }

    /// On a fresh PostgreSQL store on the tests' server.
    pub fn on_postgresql() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Cohort {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            db: cohort_store_postgres::scratch::fresh_url().into(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cohort runs")
    }

    /// The command `run` runs, to start in the background.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cohort"));
        command
            .arg("--db")
            .arg(&self.db)
            .arg("--actor")
            .arg("alice")
            .arg("--cache-dir")
            .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"))
            .args(args);
        command
    }

    /// `cohort ARGS` with `input` on standard input (a password, say): exit code,
    /// standard output, standard error.
    pub fn with_stdin(&self, args: &[&str], input: &str) -> (i32, String, String) {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cohort starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write standard input");
        let out = child.wait_with_output().expect("cohort ends");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "cohort {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(1), "cohort {args:?} must fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Write a file in the store's folder; returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).expect("write");
        path.display().to_string()
    }

    /// (customer, state) of a group's memberships, sorted: active ones, or all.
    pub fn members(&self, group: &str, all: bool) -> Vec<(String, String)> {
        let mut args = vec!["--json", "member", "list", group];
        if all {
            args.push("--all");
        }
        let rows: Vec<serde_json::Value> = serde_json::from_str(&self.ok(&args)).expect("JSON");
        let mut out: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["membership"]["customer"]
                        .as_str()
                        .expect("customer")
                        .to_string(),
                    r["state"].as_str().expect("state").to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// A test run on both backends: `test!(name, |c: Cohort| ...)` makes a module `name`
/// with a test on the embedded store (`sqlite`) and one on PostgreSQL (`postgresql`).
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                ($body)(Cohort::new());
            }

            #[test]
            fn postgresql() {
                ($body)(Cohort::on_postgresql());
            }
        }
    };
}
