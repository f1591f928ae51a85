//! The HTTP client for requests whose target a tenant chose: agents' HTTP
//! tools, webhooks and the CRM. It sits below both planes, so the
//! pipeline's tools and the control plane's post-call jobs share one rule:
//!
//! - only public addresses, unless the operator allows private ones: an
//!   address in the URL, and every address a name resolves to, is checked
//!   against every special-purpose range of the IANA registries (a cloud's
//!   metadata service at 169.254.169.254, loopback, private networks,
//!   NAT64 and 6to4 prefixes that reach them);
//! - the connection goes to the addresses that were checked (the client's
//!   own resolver returns only those, so a name cannot resolve once to a
//!   public address for the check and again to a private one to connect);
//! - no redirects (a 3xx could point anywhere), no proxy from the
//!   environment (`HTTPS_PROXY` would reach the target past the check);
//! - response bodies are read up to a cap ([`MAX_RESPONSE_BYTES`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The most of a response body that is read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

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
#[error("{0} is not a public address (outbound.allow_private_targets)")]
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

/// Resolves names to their public addresses only; the client connects to
/// exactly these.
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

/// The guarded client: `timeout` per request, no redirects, no proxy from
/// the environment, names resolved to public addresses unless
/// `allow_private`. Send through [`send`] so IP-literal URLs are checked too.
///
/// # Errors
/// The TLS backend cannot start.
pub fn client(allow_private: bool, timeout: Duration) -> reqwest::Result<Guarded> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment (HTTPS_PROXY) would reach the target
        // itself, past the address check.
        .no_proxy();
    let builder = if allow_private { builder } else { builder.dns_resolver(Arc::new(PublicOnly)) };
    Ok(Guarded { http: builder.build()?, allow_private })
}

/// The process's guarded client for `allow_private` (one of two, built on
/// first use: a client reads the system's root certificates, hundreds of
/// files, so it is made once, not per call), 15 s per request unless the
/// request sets its own timeout.
///
/// # Panics
/// The TLS backend cannot start (it always can: rustls with bundled roots).
#[must_use]
pub fn shared(allow_private: bool) -> Guarded {
    static PUBLIC: std::sync::OnceLock<Guarded> = std::sync::OnceLock::new();
    static ANY: std::sync::OnceLock<Guarded> = std::sync::OnceLock::new();
    let cell = if allow_private { &ANY } else { &PUBLIC };
    cell.get_or_init(|| client(allow_private, Duration::from_secs(15)).expect("the HTTP client starts"))
        .clone()
}

/// A client built by [`client`]: cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Guarded {
    http: reqwest::Client,
    allow_private: bool,
}

/// A request through [`Guarded`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target is not public.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The request failed: unreachable, timed out, refused by the resolver.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

impl Error {
    /// The error without the URL (it may carry a token in its query).
    #[must_use]
    pub fn without_url(self) -> Self {
        match self {
            Self::Http(e) => Self::Http(e.without_url()),
            e => e,
        }
    }

    /// What went wrong and what caused it, e.g. "error sending request: ...
    /// not a public address".
    #[must_use]
    pub fn with_causes(&self) -> String {
        let mut said = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            said.push_str(": ");
            said.push_str(&cause.to_string());
            source = cause.source();
        }
        said
    }

    /// Whether the request ran out of time.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Http(e) if e.is_timeout())
    }
}

/// A response, its body read up to [`MAX_RESPONSE_BYTES`].
#[derive(Debug, Clone)]
pub struct Response {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    /// Whether the body went on past the cap (the rest was not read).
    pub truncated: bool,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Guarded {
    /// A POST builder, to send with [`Self::send`].
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.http.post(url)
    }

    /// Sends `request`, refusing an IP-literal URL that is not public, and
    /// reads at most [`MAX_RESPONSE_BYTES`] of the body.
    ///
    /// # Errors
    /// The target is refused, or the request fails.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, Error> {
        let request = request.build()?;
        check_url(request.url().as_str(), self.allow_private)?;
        let response = self.http.execute(request).await?;
        let (status, headers) = (response.status(), response.headers().clone());
        let mut body = Vec::new();
        let mut truncated = false;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            let room = MAX_RESPONSE_BYTES - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body, truncated })
    }
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

    fn said(e: &dyn std::error::Error) -> String {
        let mut source = Some(e);
        let mut said = String::new();
        while let Some(e) = source {
            said.push_str(&e.to_string());
            source = e.source();
        }
        said
    }

    /// A one-connection HTTP server on loopback that answers `response`
    /// to the first request, and says whether a request came.
    async fn one_shot(response: Vec<u8>) -> (String, tokio::task::JoinHandle<bool>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
            let Ok(Ok((mut socket, _))) = accepted else { return false };
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(&response).await;
            true
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_and_a_loopback_literal_are_refused() {
        let guarded = client(false, Duration::from_secs(5)).unwrap();
        let (url, reached) = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        let by_name = url.replace("127.0.0.1", "localhost");
        let refused = guarded.send(guarded.post(&by_name)).await.unwrap_err();
        assert!(said(&refused).contains("not a public address"), "{}", said(&refused));
        let refused = guarded.send(guarded.post(&url)).await.unwrap_err();
        assert!(matches!(refused, Error::Refused(_)), "{refused:?}");
        reached.abort();
        // Allowed, the same target answers.
        let open = client(true, Duration::from_secs(5)).unwrap();
        let (url, reached) = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()).await;
        let response = open.send(open.post(&url)).await.unwrap();
        assert_eq!((response.status.as_u16(), response.text().as_str()), (200, "ok"));
        assert!(reached.await.unwrap());
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_a_large_body_is_cut_at_the_cap() {
        let open = client(true, Duration::from_secs(5)).unwrap();
        let (url, _) = one_shot(
            b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .await;
        let response = open.send(open.post(&url)).await.unwrap();
        assert_eq!(response.status.as_u16(), 302, "the redirect is the answer");
        let big = vec![b'x'; MAX_RESPONSE_BYTES * 4];
        let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
        answer.extend_from_slice(&big);
        let (url, _) = one_shot(answer).await;
        let response = open.send(open.post(&url)).await.unwrap();
        assert_eq!(response.body.len(), MAX_RESPONSE_BYTES);
        assert!(response.truncated);
    }

    #[tokio::test]
    async fn a_proxy_from_the_environment_is_not_used() {
        // A "proxy" that would answer anything; the request must go past it
        // to its target (here refused, as loopback), never to the proxy.
        let (proxy, reached) = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        // SAFETY: this test's process-wide variables; no other test here reads them.
        unsafe {
            std::env::set_var("HTTP_PROXY", &proxy);
            std::env::set_var("http_proxy", &proxy);
        }
        let guarded = client(false, Duration::from_secs(5)).unwrap();
        let refused = guarded.send(guarded.post("http://metadata.internal.invalid/x")).await;
        assert!(refused.is_err());
        assert!(!reached.await.unwrap(), "the request went to the proxy");
    }
}
