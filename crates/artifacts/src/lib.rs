//! The plugins of this repository, compiled from source by `build.rs`.
//!
//! `STANDARD` holds the bytes of every plugin that ships with the product; the
//! `*_PATH` constants name every built component, test plugins included, so that tests
//! can load them from a real file.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
