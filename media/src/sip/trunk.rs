//! The trunk: where requests for it go, how dialled numbers become SIP
//! URIs, and keeping this server registered with it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voxgate_sip_bridge::message::Uri;
use voxgate_sip_bridge::registration::{Account, Registration, RegistrationEvent, RegistrationOutput};

use super::{DialogTable, Peer, Shared, host_port, rand_u32, sleep_until};
use crate::config::{DialSettings, TrunkSettings};
use voxgate_calls::dial::DialError;

/// Where an outbound call goes: its Request-URI and the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub target: Uri,
    /// The outbound proxy, else the registrar, else the target itself.
    pub hop: Uri,
    /// Over TLS: the hop or the target is `sips:` or names `transport=tls`.
    pub tls: bool,
}

/// Whether `uri` asks for TLS (`sips:`, or `transport=tls`).
pub(super) fn is_tls(uri: &Uri) -> bool {
    uri.as_sip().is_some_and(|s| {
        s.secure
            || s.params
                .iter()
                .any(|(n, v)| n == "transport" && v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("tls")))
    })
}

/// Turns what the API was given (`sip:` URI, or a number or user for the
/// trunk's domain) into a [`Route`].
pub(super) fn route(trunk: &TrunkSettings, to: &str) -> Result<Route, DialError> {
    let to = to.trim();
    let target = if to.starts_with("sip:") || to.starts_with("sips:") {
        Uri::parse(to).map_err(|e| DialError::BadTarget(format!("{to:?}: {e}")))?
    } else {
        let user_ok = !to.is_empty()
            && to.len() <= 64
            && to.chars().all(|c| c.is_ascii_alphanumeric() || "+*#-_.".contains(c));
        if !user_ok {
            return Err(DialError::BadTarget(format!("{to:?} is neither a sip: URI nor a number")));
        }
        let domain = Uri::parse(&trunk.aor).ok().and_then(|a| {
            a.as_sip().map(|s| s.port.map_or_else(|| s.host.to_string(), |p| format!("{}:{p}", s.host)))
        });
        let domain =
            domain.ok_or_else(|| DialError::BadTarget("dialling a number needs trunk.aor".into()))?;
        Uri::parse(&format!("sip:{to}@{domain}")).map_err(|e| DialError::BadTarget(e.to_string()))?
    };
    if target.as_sip().is_none() {
        return Err(DialError::BadTarget(format!("{to:?} is not a sip: URI")));
    }
    let hop = [&trunk.outbound_proxy, &trunk.registrar]
        .into_iter()
        .find(|u| !u.is_empty())
        .and_then(|u| Uri::parse(u).ok())
        .unwrap_or_else(|| target.clone());
    let tls = is_tls(&hop) || is_tls(&target);
    Ok(Route { target, hop, tls })
}

/// A `sip:` URI's host, lower case, without IPv6 brackets.
fn host_of(uri: &Uri) -> Option<String> {
    uri.as_sip().map(|s| s.host.to_string().trim_matches(['[', ']']).to_ascii_lowercase())
}

/// Whether `uri`'s host is one of the trunk's (its AOR's, registrar's or
/// outbound proxy's).
pub(super) fn is_trunk_host(trunk: &TrunkSettings, uri: &Uri) -> bool {
    let Some(host) = host_of(uri) else { return false };
    [&trunk.aor, &trunk.registrar, &trunk.outbound_proxy]
        .into_iter()
        .filter_map(|u| Uri::parse(u).ok())
        .any(|u| host_of(&u).as_deref() == Some(host.as_str()))
}

/// Refuses a route whose target host is neither the trunk's nor on
/// `dial.allowed_hosts`: a tenant cannot make this server call an
/// arbitrary SIP host (toll fraud through a far end's trunk, or a scan of
/// the operator's network).
pub(super) fn check_allowed(
    trunk: &TrunkSettings,
    dial: &DialSettings,
    route: &Route,
) -> Result<(), DialError> {
    let Some(host) = host_of(&route.target) else {
        return Err(DialError::BadTarget(format!("{} is not a sip: URI", route.target)));
    };
    let ip = host.parse::<std::net::IpAddr>().ok();
    let listed = dial.allowed_hosts.iter().any(|entry| match entry.parse::<ipnet::IpNet>() {
        Ok(net) => ip.is_some_and(|ip| net.contains(&ip)),
        Err(_) => entry.trim().eq_ignore_ascii_case(&host),
    });
    if listed || is_trunk_host(trunk, &route.target) {
        Ok(())
    } else {
        Err(DialError::NotAllowed(format!("{host} is not the trunk's and not in dial.allowed_hosts")))
    }
}

