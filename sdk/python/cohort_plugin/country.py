"""ISO 3166-1 alpha-2 country codes, for plugins that take countries in their
configuration."""

from typing import List, Optional

from .config import Problems

# The 249 officially assigned ISO 3166-1 alpha-2 codes. The Rust SDK keeps the same
# table (crates/sdk/src/country.rs); a test of the workspace checks that they agree.
ASSIGNED = frozenset(
    (
        "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW",
        "AX", "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN",
        "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG",
        "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ",
        "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI",
        "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL",
        "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR",
        "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
        "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA",
        "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME",
        "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU",
        "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP",
        "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR",
        "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD",
        "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV",
        "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
        "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE",
        "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
    )
)


def normalize(code: str) -> Optional[str]:
    """The upper-case form of `code` if it is an assigned ISO 3166-1 alpha-2 code, in
    any case; None otherwise."""
    # ASCII only, as the Rust SDK: Unicode upper-casing would turn `ſe` into `SE`.
    trimmed = code.strip()
    if not trimmed.isascii():
        return None
    upper = trimmed.upper()
    return upper if upper in ASSIGNED else None


def codes(problems: Problems, path: str, given: List[str]) -> List[str]:
    """The configured country codes at `path`, upper-cased, sorted and without repeats.
    An empty list and every unknown code are pushed to `problems`, each unknown code
    with its index."""
    if not given:
        problems.push(path, "name at least one country")
    valid = set()
    for i, code in enumerate(given):
        upper = normalize(code)
        if upper is None:
            problems.push(
                f"{path}/{i}", f"`{code}` is not an ISO 3166-1 alpha-2 country code"
            )
        else:
            valid.add(upper)
    return sorted(valid)
