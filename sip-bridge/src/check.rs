//! The checks a user agent server makes before it takes a request (RFC 3261
//! §8.2): the version, the mandatory headers and their syntax, the method,
//! the URI scheme, required extensions and the body's type. A request that
//! fails gets the status the RFC names; one that passes comes back with its
//! headers typed.

use crate::message::headers::parse_number;
use crate::message::{CSeq, NameAddr, Request, Uri, Via};
use crate::message::{HeaderError, Method};

/// SIP extensions (option tags) this server supports.
pub const SUPPORTED: &[&str] = &[];

/// The methods this server's user agent handles.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER, NOTIFY";

/// A request refused before any transaction: the status to send and any
/// header the RFC asks for with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    /// Extra headers for the response (`Allow`, `Unsupported`, `Accept`).
    pub headers: Vec<(&'static str, String)>,
}

impl Rejection {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into(), headers: Vec::new() }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl From<HeaderError> for Rejection {
    fn from(e: HeaderError) -> Self {
        // The reason phrase says what was wrong, as RFC 4475 suggests.
        Self::new(400, format!("Bad Request ({e})"))
    }
}

/// A request that passed, with the headers every layer above needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub vias: Vec<Via>,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: CSeq,
    pub max_forwards: Option<u8>,
    pub contacts: Vec<NameAddr>,
}

fn exactly_one<'a>(request: &'a Request, name: &'static str) -> Result<&'a str, Rejection> {
    let mut values = request.headers.all(name);
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v),
        (None, _) => Err(Rejection::new(400, format!("Bad Request (missing {name})"))),
        (Some(_), Some(_)) => Err(Rejection::new(400, format!("Bad Request (more than one {name})"))),
    }
}

/// Checks `request`; see the module documentation.
///
/// # Errors
/// The rejection to send.
pub fn check_request(request: &Request) -> Result<Checked, Rejection> {
    if !request.version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    let mut vias = Vec::new();
    for v in request.headers.all("via") {
        vias.extend(Via::parse_all(v)?);
    }
    if vias.is_empty() {
        return Err(Rejection::new(400, "Bad Request (missing Via)"));
    }
    let from = NameAddr::parse(exactly_one(request, "from")?, "From")?;
    let to = NameAddr::parse(exactly_one(request, "to")?, "To")?;
    let call_id = exactly_one(request, "call-id")?.to_owned();
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err(Rejection::new(400, "Bad Request (bad Call-ID)"));
    }
    let cseq = CSeq::parse(exactly_one(request, "cseq")?)?;
    let max_forwards = match request.headers.count("max-forwards") {
        0 => None,
        1 => Some(parse_number(exactly_one(request, "max-forwards")?, "Max-Forwards", 255)? as u8),
        _ => return Err(Rejection::new(400, "Bad Request (more than one Max-Forwards)")),
    };
    if let Some(expires) = request.headers.get("expires") {
        parse_number(expires, "Expires", u64::from(u32::MAX))?;
    }
    let mut contacts = Vec::new();
    for c in request.headers.list("contact") {
        if c == "*" {
            continue;
        }
        let contact = NameAddr::parse(c, "Contact")?;
        if let Some((_, Some(expires))) = contact.params.iter().find(|(n, _)| n == "expires") {
            parse_number(expires, "Contact", u64::from(u32::MAX))?;
        }
        contacts.push(contact);
    }
    if request.headers.count("content-type") > 1 {
        return Err(Rejection::new(400, "Bad Request (more than one Content-Type)"));
    }

    let allow = |r: Rejection| r.with("Allow", ALLOW);
    if cseq.method != request.method.as_str() {
        return Err(match request.method {
            Method::Extension(_) => allow(Rejection::new(501, "Not Implemented")),
            _ => Rejection::new(400, "Bad Request (CSeq method does not match)"),
        });
    }
    if let Method::Extension(_) = request.method {
        return Err(allow(Rejection::new(501, "Not Implemented")));
    }
    if let Uri::Other { .. } = request.uri {
        return Err(Rejection::new(416, "Unsupported URI Scheme"));
    }
    if !matches!(request.method, Method::Ack | Method::Cancel) {
        let unsupported: Vec<&str> = request
            .headers
            .list("require")
            .into_iter()
            .filter(|tag| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
            .collect();
        if !unsupported.is_empty() {
            return Err(Rejection::new(420, "Bad Extension").with("Unsupported", unsupported.join(", ")));
        }
    }
    if matches!(request.method, Method::Invite | Method::Ack) {
        let sdp = |t: &str| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("application/sdp")
        };
        if !request.body.is_empty() && !request.headers.get("content-type").is_some_and(sdp) {
            return Err(Rejection::new(415, "Unsupported Media Type").with("Accept", "application/sdp"));
        }
        if request.method == Method::Invite && request.headers.count("accept") > 0 {
            let accepted = request.headers.list("accept").into_iter().any(|a| {
                let a = a.split(';').next().unwrap_or("").trim();
                sdp(a) || a == "*/*" || a.eq_ignore_ascii_case("application/*")
            });
            if !accepted {
                return Err(Rejection::new(406, "Not Acceptable"));
            }
        }
    }
    Ok(Checked { vias, from, to, call_id, cseq, max_forwards, contacts })
}