/// The trunk's credentials for a call on `route`, and the realm they may
/// answer: only when the call goes to the trunk (through its proxy or
/// registrar, or to one of its hosts), never to another far end, which
/// could otherwise challenge for them.
pub(super) fn credentials(
    trunk: &TrunkSettings,
    route: &Route,
) -> (Option<(String, String)>, Option<String>) {
    let to_trunk = route.hop != route.target || is_trunk_host(trunk, &route.target);
    let credentials = (to_trunk && !trunk.username.is_empty())
        .then(|| (trunk.username.clone(), trunk.password.expose().to_owned()));
    (credentials, Some(trunk.realm.clone()).filter(|r| !r.is_empty()))
}

/// The address of a `sip:` URI's host and port (when none is given, 5061
/// over TLS, else 5060).
pub(super) async fn resolve(uri: &Uri, tls: bool) -> Result<SocketAddr, DialError> {
    let sip = uri.as_sip().ok_or_else(|| DialError::BadTarget(format!("{uri} is not a sip: URI")))?;
    let port = sip.port.unwrap_or(if tls { 5061 } else { 5060 });
    let name = format!("{}:{port}", sip.host.to_string().trim_matches(['[', ']']));
    match tokio::net::lookup_host(&name).await.map(|mut a| a.next()) {
        Ok(Some(addr)) => Ok(addr),
        _ => Err(DialError::Unreachable(name)),
    }
}

/// A connection of ours to the trunk over TLS, its messages served like
/// any connection's until `cancel`.
pub(super) async fn connect(
    shared: &Shared,
    hop: &Uri,
    addr: SocketAddr,
    cancel: CancellationToken,
) -> Result<Peer, super::tls::TlsError> {
    let config = &shared.calls.config;
    let host = hop.as_sip().map(|s| s.host.to_string()).unwrap_or_default();
    let timeout = std::time::Duration::from_secs(u64::from(config.sip.tls_handshake_timeout_s.max(1)));
    let stream = super::tls::connect(&host, addr, &config.trunk.tls_ca, &config.sip, timeout).await?;
    Ok(super::spawn_stream(stream, addr, true, (None, None), &shared.streams, cancel))
}

