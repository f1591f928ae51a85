//! The server's front door for requests outside any dialog, pure: frame and
//! check each message, answer what needs no call (OPTIONS keep-alives,
//! REGISTER to a server that is not a registrar, requests for dialogs that
//! do not exist), route INVITEs by the dialled user, and refuse the rest
//! with the status RFC 3261 names.

use std::collections::HashMap;

use crate::check::{ALLOW, Checked, check_request};
use crate::message::{self, Framing, Message, Method, ParseError, Request, Response, Uri};

/// What to do with an incoming message.
#[derive(Debug)]
pub enum Action {
    /// Send this back to where the message came from.
    Reply(Response),
    /// Send nothing (a response, an ACK, or bytes that are not SIP).
    Nothing,
    /// An INVITE for `agent`: the call layer takes it from here.
    Invite { request: Box<Request>, checked: Box<Checked>, agent: String },
}

/// Routes dialled users to agents and answers the rest.
#[derive(Debug, Default)]
pub struct Responder {
    /// User part (a number or a name) -> agent.
    routes: HashMap<String, String>,
    tags: u64,
}

impl Responder {
    /// A responder routing `routes` (user -> agent).
    #[must_use]
    pub fn new(routes: HashMap<String, String>) -> Self {
        Self { routes, tags: 0 }
    }

    fn tag(&mut self) -> String {
        self.tags += 1;
        format!("vg{:x}", self.tags)
    }

    fn reply(&mut self, request: &message::Headers, status: u16, reason: &str) -> Response {
        let tag = self.tag();
        message::response_to(request, status, reason, &tag)
    }

    /// Handles one message from the network.
    pub fn handle(&mut self, bytes: &[u8], framing: Framing) -> Action {
        let request = match message::parse(bytes, framing) {
            Ok(Message::Request(r)) => r,
            // Responses belong to client transactions; stray ones are dropped.
            Ok(Message::Response(_)) | Err(ParseError::Framing(_) | ParseError::BadResponse(_)) => {
                return Action::Nothing;
            }
            Err(ParseError::BadRequest { reason, headers }) => {
                if headers.get("via").is_none() {
                    return Action::Nothing;
                }
                return Action::Reply(self.reply(&headers, 400, &format!("Bad Request ({reason})")));
            }
        };
        if request.method == Method::Ack {
            // An ACK is never answered.
            return Action::Nothing;
        }
        let checked = match check_request(&request) {
            Ok(c) => c,
            Err(rejection) => {
                let mut response = self.reply(&request.headers, rejection.status, &rejection.reason);
                for (name, value) in rejection.headers {
                    response.headers.push(name, value);
                }
                return Action::Reply(response);
            }
        };
        match request.method {
            Method::Options => {
                let mut ok = self.reply(&request.headers, 200, "OK");
                ok.headers.push("allow", ALLOW);
                ok.headers.push("accept", "application/sdp");
                Action::Reply(ok)
            }
            Method::Invite => {
                let user = match &request.uri {
                    Uri::Sip(u) => u.user_decoded(),
                    Uri::Tel(number) => Some(number.split(';').next().unwrap_or("").to_owned()),
                    Uri::Other { .. } => None,
                };
                match user.and_then(|u| self.routes.get(&u).cloned()) {
                    Some(agent) => {
                        Action::Invite { request: Box::new(request), checked: Box::new(checked), agent }
                    }
                    None => Action::Reply(self.reply(&request.headers, 404, "Not Found")),
                }
            }
            // In-dialog requests for a dialog this server does not have.
            Method::Bye | Method::Cancel | Method::Info | Method::Refer | Method::Notify => {
                Action::Reply(self.reply(&request.headers, 481, "Call/Transaction Does Not Exist"))
            }
            _ => {
                let mut refused = self.reply(&request.headers, 405, "Method Not Allowed");
                refused.headers.push("allow", ALLOW);
                Action::Reply(refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str) -> Vec<u8> {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{method}\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <{uri}>\r\nCall-ID: c-{method}\r\nCSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn status(action: Action) -> Option<u16> {
        match action {
            Action::Reply(r) => Some(r.status),
            _ => None,
        }
    }

    #[test]
    fn invites_route_by_the_dialled_user() {
        let mut r = Responder::new(HashMap::from([("1000".to_owned(), "demo".to_owned())]));
        match r.handle(&request("INVITE", "sip:1000@127.0.0.1"), Framing::Datagram) {
            Action::Invite { agent, checked, .. } => {
                assert_eq!(agent, "demo");
                assert_eq!(checked.call_id, "c-INVITE");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(status(r.handle(&request("INVITE", "sip:2000@127.0.0.1"), Framing::Datagram)), Some(404));
        assert!(matches!(r.handle(&request("INVITE", "tel:1000"), Framing::Datagram), Action::Invite { .. }));
    }

    #[test]
    fn what_needs_no_call_is_answered_at_the_door() {
        let mut r = Responder::default();
        assert_eq!(status(r.handle(&request("OPTIONS", "sip:1000@127.0.0.1"), Framing::Datagram)), Some(200));
        assert_eq!(status(r.handle(&request("REGISTER", "sip:127.0.0.1"), Framing::Datagram)), Some(405));
        assert_eq!(status(r.handle(&request("BYE", "sip:1000@127.0.0.1"), Framing::Datagram)), Some(481));
        assert!(matches!(
            r.handle(&request("ACK", "sip:1000@127.0.0.1"), Framing::Datagram),
            Action::Nothing
        ));
        assert!(matches!(r.handle(b"SIP/2.0 200 OK\r\n\r\n", Framing::Datagram), Action::Nothing));
        assert!(matches!(r.handle(b"\x16\x03\x01 not sip", Framing::Datagram), Action::Nothing));
    }
}
