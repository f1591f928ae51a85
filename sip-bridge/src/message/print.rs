//! Messages to wire bytes, and responses built from the request they answer.

use std::fmt::Write as _;

use super::headers::display_name;
use super::{Headers, Request, Response};

/// Start line, headers (Content-Length always set from the body), body.
fn wire(start_line: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = start_line;
    out.push_str("\r\n");
    for h in &headers.0 {
        if h.name != "content-length" {
            // Infallible: writing to a String.
            let _ = write!(out, "{}: {}\r\n", display_name(&h.name), h.value);
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

impl Request {
    /// The wire form.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        wire(format!("{} {} SIP/2.0", self.method, self.uri), &self.headers, &self.body)
    }
}

impl Response {
    /// The wire form.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        wire(format!("SIP/2.0 {} {}", self.status, self.reason), &self.headers, &self.body)
    }
}

/// A response to a request with these headers (RFC 3261 §8.2.6.2): Via,
/// From, Call-ID and CSeq copied, To copied with `to_tag` added when it has
/// none and the response is not 100.
#[must_use]
pub fn response_to(request: &Headers, status: u16, reason: &str, to_tag: &str) -> Response {
    let mut headers = Headers::default();
    for name in ["via", "from", "to", "call-id", "cseq"] {
        for value in request.all(name) {
            let mut value = value.to_owned();
            if name == "to" && status != 100 && !has_tag(&value) {
                value.push_str(";tag=");
                value.push_str(to_tag);
            }
            headers.push(name, value);
        }
    }
    Response { status, reason: reason.to_owned(), headers, body: Vec::new() }
}

fn has_tag(to: &str) -> bool {
    // The tag is a header parameter: after the closing '>' if there is one.
    let params = to.rfind('>').map_or(to, |i| &to[i..]);
    params.to_ascii_lowercase().split(';').skip(1).any(|p| p.trim_start().starts_with("tag"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_echo_the_request_and_tag_the_to() {
        let mut h = Headers::default();
        h.push("v", "SIP/2.0/UDP a;branch=z9hG4bK1");
        h.push("v", "SIP/2.0/UDP b;branch=z9hG4bK2");
        h.push("f", "<sip:a@x>;tag=9");
        h.push("t", "<sip:b@y;tag=not-a-header-param>");
        h.push("i", "cid");
        h.push("CSeq", "1 INVITE");
        let r = response_to(&h, 404, "Not Found", "abc");
        let text = String::from_utf8(r.to_bytes()).expect("utf8");
        assert!(text.starts_with(
            "SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b"
        ));
        assert!(text.contains("To: <sip:b@y;tag=not-a-header-param>;tag=abc\r\n"), "{text}");
        assert!(text.contains("Call-ID: cid\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"));
        assert!(
            !String::from_utf8(response_to(&h, 100, "Trying", "abc").to_bytes())
                .expect("utf8")
                .contains("abc")
        );
    }
}
