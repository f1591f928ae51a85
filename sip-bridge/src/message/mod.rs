//! SIP messages: parse from the wire, print to the wire. Pure.
//!
//! Parsing is in two steps. [`parse`] frames the message (start line,
//! unfolded headers, a body cut to Content-Length) and fails only where no
//! answer is possible or a request is malformed in its start line or
//! framing; the typed headers ([`headers`]) are parsed by whoever needs
//! them, so that a request with one bad header can still be answered 400
//! with its Via, From, To, Call-ID and CSeq echoed.

mod cursor;
pub mod headers;
mod print;
pub mod uri;

pub use headers::{CSeq, Header, HeaderError, Headers, NameAddr, Via};
pub use print::response_to;
pub use uri::{Host, SipUri, Uri};

/// The largest message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 65_535;

/// A request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Refer,
    Notify,
    Subscribe,
    Update,
    Prack,
    Message,
    Publish,
    /// Any other token (case-sensitive, as SIP methods are).
    Extension(String),
}

impl Method {
    /// The method for a token.
    #[must_use]
    pub fn from_token(t: &str) -> Self {
        match t {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "INFO" => Self::Info,
            "REFER" => Self::Refer,
            "NOTIFY" => Self::Notify,
            "SUBSCRIBE" => Self::Subscribe,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other => Self::Extension(other.to_owned()),
        }
    }

    /// The token.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Notify => "NOTIFY",
            Self::Subscribe => "SUBSCRIBE",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Extension(t) => t,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    /// As written, e.g. `SIP/2.0`.
    pub version: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// A message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not a SIP message at all (no end of headers, a header line without
    /// a colon, too large): nothing can be answered.
    #[error("unframeable message: {0}")]
    Framing(&'static str),
    /// A request whose start line or framing is malformed; its headers are
    /// kept so that a 400 can be sent back.
    #[error("bad request: {reason}")]
    BadRequest { reason: String, headers: Headers },
    /// A malformed response: it is dropped.
    #[error("bad response: {0}")]
    BadResponse(&'static str),
}

/// How the bytes after the headers are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A datagram: without Content-Length the body is the rest.
    Datagram,
    /// A byte stream: Content-Length is required (absent means 0).
    Stream,
}

/// Finds where the header section ends: (end of the last header line, start of the body).
fn head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// For a stream transport: the length of the first complete message in
/// `buf` (after any leading CRLF keep-alives), or `None` if more bytes are
/// needed.
///
/// # Errors
/// A Content-Length that cannot be read, or a message larger than allowed.
pub fn stream_message_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let skip = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let Some((head, body_start)) = head_end(&buf[skip..]) else {
        return if buf.len() > MAX_MESSAGE_BYTES { Err(ParseError::Framing("too large")) } else { Ok(None) };
    };
    let head_text = String::from_utf8_lossy(&buf[skip..skip + head]);
    let mut length = 0u64;
    for line in unfold(&head_text).iter().skip(1) {
        if let Some((name, value)) = line.split_once(':')
            && headers::canonical_name(name.trim()) == "content-length"
        {
            length = headers::parse_number(value, "Content-Length", MAX_MESSAGE_BYTES as u64)
                .map_err(|_| ParseError::Framing("bad Content-Length"))?;
        }
    }
    let total = skip + body_start + length as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// Undoes header folding: lines starting with white space continue the one before.
fn unfold(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) && !lines.is_empty() {
            let last = lines.len() - 1;
            lines[last].push(' ');
            lines[last].push_str(line.trim_start());
        } else {
            lines.push(line.to_owned());
        }
    }
    lines
}

