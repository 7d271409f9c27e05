//! Facts in an operator's words, for explanations.

use crate::time::shown as shown_time;
use crate::{
    Customer, Fields, IpAddress, PayerKind, SubscriptionStatus, Symbol, Value, VerificationStatus,
    symbol_text,
};

/// The facts of `customer` that `reads` names, as a sentence: "country `US`; tags
/// `vip`, `b2b`". What [`Plugin::explain`](crate::Plugin::explain) says unless a
/// plugin says better.
pub fn facts(customer: Customer<'_>, reads: &Fields) -> String {
    let symbols = |list: &[Symbol]| -> String {
        if list.is_empty() {
            "none".into()
        } else {
            list.iter()
                .map(|&s| quoted(s))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut parts: Vec<String> = Vec::new();
    if reads.contains(Fields::COUNTRY) {
        parts.push(format!("country {}", optional(customer.country())));
    }
    if reads.contains(Fields::REGISTRATION_IP) {
        parts.push(format!(
            "registration IP {}",
            customer
                .registration_ip()
                .map_or("none".into(), |ip| format!("`{}`", ip_text(ip)))
        ));
    }
    if reads.contains(Fields::REGISTRATION_PARAMS) {
        let params: Vec<String> = customer
            .registration_params()
            .iter()
            .map(|p| format!("{} = {}", quoted(p.key), quoted(p.value)))
            .collect();
        parts.push(format!("registration parameters {}", list(params)));
    }
    if reads.contains(Fields::PAYERS) {
        let payers: Vec<String> = customer
            .payers()
            .iter()
            .map(|p| {
                let kind = match p.kind {
                    PayerKind::LegalEntity => "legal entity",
                    PayerKind::Individual => "individual",
                    PayerKind::SoleProprietor => "sole proprietor",
                };
                let state = if p.active { "active" } else { "inactive" };
                format!("{state} {kind}")
            })
            .collect();
        parts.push(format!("payers {}", list(payers)));
    }
    if reads.contains(Fields::PROVIDER) {
        parts.push(format!("provider {}", optional(customer.provider())));
    }
    if reads.contains(Fields::AUTH_METHODS) {
        parts.push(format!(
            "sign-in methods {}",
            symbols(customer.auth_methods())
        ));
    }
    if reads.contains(Fields::VERIFICATION_STATUS) {
        let status = match customer.verification_status() {
            VerificationStatus::Unverified => "unverified",
            VerificationStatus::Passed => "passed",
            VerificationStatus::Failed => "failed",
        };
        parts.push(format!("verification {status}"));
    }
    if reads.contains(Fields::VERIFICATION_METHODS) {
        parts.push(format!(
            "verification methods {}",
            symbols(customer.verification_methods())
        ));
    }
    if reads.contains(Fields::SUBSCRIPTIONS) {
        let subscriptions: Vec<String> = customer
            .subscriptions()
            .iter()
            .map(|s| {
                let status = match s.status {
                    SubscriptionStatus::Active => "active",
                    SubscriptionStatus::Suspended => "suspended",
                    SubscriptionStatus::Cancelled => "cancelled",
                    SubscriptionStatus::Pending => "pending",
                };
                let end = s
                    .end
                    .map_or(String::new(), |e| format!(" to {}", shown_time(e)));
                format!(
                    "{} {status} from {}{end}",
                    quoted(s.product),
                    shown_time(s.start)
                )
            })
            .collect();
        parts.push(format!("subscriptions {}", list(subscriptions)));
    }
    if reads.contains(Fields::TAGS) {
        parts.push(format!("tags {}", symbols(customer.tags())));
    }
    if reads.contains(Fields::ATTRIBUTES) {
        let attributes: Vec<String> = customer
            .attributes()
            .iter()
            .map(|a| format!("{} = {}", quoted(a.key), value_text(a.value)))
            .collect();
        parts.push(format!("attributes {}", list(attributes)));
    }
    if reads.contains(Fields::REGISTERED) {
        parts.push(format!(
            "registered {}",
            customer
                .registered()
                .map_or("at no known time".into(), shown_time)
        ));
    }
    if parts.is_empty() {
        return "reads no facts of the customer".into();
    }
    parts.join("; ")
}

/// How a plugin that asks for one value of a set explains itself: "country `US` is
/// not one of `DE`, `FR`". `set` is the set as shown ([`crate::sets::SymbolSet::names`]).
pub fn one_of(what: &str, value: Option<Symbol>, holds: bool, set: &str) -> String {
    match value {
        None => format!("no {what} is given; the rule asks for one of {set}"),
        Some(v) if holds => format!("{what} {} is one of {set}", quoted(v)),
        Some(v) => format!("{what} {} is not one of {set}", quoted(v)),
    }
}

/// How a plugin that asks for any value of a set among a list explains itself:
/// "sign-in methods `phone`, `google` include `google`, one of `facebook`, `google`".
pub fn any_of(what: &str, values: &[Symbol], holds: impl Fn(Symbol) -> bool, set: &str) -> String {
    if values.is_empty() {
        return format!("no {what} are given; the rule asks for one of {set}");
    }
    let shown =
        |list: &mut dyn Iterator<Item = Symbol>| list.map(quoted).collect::<Vec<_>>().join(", ");
    let hits = shown(&mut values.iter().copied().filter(|&v| holds(v)));
    if hits.is_empty() {
        format!(
            "{what} {} include none of {set}",
            shown(&mut values.iter().copied())
        )
    } else {
        format!("{what} include {hits}, one of {set}")
    }
}

/// A symbol's text in backticks, as explanations quote what a platform sent.
pub(crate) fn quoted(symbol: Symbol) -> String {
    match symbol_text(symbol) {
        Some(text) => format!("`{text}`"),
        None => format!("symbol {symbol}"),
    }
}

fn optional(symbol: Option<Symbol>) -> String {
    symbol.map_or("none".into(), quoted)
}

fn list(items: Vec<String>) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// An attribute's value as an explanation shows it: text quoted, numbers and times
/// as written.
pub fn value_text(value: Value) -> String {
    match value {
        Value::Text(s) => quoted(s),
        Value::Integer(n) => n.to_string(),
        Value::Decimal(d) => decimal_text(d.units, d.scale),
        Value::Timestamp(t) => shown_time(t),
    }
}

/// `units` times ten to the minus `scale`, written out: `12.5`, `-0.05`.
pub fn decimal_text(units: i64, scale: u8) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let digits = units.unsigned_abs().to_string();
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

fn ip_text(ip: IpAddress) -> String {
    match ip {
        IpAddress::Ipv4(a) => std::net::Ipv4Addr::from(a).to_string(),
        IpAddress::Ipv6((hi, lo)) => {
            std::net::Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo)).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_out() {
        assert_eq!(decimal_text(125, 1), "12.5");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(42, 0), "42");
    }
}
