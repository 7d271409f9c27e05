//! Condition plugins written in Python against `sdk/python`, compiled into components
//! by `build.rs`, and tests that run them through the real host (`tests/`).
//!
//! Each `*_PATH` constant names a built component. They are built once per build of
//! this crate, so every test of a run shares them, and the host's compile cache shares
//! their compiled code.

include!(concat!(env!("OUT_DIR"), "/python_plugins.rs"));
