//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use cohort_host::{Host, HostConfig, Limits};
use cohort_model::{Customer, CustomerRecord, Interner};

pub fn host() -> Host {
    host_with(Limits::default())
}

pub fn host_with(limits: Limits) -> Host {
    Host::new(
        HostConfig {
            limits,
            ..HostConfig::default()
        },
        Arc::new(Interner::new()),
    )
    .expect("host starts")
}

/// Customers from JSON objects, interned into the host's table.
pub fn customers(host: &Host, json: &[&str]) -> Vec<Customer> {
    json.iter()
        .map(|j| {
            serde_json::from_str::<CustomerRecord>(j)
                .expect("test customer parses")
                .intern(host.interner())
                .expect("test customer is valid")
        })
        .collect()
}

pub fn with_country(host: &Host, codes: &[&str]) -> Vec<Customer> {
    let json: Vec<String> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.is_empty() {
                format!(r#"{{"id":"{i}"}}"#)
            } else {
                format!(r#"{{"id":"{i}","country":"{c}"}}"#)
            }
        })
        .collect();
    customers(host, &json.iter().map(String::as_str).collect::<Vec<_>>())
}
