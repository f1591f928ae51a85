//! Header fields: the raw list (names canonical, values unfolded), and the
//! typed values the server acts on: Via, From/To/Contact (name-addr),
//! CSeq and the numeric headers.

use std::fmt;

use super::cursor::{Cursor, is_token_char, split_commas};
use super::uri::{Host, Uri, parse_hostport};

/// Long names of the compact forms (RFC 3261 §7.3.3 and later RFCs).
const COMPACT: &[(&str, &str)] = &[
    ("i", "call-id"),
    ("m", "contact"),
    ("e", "content-encoding"),
    ("l", "content-length"),
    ("c", "content-type"),
    ("f", "from"),
    ("s", "subject"),
    ("k", "supported"),
    ("t", "to"),
    ("v", "via"),
    ("o", "event"),
    ("u", "allow-events"),
    ("r", "refer-to"),
    ("b", "referred-by"),
    ("x", "session-expires"),
];

/// How well-known headers are written.
const CANONICAL: &[(&str, &str)] = &[
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
    ("www-authenticate", "WWW-Authenticate"),
    ("mime-version", "MIME-Version"),
];

/// The lower-case long name of a header.
#[must_use]
pub fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    COMPACT.iter().find(|(c, _)| *c == lower).map_or(lower, |(_, long)| (*long).to_owned())
}

/// How a header name is printed: `Call-ID`, `CSeq`, else Title-Case.
#[must_use]
pub fn display_name(lower: &str) -> String {
    if let Some((_, d)) = CANONICAL.iter().find(|(l, _)| *l == lower) {
        return (*d).to_owned();
    }
    lower
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// One header field as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Lower-case long name.
    pub name: String,
    /// The value, with folding undone and outer white space trimmed.
    pub value: String,
}

/// The header fields of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// All values of `name` (a long name, any case), in order.
    pub fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = canonical_name(name);
        self.0.iter().filter(move |h| h.name == name).map(|h| h.value.as_str())
    }

    /// The first value of `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// How many times `name` appears.
    #[must_use]
    pub fn count(&self, name: &str) -> usize {
        self.all(name).count()
    }

    /// Every comma-separated element of every `name` header.
    #[must_use]
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.all(name).flat_map(split_commas).filter(|v| !v.is_empty()).collect()
    }

    /// Appends a header.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header { name: canonical_name(name), value: value.into() });
    }
}

/// A header value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {header} header: {reason}")]
pub struct HeaderError {
    /// Which header.
    pub header: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

fn bad(header: &'static str, reason: &'static str) -> HeaderError {
    HeaderError { header, reason }
}

/// `;name[=value]` parameters after a value. Names lower-cased; quoted
/// values unquoted.
pub type Params = Vec<(String, Option<String>)>;

fn parse_params(c: &mut Cursor<'_>, header: &'static str) -> Result<Params, HeaderError> {
    let mut params = Vec::new();
    while c.eat_sep(';') {
        let name = c.token().ok_or_else(|| bad(header, "empty parameter"))?;
        let value = if c.eat_sep('=') {
            if c.peek() == Some('"') {
                Some(c.quoted().ok_or_else(|| bad(header, "unterminated quoted parameter"))?)
            } else {
                // token / host (IPv6 references included).
                let v = c.take_while(|ch| is_token_char(ch) || "[]:".contains(ch));
                if v.is_empty() {
                    return Err(bad(header, "empty parameter value"));
                }
                Some(v.to_owned())
            }
        } else {
            None
        };
        params.push((name.to_ascii_lowercase(), value));
    }
    Ok(params)
}

fn param<'a>(params: &'a Params, name: &str) -> Option<Option<&'a str>> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_deref())
}

