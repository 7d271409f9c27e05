//! The same groups as SQL over the store's customers table: what a platform would
//! write by hand. GeoIP has no SQL form (a platform would store the looked-up country);
//! groups using it are left out.

use cohort_model::{Condition, Group};
use serde_json::Value;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(v: &Value, key: &str) -> String {
    let items: Vec<String> = v[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(quote).collect())
        .unwrap_or_default();
    format!("({})", items.join(", "))
}

fn any_of(path: &str, v: &Value, key: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM json_each(record, '{path}') WHERE lower(value) IN {})",
        list(v, key)
    )
}

/// A condition as an SQL expression over `record`, as of `as_of`.
pub fn predicate(c: &Condition, as_of: i64) -> Option<String> {
    let negate = c.negate();
    let c = c.plugin()?;
    let v = &c.config;
    let p = match c.plugin.as_str() {
        "country" => format!(
            "upper(json_extract(record, '$.country')) IN {}",
            list(v, "countries")
        ),
        "provider" => format!(
            "json_extract(record, '$.provider') IN {}",
            list(v, "providers")
        ),
        "auth-method" => any_of("$.auth_methods", v, "methods"),
        "verification-method" => any_of("$.verification_methods", v, "methods"),
        "verification-status" => format!(
            "coalesce(json_extract(record, '$.verification_status'), 'unverified') IN {}",
            list(v, "statuses")
        ),
        "payer-status" => format!(
            "EXISTS (SELECT 1 FROM json_each(record, '$.payers') p
               WHERE json_extract(p.value, '$.kind') IN {}
                 AND ({} OR coalesce(json_extract(p.value, '$.active'), 1)))",
            list(v, "kinds"),
            u8::from(v["include_inactive"].as_bool().unwrap_or(false))
        ),
        "product" => format!(
            "EXISTS (SELECT 1 FROM json_each(record, '$.subscriptions') s
               WHERE json_extract(s.value, '$.product') IN {}
                 AND coalesce(json_extract(s.value, '$.status'), 'active') = 'active'
                 AND unixepoch(json_extract(s.value, '$.start')) <= {as_of}
                 AND (json_extract(s.value, '$.end') IS NULL
                      OR unixepoch(json_extract(s.value, '$.end')) > {as_of}))",
            list(v, "products")
        ),
        "registration-param" => {
            let name = v["name"].as_str().unwrap_or_default().replace('"', "");
            let value = format!("json_extract(record, '$.registration_params.\"{name}\"')");
            match v["operator"].as_str() {
                Some("equals") => format!(
                    "{value} = {}",
                    quote(v["value"].as_str().unwrap_or_default())
                ),
                Some("one-of") => format!("{value} IN {}", list(v, "values")),
                _ => format!("{value} IS NOT NULL"),
            }
        }
        _ => return None,
    };
    // A missing field must read as "no", never NULL, before negation.
    let p = format!("coalesce(({p}), 0)");
    Some(if negate { format!("NOT {p}") } else { p })
}

/// The query selecting the ids of a group's matching customers.
pub fn members_query(group: &Group, as_of: i64) -> Option<String> {
    let clauses = group
        .rule
        .all
        .iter()
        .map(|clause| {
            let any = clause
                .any
                .iter()
                .map(|c| predicate(c, as_of))
                .collect::<Option<Vec<_>>>()?;
            Some(format!("({})", any.join(" OR ")))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(format!(
        "SELECT id FROM customers WHERE {}",
        clauses.join(" AND ")
    ))
}
