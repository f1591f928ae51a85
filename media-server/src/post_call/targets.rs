//! Where post-call requests may go. Webhook and CRM URLs are chosen by
//! tenants, so by default they may reach only public addresses: a name that
//! resolves to loopback, a private or link-local network (a cloud's metadata
//! service at 169.254.169.254, say) is refused, as is such an address
//! written in the URL. `post_call.allow_private_targets` lifts it (a
//! single-tenant server, receivers on the same network, the tests).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Every special-purpose range of the IANA registries (IPv4 and IPv6
/// Special-Purpose Address Registries, RFC 6890 and later) that is not
/// globally reachable, plus multicast and the reserved 240/4. A target in
/// one of them is never a public receiver.
const NOT_PUBLIC: &[&str] = &[
    // IPv4
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // shared address space (carrier-grade NAT)
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local (cloud metadata services)
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation
    "192.31.196.0/24", // AS112-v4
    "192.52.193.0/24", // AMT
    "192.88.99.0/24",  // deprecated 6to4 relay anycast
    "192.168.0.0/16",  // private
    "192.175.48.0/24", // direct delegation AS112
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation
    "203.0.113.0/24",  // documentation
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, and the broadcast address
    // IPv6
    "::/128",         // unspecified
    "::1/128",        // loopback
    "::/96",          // deprecated IPv4-compatible
    "64:ff9b::/96",   // NAT64: reaches any IPv4 address, private ones too
    "64:ff9b:1::/48", // local-use NAT64
    "100::/64",       // discard-only
    "2001::/23",      // IETF protocol assignments (Teredo among them)
    "2001:db8::/32",  // documentation
    "2002::/16",      // 6to4: reaches any IPv4 address
    "3fff::/20",      // documentation
    "5f00::/16",      // segment routing SIDs
    "fc00::/7",       // unique local
    "fe80::/10",      // link-local
    "fec0::/10",      // deprecated site-local
    "ff00::/8",       // multicast
];

static NOT_PUBLIC_NETS: std::sync::LazyLock<Vec<ipnet::IpNet>> = std::sync::LazyLock::new(|| {
    NOT_PUBLIC.iter().map(|n| n.parse().expect("a CIDR of the list above")).collect()
});

/// Whether `ip` is on the public internet.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    // An IPv4 address written as IPv6 (::ffff:10.0.0.1) is that IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    !NOT_PUBLIC_NETS.iter().any(|net| net.contains(&ip))
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a public address (post_call.allow_private_targets)")]
pub struct Refused(pub String);

/// Refuses a URL whose host is a non-public IP address (names are checked
/// when they are resolved, by [`client`]'s resolver).
///
/// # Errors
/// The host is such an address.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), Refused> {
    if allow_private {
        return Ok(());
    }
    let host =
        reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Err(Refused(ip.to_string())),
        _ => Ok(()),
    }
}

/// Resolves names to their public addresses only.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client for webhooks and the CRM: 15 s per request, no redirects
/// (a receiver answers itself), no proxy from the environment, names
/// resolved to public addresses unless `allow_private`.
///
/// # Errors
/// The TLS backend cannot start.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment (HTTPS_PROXY) would reach the target
        // itself, past the address check.
        .no_proxy();
    if allow_private { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) }.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            // The rest of the special-purpose registries.
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "203.0.113.5",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
            "ff02::1",
            "::a00:1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_naming_internal_addresses_are_refused_unless_allowed() {
        assert!(check_url("http://169.254.169.254/latest/meta-data", false).is_err());
        assert!(check_url("https://[::1]:8443/hook", false).is_err());
        assert!(check_url("https://hooks.example.com/x", false).is_ok(), "names are checked when resolved");
        assert!(check_url("http://127.0.0.1:9/hook", true).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let refused = client(false).unwrap().get("http://localhost:9/").send().await.unwrap_err();
        let mut source: Option<&dyn std::error::Error> = Some(&refused);
        let mut said = String::new();
        while let Some(e) = source {
            said.push_str(&e.to_string());
            source = e.source();
        }
        assert!(said.contains("not a public address"), "{said}");
    }
}
