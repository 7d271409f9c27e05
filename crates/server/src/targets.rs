//! Where the server may send requests of its own: webhook deliveries.
//!
//! An API caller chooses a webhook's URL, and the server then posts to it from inside
//! its own network. Unless the deployment allows it (`webhooks.allow_private_targets`,
//! for a platform that receives events on its private network), a target must be a
//! public address: not loopback, private, link-local, unspecified, shared, multicast or
//! reserved, in any spelling (`2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`). A name is
//! checked when it is resolved, at every delivery, so that it cannot later be pointed
//! inside; deliveries follow no redirects. Credentials in a URL are refused, and a
//! refused URL is never echoed back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::StatusCode;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::problem::Problem;

/// A webhook URL the server may deliver to.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, Problem> {
    let refuse =
        |why: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-url", why).at("url");
    // The text is not repeated: it may carry a password.
    let url = Url::parse(raw).map_err(|e| refuse(format!("the webhook URL is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(format!(
            "webhooks are `http` or `https`, not `{}`",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "the webhook URL carries credentials; receivers check the `Cohort-Signature` \
             header instead"
                .into(),
        ));
    }
    if allow_private {
        return Ok(url);
    }
    let private = |host: &str| {
        refuse(format!(
            "`{host}` is not a public address; a deployment that delivers inside its own \
             network sets `webhooks.allow_private_targets`"
        ))
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(private(&ip.to_string())),
        Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(private(&ip.to_string())),
        Some(url::Host::Domain(name)) if is_local_name(name) => Err(private(name)),
        None => Err(refuse("the webhook URL names no host".into())),
        Some(_) => Ok(url),
    }
}

/// A name that resolves to this machine by convention.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                    // "this network", 0.0.0.0 among it
        || a == 10                              // private
        || a == 127                             // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 169 && b == 254)               // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))  // private
        || (a == 192 && b == 0 && c == 0)       // protocol assignments
        || (a == 192 && b == 0 && c == 2)       // documentation
        || (a == 192 && b == 168)               // private
        || (a == 198 && (18..20).contains(&b))  // benchmarking
        || (a == 198 && b == 51 && c == 100)    // documentation
        || (a == 203 && b == 0 && c == 113)     // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Addresses that carry an IPv4 address are as public as it is: mapped
    // (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6] == [0; 6] {
        return s[6] != 0 && is_public_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    !((s[0] & 0xfe00) == 0xfc00          // unique local
        || (s[0] & 0xffc0) == 0xfe80     // link-local
        || (s[0] & 0xffc0) == 0xfec0     // site-local, deprecated
        || (s[0] & 0xff00) == 0xff00     // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0)) // Teredo
}

/// Resolves names as the system does, then keeps only public addresses: a name that
/// points inside the network resolves to nothing.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("`{host}` resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_inside_address_is_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:c0a8:0101::1]/",
            "http://100.64.0.1/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(check_url(url, false).is_err(), "{url}");
            assert!(check_url(url, true).is_ok(), "{url} when allowed");
        }
        for url in [
            "https://8.8.8.8/x",
            "http://[2606:4700::1]/",
            "https://hooks.example.com/",
        ] {
            assert!(check_url(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn credentials_are_refused_and_not_repeated() {
        let p = check_url("https://u:secret@example.com/", true).expect_err("refused");
        assert!(!format!("{p:?}").contains("secret"));
        let p = check_url("https://u:secret@exa mple.com/", true).expect_err("refused");
        assert!(!format!("{p:?}").contains("secret"));
    }
}