/// One Via entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`, ... upper-cased.
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parses every Via entry of one header value.
    ///
    /// # Errors
    /// Anything but `SIP/2.0/TRANSPORT host[:port] *(;param)`.
    pub fn parse_all(value: &str) -> Result<Vec<Self>, HeaderError> {
        split_commas(value).into_iter().map(Self::parse).collect()
    }

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let name = c.token().ok_or_else(|| bad("Via", "no protocol"))?;
        let ok =
            name.eq_ignore_ascii_case("SIP") && c.eat_sep('/') && c.token() == Some("2.0") && c.eat_sep('/');
        if !ok {
            return Err(bad("Via", "not SIP/2.0"));
        }
        let transport = c.token().ok_or_else(|| bad("Via", "no transport"))?.to_ascii_uppercase();
        c.skip_ws();
        let sent_by = c.take_while(|ch| !matches!(ch, ';' | ' ' | '\t'));
        let (host, port) = parse_hostport(sent_by).ok_or_else(|| bad("Via", "bad sent-by"))?;
        let params = parse_params(&mut c, "Via")?;
        c.skip_ws();
        if !c.is_empty() {
            return Err(bad("Via", "trailing characters"));
        }
        Ok(Self { transport, host, port, params })
    }

    /// The `branch` parameter.
    #[must_use]
    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch").flatten()
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact,
/// Route, Refer-To.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted.
    pub display: Option<String>,
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q` ...).
    pub params: Params,
}

impl NameAddr {
    /// Parses one name-addr / addr-spec with its parameters.
    ///
    /// # Errors
    /// Unbalanced quotes or brackets, a malformed URI or parameters.
    pub fn parse(value: &str, header: &'static str) -> Result<Self, HeaderError> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let display = if c.peek() == Some('"') {
            let d = c.quoted().ok_or_else(|| bad(header, "unterminated display name"))?;
            c.skip_ws();
            Some(d)
        } else {
            // *(token LWS) before '<', if there is a '<'.
            let save = c.clone();
            let words = c.take_while(|ch| is_token_char(ch) || ch == ' ' || ch == '\t');
            if c.peek() == Some('<') {
                let w = words.trim();
                (!w.is_empty()).then(|| w.to_owned())
            } else {
                c = save;
                None
            }
        };
        let uri_text = if c.peek() == Some('<') {
            c.bump();
            let inner = c.take_while(|ch| ch != '>');
            if c.bump() != Some('>') {
                return Err(bad(header, "unclosed <"));
            }
            inner
        } else {
            if display.is_some() {
                return Err(bad(header, "display name without <uri>"));
            }
            // addr-spec: the URI ends at ';' (its parameters belong to the header).
            c.take_while(|ch| !matches!(ch, ';' | ' ' | '\t'))
        };
        let uri = Uri::parse(uri_text).map_err(|_| bad(header, "bad URI"))?;
        let params = parse_params(&mut c, header)?;
        c.skip_ws();
        if !c.is_empty() {
            return Err(bad(header, "trailing characters"));
        }
        Ok(Self { display, uri, params })
    }

    /// The `tag` parameter.
    #[must_use]
    pub fn tag(&self) -> Option<&str> {
        param(&self.params, "tag").flatten()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>", self.uri)?;
        for (n, v) in &self.params {
            match v {
                Some(v) if v.chars().all(|c| is_token_char(c) || "[]:".contains(c)) => write!(f, ";{n}={v}")?,
                Some(v) => write!(f, ";{n}=\"{}\"", v.replace('"', "\\\""))?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// The CSeq header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    /// The method, as written (case-sensitive).
    pub method: String,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    ///
    /// # Errors
    /// A number outside 0..2^32 or a missing method.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let digits = c.take_while(|ch| ch.is_ascii_digit());
        let seq = digits.parse::<u32>().map_err(|_| bad("CSeq", "number out of range"))?;
        c.skip_ws();
        let method = c.token().ok_or_else(|| bad("CSeq", "no method"))?.to_owned();
        c.skip_ws();
        if !c.is_empty() {
            return Err(bad("CSeq", "trailing characters"));
        }
        Ok(Self { seq, method })
    }
}

/// A header that is a bare number (`Max-Forwards`, `Content-Length`, `Expires`), at most `max`.
///
/// # Errors
/// Not all digits, or above `max`.
pub fn parse_number(value: &str, header: &'static str, max: u64) -> Result<u64, HeaderError> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(header, "not a number"));
    }
    // Leading zeros are allowed ("0068").
    let v = v.trim_start_matches('0');
    let n = if v.is_empty() { 0 } else { v.parse::<u64>().map_err(|_| bad(header, "too large"))? };
    if n > max {
        return Err(bad(header, "too large"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_white_space_everywhere_parses() {
        let v = Via::parse_all("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").expect("valid");
        assert_eq!((v[0].transport.as_str(), v[0].branch()), ("UDP", Some("390skdjuw")));
        let two = Via::parse_all(
            "SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        )
        .expect("valid");
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].branch(), Some("z9hG4bK30239"));
        let v6 = Via::parse_all("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
            .expect("ok");
        assert_eq!(v6[0].port, None);
    }

    #[test]
    fn empty_via_parameters_are_refused() {
        assert!(Via::parse_all("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(Via::parse_all("SIP/3.0/UDP 192.0.2.15").is_err());
    }

    #[test]
    fn name_addrs_in_all_their_forms() {
        let n =
            NameAddr::parse(r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#, "From")
                .expect("valid");
        assert_eq!(n.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let bare = NameAddr::parse("sip:caller@example.net;tag=134161461246", "From").expect("addr-spec");
        assert_eq!(
            (bare.uri.to_string().as_str(), bare.tag()),
            ("sip:caller@example.net", Some("134161461246"))
        );
        let tokens =
            NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").expect("no LWS before <");
        assert_eq!(tokens.display.as_deref(), Some("caller"));
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#, "To").is_err());
        assert!(NameAddr::parse("<sip:a@b", "To").is_err());
    }

    #[test]
    fn numbers_and_cseq_are_bounded() {
        assert_eq!(parse_number("0068", "Max-Forwards", 255), Ok(68));
        assert!(parse_number("300", "Max-Forwards", 255).is_err());
        assert!(parse_number("-999", "Content-Length", u64::from(u32::MAX)).is_err());
        assert_eq!(CSeq::parse("0009 INVITE").map(|c| c.seq), Ok(9));
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
    }

    #[test]
    fn compact_names_expand() {
        assert_eq!(canonical_name("v"), "via");
        assert_eq!(canonical_name("MaX-fOrWaRdS"), "max-forwards");
        assert_eq!(display_name("call-id"), "Call-ID");
        assert_eq!(display_name("max-forwards"), "Max-Forwards");
    }
}
