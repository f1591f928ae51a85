//! The sockets. Today: one UDP socket whose datagrams go through the
//! [`Responder`]; replies go back to the address the request came from
//! (symmetric response routing, RFC 3581 style), so a reply never goes to
//! a host a message merely names in its Via.

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::message::{Framing, MAX_MESSAGE_BYTES, Request};
use crate::responder::{Action, Responder};

/// An INVITE for an agent, handed to the call layer.
#[derive(Debug)]
pub struct IncomingInvite {
    pub request: Request,
    pub from: SocketAddr,
    pub agent: String,
}

/// Serves `socket` until `cancel` fires.
///
/// # Errors
/// The socket failing to receive.
pub async fn serve_udp(
    socket: UdpSocket,
    mut responder: Responder,
    invites: mpsc::Sender<IncomingInvite>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE_BYTES + 1];
    loop {
        let (n, from) = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => r?,
        };
        match responder.handle(std::time::Instant::now(), from, &buf[..n], Framing::Datagram) {
            Action::Nothing => {}
            Action::Reply(response) => {
                if let Err(e) = socket.send_to(&response.to_bytes(), from).await {
                    tracing::debug!(%from, error = %e, "SIP reply not sent");
                }
            }
            Action::Invite { request, agent, .. } => {
                let _ = invites.try_send(IncomingInvite { request: *request, from, agent });
            }
        }
    }
}
