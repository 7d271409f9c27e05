//! ISO 3166-1 alpha-2 country codes, for plugins that take countries in their
//! configuration.

use crate::config::Problems;

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted.
const ASSIGNED: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The upper-case form of `code` if it is an assigned ISO 3166-1 alpha-2 code, in any
/// case; `None` otherwise.
pub fn normalize(code: &str) -> Option<String> {
    let upper = code.trim().to_ascii_uppercase();
    ASSIGNED
        .binary_search(&upper.as_str())
        .is_ok()
        .then_some(upper)
}

/// The configured country codes at `path`, upper-cased, sorted and without repeats.
/// An empty list and every unknown code are pushed to `problems`, each unknown code with
/// its index.
pub fn codes(problems: &mut Problems, path: &str, codes: &[String]) -> Vec<String> {
    if codes.is_empty() {
        problems.push(path, "name at least one country");
    }
    let mut valid = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        match normalize(code) {
            Some(code) => valid.push(code),
            None => problems.push(
                format!("{path}/{i}"),
                format!("`{code}` is not an ISO 3166-1 alpha-2 country code"),
            ),
        }
    }
    valid.sort_unstable();
    valid.dedup();
    valid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(ASSIGNED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn codes_are_normalised_and_each_bad_one_named() {
        let mut problems = Problems::new();
        let got = codes(
            &mut problems,
            "/countries",
            &["fr".into(), "XX".into(), "DE".into(), "Fr".into()],
        );
        assert_eq!(got, ["DE", "FR"]);
        let errors = problems.finish(()).expect_err("XX is unknown");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "/countries/1");
        let mut problems = Problems::new();
        codes(&mut problems, "/countries", &[]);
        assert_eq!(
            problems.finish(()).expect_err("empty")[0].path,
            "/countries"
        );
    }

    #[test]
    fn any_case_is_accepted_and_unknown_rejected() {
        assert_eq!(normalize("de").as_deref(), Some("DE"));
        assert_eq!(normalize("Gb").as_deref(), Some("GB"));
        assert_eq!(normalize("XX"), None);
        assert_eq!(normalize("UK"), None);
        assert_eq!(normalize("DEU"), None);
    }
}
