//! Every standard plugin, run through the real host: matches, non-matches, edge cases
//! and bad configuration. One test binary, one module per plugin.

#[path = "../common.rs"]
mod common;

mod attribute;
mod auth_method;
mod country;
mod geoip_country;
mod payer_status;
mod product;
mod provider;
mod registered;
mod registration_param;
mod verification_method;
mod verification_status;

#[test]
fn every_standard_plugin_loads_and_describes_itself_by_its_id() {
    let host = common::host();
    for (id, bytes) in cohort_artifacts::STANDARD {
        let plugin = host.load(bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
        let info = plugin.info();
        assert_eq!(info.id, *id);
        assert_eq!(plugin.contract_version(), "0.3.0");
        assert!(info.reads.iter().count() >= 1, "{id} reads nothing");
        let schema: serde_json::Value =
            serde_json::from_str(&info.config_schema).expect("schema is JSON");
        assert_eq!(schema["type"], "object", "{id}");
        assert_eq!(schema["additionalProperties"], false, "{id}");
    }
}