/// Parses one message.
///
/// # Errors
/// See [`ParseError`].
pub fn parse(bytes: &[u8], framing: Framing) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::Framing("too large"));
    }
    let skip = bytes.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let bytes = &bytes[skip..];
    let (head, body_start) = match head_end(bytes) {
        Some(end) => end,
        // A datagram is the whole message: one that stops after its last
        // header line has no body (RFC 4475 baddn's archive copy ends so).
        None if framing == Framing::Datagram && bytes.ends_with(b"\n") => (bytes.len(), bytes.len()),
        None => return Err(ParseError::Framing("no end of headers")),
    };
    let text = String::from_utf8_lossy(&bytes[..head]);
    let mut lines = unfold(&text).into_iter();
    let start = lines.next().ok_or(ParseError::Framing("empty"))?;
    let mut headers = Headers::default();
    // (An empty last line is the end of a datagram that had no blank line.)
    for line in lines.filter(|l| !l.is_empty()) {
        // HCOLON = *( SP / HTAB ) ":" SWS
        let (name, value) = line.split_once(':').ok_or(ParseError::Framing("header line without a colon"))?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.chars().all(cursor::is_token_char) {
            return Err(ParseError::Framing("bad header name"));
        }
        headers.push(name, value.trim());
    }
    let rest = &bytes[body_start..];
    let is_response = start.starts_with("SIP/");
    let body = match body(&headers, rest, framing) {
        Ok(body) => body,
        Err(_) if is_response => return Err(ParseError::BadResponse("bad Content-Length")),
        Err(reason) => return Err(ParseError::BadRequest { reason: reason.to_owned(), headers }),
    };
    if is_response {
        let (status, reason) = status_line(&start).ok_or(ParseError::BadResponse("bad status line"))?;
        return Ok(Message::Response(Response { status, reason, headers, body }));
    }
    match request_line(&start) {
        Ok((method, uri, version)) => Ok(Message::Request(Request { method, uri, version, headers, body })),
        Err(reason) => Err(ParseError::BadRequest { reason: reason.to_owned(), headers }),
    }
}

fn body(headers: &Headers, rest: &[u8], framing: Framing) -> Result<Vec<u8>, &'static str> {
    let mut lengths = headers.all("content-length");
    let length = match lengths.next() {
        None if framing == Framing::Datagram => return Ok(rest.to_vec()),
        None => 0,
        Some(v) => headers::parse_number(v, "Content-Length", MAX_MESSAGE_BYTES as u64)
            .map_err(|_| "bad Content-Length")?,
    };
    if lengths.next().is_some() {
        return Err("more than one Content-Length");
    }
    let length = length as usize;
    if length > rest.len() {
        return Err("Content-Length larger than the message");
    }
    // Bytes beyond Content-Length in a datagram are discarded (RFC 3261 §18.3).
    Ok(rest[..length].to_vec())
}

fn request_line(line: &str) -> Result<(Method, Uri, String), &'static str> {
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("request line is not METHOD SP URI SP VERSION");
    };
    if method.is_empty() || !method.chars().all(cursor::is_token_char) {
        return Err("bad method");
    }
    let well_formed_version = version.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        && version[4..].split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if !well_formed_version {
        return Err("bad SIP version");
    }
    let uri = Uri::parse(uri).map_err(|_| "bad Request-URI")?;
    Ok((Method::from_token(method), uri, version.to_owned()))
}

fn status_line(line: &str) -> Option<(u16, String)> {
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    (100..=699).contains(&status).then(|| (status, reason.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
From: <sip:a@127.0.0.1>;tag=1\r\n\
To: <sip:1000@127.0.0.1>\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn a_request_parses_and_prints_back_equal() {
        let Ok(Message::Request(r)) = parse(OPTIONS, Framing::Datagram) else { panic!() };
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.headers.get("call-id"), Some("c1"));
        let printed = r.to_bytes();
        assert_eq!(parse(&printed, Framing::Datagram), Ok(Message::Request(r)));
    }

    #[test]
    fn stream_framing_waits_for_the_whole_body() {
        let mut msg = OPTIONS.to_vec();
        let full = msg.len();
        assert_eq!(stream_message_len(&msg), Ok(Some(full)));
        assert_eq!(stream_message_len(&msg[..full - 3]), Ok(None));
        msg.extend_from_slice(b"\r\n\r\nOPTIONS");
        assert_eq!(stream_message_len(&msg), Ok(Some(full)), "the next message is not part of this one");
    }

    #[test]
    fn content_length_frames_the_body_and_overruns_are_refused() {
        let with_body = |cl: &str| {
            let text = String::from_utf8_lossy(OPTIONS)
                .replace("Content-Length: 0", &format!("Content-Length: {cl}"));
            parse(format!("{text}hello world").as_bytes(), Framing::Datagram)
        };
        let Ok(Message::Request(r)) = with_body("5") else { panic!() };
        assert_eq!(r.body, b"hello");
        assert!(matches!(with_body("99"), Err(ParseError::BadRequest { .. })));
        assert!(matches!(with_body("-1"), Err(ParseError::BadRequest { .. })));
    }

    #[test]
    fn status_lines_are_checked() {
        assert_eq!(status_line("SIP/2.0 200 OK"), Some((200, "OK".into())));
        assert_eq!(status_line("SIP/2.0 100 "), Some((100, String::new())));
        assert_eq!(status_line("SIP/2.0 4294967301 Bigcode"), None);
    }
}
