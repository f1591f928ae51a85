//! URIs: SIP and SIPS parsed in full (RFC 3261 §19.1, IPv6 references per
//! RFC 5118), `tel:` kept as text, and any other well-formed absolute URI
//! recognised by its scheme so that a request to it can get 416.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A host: a domain name or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, as written.
    Domain(String),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (written in brackets).
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::V4(a) => write!(f, "{a}"),
            Self::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parses `host [":" port]`; `None` if malformed.
pub(crate) fn parse_hostport(s: &str) -> Option<(Host, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let addr: Ipv6Addr = rest[..end].parse().ok()?;
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (Host::V6(addr), port)
    } else {
        let (h, p) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (parse_host(h)?, p)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

fn parse_host(h: &str) -> Option<Host> {
    if h.is_empty() {
        return None;
    }
    if let Ok(a) = h.parse::<Ipv4Addr>() {
        return Some(Host::V4(a));
    }
    // hostname = *( domainlabel "." ) toplabel [ "." ]
    let ok = h.split('.').enumerate().all(|(i, label)| {
        let last = i == h.split('.').count() - 1;
        (label.is_empty() && last && i > 0)
            || (!label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-'))
    });
    ok.then(|| Host::Domain(h.to_owned()))
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:`.
    pub secure: bool,
    /// The user part, still %-escaped (a telephone number, a name ...).
    pub user: Option<String>,
    /// The password part, if any (deprecated, kept to print back).
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    /// `;name[=value]` parameters, names lower-cased, values as written.
    pub params: Vec<(String, Option<String>)>,
    /// `?headers`, as written (never applied).
    pub headers: Option<String>,
}

impl SipUri {
    /// A parameter's value (`Some(None)` for a flag such as `;lr`).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_deref())
    }

    /// The user part with %-escapes decoded (lossily), for routing.
    #[must_use]
    pub fn user_decoded(&self) -> Option<String> {
        self.user.as_deref().map(percent_decode)
    }
}

/// Any URI a SIP message may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` / `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966), as written after the colon.
    Tel(String),
    /// Another scheme: recognised, not understood.
    Other { scheme: String, rest: String },
}

/// The URI is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed URI: {0}")]
pub struct UriError(pub String);

impl Uri {
    /// Parses a URI with no surrounding white space or brackets.
    ///
    /// # Errors
    /// No scheme, or a malformed `sip:`/`sips:` URI.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let err = || UriError(s.chars().take(80).collect());
        let (scheme, rest) = s.split_once(':').ok_or_else(err)?;
        let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok || rest.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>') {
            return Err(err());
        }
        let lower = scheme.to_ascii_lowercase();
        match lower.as_str() {
            "sip" | "sips" => parse_sip(lower == "sips", rest).map(Uri::Sip).ok_or_else(err),
            "tel" => Ok(Uri::Tel(rest.to_owned())),
            _ => Ok(Uri::Other { scheme: lower, rest: rest.to_owned() }),
        }
    }

    /// The SIP URI, if this is one.
    #[must_use]
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Self::Sip(u) => Some(u),
            _ => None,
        }
    }
}

fn parse_sip(secure: bool, rest: &str) -> Option<SipUri> {
    // The user part may hold ';', '?', '/' and more (RFC 3261 user-unreserved;
    // RFC 4475 semiuri, intmeth), but an '@' in it is escaped: the first '@'
    // ends it. Headers ('?') come only after the host.
    let (userinfo, after) = match rest.find('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (hostpart, headers) = match after.split_once('?') {
        Some((m, h)) => (m, Some(h.to_owned())),
        None => (after, None),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some("") => return None,
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(user.to_owned()), Some(pw.to_owned())),
            None => (Some(u.to_owned()), None),
        },
    };
    if user.as_deref().is_some_and(|u| !valid_escapes(u)) {
        return None;
    }
    let mut parts = hostpart.split(';');
    let (host, port) = parse_hostport(parts.next()?)?;
    let mut params = Vec::new();
    for p in parts {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (p, None),
        };
        if name.is_empty() || !valid_escapes(name) {
            return None;
        }
        params.push((name.to_ascii_lowercase(), value));
    }
    Some(SipUri { secure, user, password, host, port, params, headers })
}

/// Every '%' is followed by two hex digits.
fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sip(u) => write!(f, "{u}"),
            Self::Tel(t) => write!(f, "tel:{t}"),
            Self::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn sip_uris_parse_and_print_back() {
        for s in [
            "sip:alice@example.com",
            "sips:bob:secret@192.0.2.4:5061;transport=tcp;lr",
            "sip:[2001:db8::10]:5070",
            "sip:user;par=u%40example.net@example.com",
            "sip:+15551234@gw.example.com;user=phone?subject=hi",
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        ] {
            assert_eq!(sip(s).to_string(), s);
        }
    }

    #[test]
    fn user_parts_keep_escapes_and_may_hold_semicolons() {
        let u = sip("sip:sip%3Auser%40example.com@example.com;other-param=summit");
        assert_eq!(u.user.as_deref(), Some("sip%3Auser%40example.com"));
        assert_eq!(u.user_decoded().as_deref(), Some("sip:user@example.com"));
        assert_eq!(u.param("other-param"), Some(Some("summit")));
        assert_eq!(
            sip("sip:user;par=u%40example.net@example.com").user.as_deref(),
            Some("user;par=u%40example.net")
        );
    }

    #[test]
    fn ipv6_hosts_need_brackets_and_the_last_colon_is_inside_them() {
        assert_eq!(sip("sip:[2001:db8::10:5070]").port, None);
        assert_eq!(sip("sip:[2001:db8::10]:5070").port, Some(5070));
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
        assert!(Uri::parse("sip:user@[2001:db8:::192.0.2.1]").is_err());
    }

    #[test]
    fn other_schemes_are_recognised_and_junk_refused() {
        assert_eq!(
            Uri::parse("nobodyknowsthisscheme:totallyopaquecontent"),
            Ok(Uri::Other { scheme: "nobodyknowsthisscheme".into(), rest: "totallyopaquecontent".into() })
        );
        assert!(matches!(Uri::parse("soap.beep://192.0.2.103:3002"), Ok(Uri::Other { .. })));
        assert!(matches!(Uri::parse("tel:+1-555-0100"), Ok(Uri::Tel(_))));
        for bad in [
            "",
            "nocolon",
            "sip:",
            "sip:@host",
            "sip:user@",
            "sip:a@b:port",
            "<sip:a@b>",
            "sip:a@b c",
            "sip:%zz@x",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }
}