/// Keeps this server registered with the configured trunk (over TLS when
/// its URIs say so, reconnecting when the connection has closed).
pub(super) async fn register(shared: Arc<Shared>, cancel: CancellationToken) {
    let t = &shared.calls.config.trunk;
    // Validated at load: both are sip: URIs.
    let (Ok(registrar), Ok(aor)) = (Uri::parse(&t.registrar), Uri::parse(&t.aor)) else {
        return;
    };
    let hop = Uri::parse(&t.outbound_proxy).unwrap_or_else(|_| registrar.clone());
    let tls = is_tls(&hop) || is_tls(&registrar);
    let addr = match resolve(&hop, tls).await {
        Ok(addr) => addr,
        Err(e) => {
            tracing::warn!(registrar = %t.registrar, error = %e, "trunk registrar not found");
            return;
        }
    };
    let call_id = format!("reg-{:08x}@voxgate", rand_u32());
    let (tx, mut rx) = mpsc::channel(16);
    if shared.dialogs.send(DialogTable::Open(call_id.clone(), tx)).await.is_err() {
        return;
    }
    let (transport, port) =
        if tls { ("TLS", shared.tls_port.unwrap_or(shared.sip_port)) } else { ("UDP", shared.sip_port) };
    let via_host = host_port(shared.advertised_for(addr), port);
    let user = if t.username.is_empty() { "voxgate" } else { &t.username };
    let contact =
        if tls { format!("sip:{user}@{via_host};transport=tls") } else { format!("sip:{user}@{via_host}") };
    let account = Account {
        registrar: registrar.clone(),
        aor,
        username: t.username.clone(),
        password: t.password.expose().to_owned(),
        expires: t.expires,
    };
    let mut reg =
        Registration::new(std::time::Instant::now(), account, (&contact, transport), &via_host, &call_id);
    let mut peer = Peer::Udp(addr);
    loop {
        while let Some(o) = reg.poll_output() {
            match o {
                RegistrationOutput::Send(bytes) => {
                    if tls && !(matches!(peer, Peer::Tls(..)) && peer.is_open()) {
                        match connect(&shared, &hop, addr, cancel.child_token()).await {
                            Ok(connected) => peer = connected,
                            // Not sent: the registration's own timers try again.
                            Err(e) => {
                                tracing::warn!(registrar = %t.registrar, error = %e, "no TLS to the trunk")
                            }
                        }
                    }
                    peer.send(&shared.socket, bytes);
                }
                RegistrationOutput::Event(RegistrationEvent::Registered { expires }) => {
                    tracing::info!(registrar = %t.registrar, expires, "registered with the trunk");
                }
                RegistrationOutput::Event(RegistrationEvent::Failed { status }) => {
                    tracing::warn!(registrar = %t.registrar, status, "trunk registration failed; trying again in 30 s");
                }
            }
        }
        let next = reg.poll_timeout().map(Instant::from_std);
        tokio::select! {
            () = cancel.cancelled() => return,
            msg = rx.recv() => match msg {
                Some((m, _)) => reg.handle_message(std::time::Instant::now(), &m),
                None => return,
            },
            () = sleep_until(next) => reg.handle_timeout(std::time::Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(aor: &str, proxy: &str, registrar: &str) -> TrunkSettings {
        TrunkSettings {
            aor: aor.into(),
            outbound_proxy: proxy.into(),
            registrar: registrar.into(),
            ..TrunkSettings::default()
        }
    }

    #[test]
    fn numbers_take_the_trunks_domain_and_go_to_its_proxy() {
        let r =
            route(&trunk("sip:voxgate@trunk.test", "sip:127.0.0.1:5070", ""), "+15551234").expect("route");
        assert_eq!(r.target.to_string(), "sip:+15551234@trunk.test");
        assert_eq!(r.hop.to_string(), "sip:127.0.0.1:5070");
        let r = route(&trunk("sip:voxgate@trunk.test:5080", "", "sip:reg.test"), "2000").expect("route");
        assert_eq!(
            (r.target.to_string().as_str(), r.hop.to_string().as_str()),
            ("sip:2000@trunk.test:5080", "sip:reg.test")
        );
    }

    #[test]
    fn only_the_trunks_hosts_and_the_allowed_ones_may_be_dialled() {
        let t = trunk("sip:voxgate@trunk.test", "sip:proxy.trunk.test:5070", "");
        let mut dial = DialSettings::default();
        let check = |dial: &DialSettings, to: &str| check_allowed(&t, dial, &route(&t, to).expect("route"));
        assert!(check(&dial, "+15551234").is_ok(), "a number goes to the trunk's domain");
        assert!(check(&dial, "sip:2000@TRUNK.test").is_ok());
        assert!(check(&dial, "sip:2000@proxy.trunk.test").is_ok());
        for stranger in ["sip:2000@127.0.0.1:5060", "sip:x@10.0.0.5", "sip:x@[::1]", "sip:x@pbx.example"] {
            let refused = check(&dial, stranger);
            assert!(matches!(refused, Err(DialError::NotAllowed(_))), "{stranger}: {refused:?}");
        }
        dial.allowed_hosts = vec!["PBX.example".into(), "192.0.2.0/24".into()];
        assert!(check(&dial, "sip:x@pbx.example").is_ok());
        assert!(check(&dial, "sip:x@192.0.2.44:5062").is_ok());
        assert!(check(&dial, "sip:x@192.0.3.1").is_err());
        assert!(check(&dial, "sip:x@pbx.example.evil.test").is_err(), "the whole name, not a prefix");
        assert!(check(&dial, "sip:x@127.0.0.1").is_err());
    }

    #[test]
    fn the_trunks_credentials_go_only_to_the_trunk() {
        let mut t = trunk("sip:voxgate@trunk.test", "", "");
        t.username = "voxgate".into();
        t.password = serde_json::from_str("\"s3cret\"").expect("a secret");
        let to = |t: &TrunkSettings, uri: &str| credentials(t, &route(t, uri).expect("route"));
        assert!(to(&t, "+15551234").0.is_some(), "a number, to the trunk's host");
        assert!(to(&t, "sip:x@pbx.example").0.is_none(), "an allowed far end is not the trunk");
        t.outbound_proxy = "sip:proxy.trunk.test".into();
        assert!(to(&t, "sip:x@pbx.example").0.is_some(), "through the trunk's proxy, the proxy may ask");
        t.realm = "trunk.test".into();
        assert_eq!(to(&t, "+15551234").1.as_deref(), Some("trunk.test"));
    }

    #[test]
    fn a_sip_uri_without_a_trunk_goes_straight_to_its_host() {
        let r = route(&TrunkSettings::default(), "sip:alice@127.0.0.1:5090").expect("route");
        assert_eq!(r.hop, r.target);
    }

    #[test]
    fn sips_and_transport_tls_routes_go_over_tls() {
        let plain =
            route(&trunk("sip:voxgate@trunk.test", "sip:proxy.trunk.test", ""), "2000").expect("route");
        assert!(!plain.tls);
        for (proxy, to) in [
            ("sips:proxy.trunk.test", "2000"),
            ("sip:proxy.trunk.test;transport=TLS", "2000"),
            ("", "sips:alice@pbx.example"),
            ("", "sip:alice@pbx.example;transport=tls"),
        ] {
            let r = route(&trunk("sip:voxgate@trunk.test", proxy, ""), to).expect("route");
            assert!(r.tls, "{proxy} {to}");
        }
    }

    #[test]
    fn what_cannot_be_dialled_is_refused() {
        let t = trunk("sip:voxgate@trunk.test", "", "");
        for bad in ["", "tel:+1555", "+1 555", "a@b", "sip:", &"9".repeat(65)] {
            assert!(matches!(route(&t, bad), Err(DialError::BadTarget(_))), "{bad:?}");
        }
        assert!(
            matches!(route(&TrunkSettings::default(), "2000"), Err(DialError::BadTarget(_))),
            "no domain"
        );
    }
}
