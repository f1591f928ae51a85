//! Where post-call requests may go. Webhook and CRM URLs are chosen by
//! tenants, so by default they may reach only public addresses: a name that
//! resolves to loopback, a private or link-local network (a cloud's metadata
//! service at 169.254.169.254, say) is refused, as is such an address
//! written in the URL. `post_call.allow_private_targets` lifts it (a
//! single-tenant server, receivers on the same network, the tests).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is on the public internet.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // Shared address space (carrier-grade NAT), RFC 6598.
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
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
/// (a receiver answers itself), names resolved to public addresses unless
/// `allow_private`.
///
/// # Errors
/// The TLS backend cannot start.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none());
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
