//! Phone calls over SIP: the signalling sockets (UDP, TCP, and TLS when a
//! certificate is configured), and one task per call.
//!
//! The signalling loop parses each datagram once: messages of a dialog in
//! progress (by Call-ID) go to that dialog's task; everything else goes to
//! the [`Responder`] (OPTIONS, refusals, routing).
//!
//! - [`inbound`]: a caller's INVITE answered, then its media.
//! - [`outbound`]: calls we place through the trunk ([`SipDialer`]).
//! - [`media`]: the RTP socket and the call core of a call of either kind.
//! - [`trunk`]: registration with the trunk, and where outbound requests go.
//! - [`tls`]: SIP over TLS's certificate, reread on SIGHUP.
//!
//! A call's media is SRTP as its [`SrtpMode`] says (the agent's, else the
//! trunk's for calls we place, else `rtp.srtp`); SDES puts the keys in the
//! SDP, so SRTP is only ever set up over TLS signalling ([`media_security`]).

mod consult;
mod inbound;
mod media;
mod outbound;
mod rtp_socket;
mod tls;
mod trunk;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voxgate_calls::agent::SrtpMode;
use voxgate_sip_bridge::call::dialogs;
use voxgate_sip_bridge::message::{self, Framing, Message};
use voxgate_sip_bridge::responder::{Action, Responder};
use voxgate_sip_bridge::sdp::Srtp;

use crate::calls::CallContext;
pub use outbound::SipDialer;

/// SIP could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    #[error("binding SIP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading number routes: {0}")]
    Routes(#[from] voxgate_calls::agent::DirectoryError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why a call's signalling or media stopped short.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum CallFailed {
    #[error("signalling closed")]
    SignallingClosed,
    #[error("ended before the ACK: {0}")]
    EndedBeforeAck(String),
    #[error("the ACK carried no SDP answer")]
    NoAnswerInAck,
    #[error(transparent)]
    Sdp(#[from] voxgate_sip_bridge::sdp::SdpError),
    #[error(transparent)]
    Start(#[from] crate::error::StartError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where a message came from, and so where its answers go.
#[derive(Debug, Clone)]
enum Peer {
    Udp(SocketAddr),
    /// A TCP connection: its address and its writer.
    Tcp(SocketAddr, mpsc::Sender<Vec<u8>>),
    /// A TLS connection: its address and its writer.
    Tls(SocketAddr, mpsc::Sender<Vec<u8>>),
}

impl Peer {
    fn addr(&self) -> SocketAddr {
        match self {
            Self::Udp(a) | Self::Tcp(a, _) | Self::Tls(a, _) => *a,
        }
    }

    /// Whether what goes to this peer is private (SDES keys may be sent).
    fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(..))
    }

    /// Sends in order without waiting (a full UDP buffer or TCP queue
    /// drops the message; retransmission covers UDP).
    fn send(&self, socket: &UdpSocket, bytes: Vec<u8>) {
        let result = match self {
            Self::Udp(a) => socket.try_send_to(&bytes, *a).map(|_| ()).map_err(|e| e.to_string()),
            Self::Tcp(_, tx) | Self::Tls(_, tx) => tx.try_send(bytes).map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::debug!(peer = %self.addr(), error = %e, "SIP send failed");
        }
    }

    /// Whether messages can still go this way (a connection still open).
    fn is_open(&self) -> bool {
        match self {
            Self::Udp(_) => true,
            Self::Tcp(_, tx) | Self::Tls(_, tx) => !tx.is_closed(),
        }
    }

    fn framing(&self) -> Framing {
        match self {
            Self::Udp(_) => Framing::Datagram,
            Self::Tcp(..) | Self::Tls(..) => Framing::Stream,
        }
    }
}

/// What every call task shares.
struct Shared {
    /// The configuration, the agent, the store.
    calls: Arc<CallContext>,
    socket: Arc<UdpSocket>,
    /// The address written into Contact, Via and SDP ...
    advertised: IpAddr,
    /// ... always (a public address or a specific listen address), or only
    /// when no route to the caller says better.
    explicit: bool,
    sip_port: u16,
    /// SIP over TLS's port, when it listens.
    tls_port: Option<u16>,
    /// Where stream connections' messages go (ours to trunks too).
    streams: Streams,
    /// Opens and closes the dialogs the signalling loop routes to.
    dialogs: mpsc::Sender<DialogTable>,
}

/// The SRTP a call under `mode` may use, its signalling being TLS or not:
/// keys never go in SDP over plain signalling, so there SRTP is off, and a
/// call that requires it cannot be made (`None`: refuse it, 488).
fn media_security(mode: SrtpMode, tls: bool) -> Option<Srtp> {
    match (mode, tls) {
        (SrtpMode::Require, false) => None,
        (_, false) => Some(Srtp::Off),
        (mode, true) => Some(mode.into()),
    }
}

/// A message for a dialog of ours, and who sent it (where a refusal goes:
/// a Call-ID alone does not make the sender the call's peer).
type Signal = (Message, Peer);

/// Changes to the signalling loop's table of dialogs (by Call-ID).
enum DialogTable {
    Open(String, mpsc::Sender<Signal>),
    Close(String),
}

impl Shared {
    /// The address a caller at `peer` should send to: the configured one,
    /// or the local interface the system routes to `peer` through (so a
    /// phone on the LAN gets the LAN address, one on this machine loopback).
    fn advertised_for(&self, peer: SocketAddr) -> IpAddr {
        if self.explicit {
            return self.advertised;
        }
        let any: SocketAddr = if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        std::net::UdpSocket::bind(any)
            .and_then(|s| s.connect(peer).and_then(|()| s.local_addr()))
            .map_or(self.advertised, |a| a.ip())
    }
}

/// Binds the SIP socket (so a bad address fails start-up) and returns the
/// task that serves it until `cancel`, and the [`SipDialer`] for outbound calls.
///
/// # Errors
/// The socket cannot be bound.
pub async fn start(
    calls: Arc<CallContext>,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>, SipDialer), SipError> {
    let config = &calls.config;
    let bind_error = |addr| move |source| SipError::Bind { addr, source };
    let socket = UdpSocket::bind(config.sip.udp_listen).await.map_err(bind_error(config.sip.udp_listen))?;
    let local = socket.local_addr()?;
    // SIP's two transports share one port: asked for any port on both, TCP takes the one UDP got.
    let same = config.sip.tcp_listen == config.sip.udp_listen && local.port() != config.sip.udp_listen.port();
    let tcp_listen = if same { local } else { config.sip.tcp_listen };
    let tcp = tokio::net::TcpListener::bind(tcp_listen).await.map_err(bind_error(tcp_listen))?;
    // SIP over TLS, when a certificate is configured (a bad one fails start-up).
    let tls = match tls::Certificate::load(&config.sip)? {
        Some(cert) => {
            let addr = config.sip.tls_listen;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error(addr))?;
            Some((listener, cert))
        }
        None => None,
    };
    let tls_port = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?.map(|a| a.port());
    crate::calls::prepare(config).await?;
    let (advertised, explicit) = match config.sip.public_address {
        Some(ip) => (ip, true),
        None if !local.ip().is_unspecified() => (local.ip(), true),
        // Listening on every interface: per caller, the interface that reaches it.
        None => (IpAddr::V4(Ipv4Addr::LOCALHOST), false),
    };
    let (dialogs, dialogs_rx) = mpsc::channel(256);
    let (stream_tx, stream_rx) = mpsc::channel(256);
    let streams = Streams { incoming: stream_tx, open: Arc::default(), config: config.sip.clone() };
    let shared = Arc::new(Shared {
        calls: calls.clone(),
        socket: Arc::new(socket),
        advertised,
        explicit,
        sip_port: local.port(),
        tls_port,
        streams: streams.clone(),
        dialogs,
    });
    if let Some((listener, cert)) = tls {
        tracing::info!(addr = %listener.local_addr()?, "SIP over TLS listening");
        tokio::spawn(tls::reload_on_sighup(cert.clone(), config.sip.clone(), cancel.clone()));
        tokio::spawn(accept_streams(listener, Some(cert), streams.clone(), cancel.clone()));
    }
    tokio::spawn(accept_streams(tcp, None, streams, cancel.clone()));
    if !shared.calls.config.trunk.registrar.is_empty() {
        tokio::spawn(trunk::register(shared.clone(), cancel.clone()));
    }
    let dialer = SipDialer::new(shared.clone(), cancel.clone());
    let routes = watch_routes(shared.calls.agents.clone(), cancel.clone()).await?;
    Ok((local, tokio::spawn(signalling(shared, routes, stream_rx, dialogs_rx, cancel)), dialer))
}

/// SIP over TCP connections open, in all and per source address: a host
/// cannot hold the listener with connections it never uses.
#[derive(Debug, Default)]
struct TcpConnections(std::sync::Mutex<(usize, HashMap<IpAddr, usize>)>);

/// One connection's place; given back when it closes.
struct TcpPlace(Arc<TcpConnections>, IpAddr);

impl TcpConnections {
    fn open(self: &Arc<Self>, from: IpAddr, limits: &crate::config::SipConfig) -> Option<TcpPlace> {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (all, by_source) = &mut *counts;
        let mine = by_source.get(&from).copied().unwrap_or(0);
        if *all >= limits.tcp_max_connections as usize || mine >= limits.tcp_max_per_source as usize {
            return None;
        }
        *all += 1;
        by_source.insert(from, mine + 1);
        Some(TcpPlace(self.clone(), from))
    }
}

impl Drop for TcpPlace {
    fn drop(&mut self) {
        let mut counts = self.0.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (all, by_source) = &mut *counts;
        *all = all.saturating_sub(1);
        if let Some(n) = by_source.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_source.remove(&self.1);
            }
        }
    }
}

/// Where stream connections' messages go, and how many may be open.
#[derive(Clone)]
struct Streams {
    incoming: mpsc::Sender<(Vec<u8>, Peer)>,
    open: Arc<TcpConnections>,
    config: crate::config::SipConfig,
}

impl Streams {
    /// How long a connection from outside may send nothing.
    fn idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.config.tcp_idle_timeout_s.max(1)))
    }
}

/// Accepts SIP over TCP, or over TLS with `tls`: each connection's
/// messages, framed by Content-Length, join the UDP ones; answers go back
/// on the connection. At most `sip.tcp_max_connections` connections (TCP
/// and TLS together), `sip.tcp_max_per_source` from one address; one that
/// sends nothing for `sip.tcp_idle_timeout_s` is closed, and a TLS
/// handshake must finish within `sip.tls_handshake_timeout_s`.
async fn accept_streams(
    listener: tokio::net::TcpListener,
    tls: Option<tls::Certificate>,
    streams: Streams,
    cancel: CancellationToken,
) {
    loop {
        let (stream, addr) = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(place) = streams.open.open(addr.ip(), &streams.config) else {
            tracing::warn!(source = %addr.ip(), "SIP TCP connection refused: at sip.tcp_max_connections or tcp_max_per_source");
            drop(stream);
            continue;
        };
        let (streams, cancel) = (streams.clone(), cancel.clone());
        let idle = Some(streams.idle());
        let Some(tls) = &tls else {
            spawn_stream(stream, addr, false, (Some(place), idle), &streams, cancel);
            continue;
        };
        let acceptor = tls.acceptor();
        let handshake =
            std::time::Duration::from_secs(u64::from(streams.config.tls_handshake_timeout_s.max(1)));
        tokio::spawn(async move {
            match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    spawn_stream(stream, addr, true, (Some(place), idle), &streams, cancel);
                }
                Ok(Err(e)) => tracing::info!(source = %addr, error = %e, "SIP TLS handshake failed"),
                Err(_) => tracing::info!(source = %addr, "SIP TLS handshake timed out"),
            }
        });
    }
}

/// Serves one connection: messages written to the returned [`Peer`] go
/// out on it; what it brings goes to the signalling loop until it closes,
/// sends nothing for `idle` (`None`: never idles out, for a connection
/// of ours that lives as long as its call), or `cancel` fires.
fn spawn_stream<S>(
    stream: S,
    addr: SocketAddr,
    tls: bool,
    (place, idle): (Option<TcpPlace>, Option<std::time::Duration>),
    streams: &Streams,
    cancel: CancellationToken,
) -> Peer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    });
    let peer = if tls { Peer::Tls(addr, tx) } else { Peer::Tcp(addr, tx) };
    let (incoming, theirs) = (streams.incoming.clone(), peer.clone());
    tokio::spawn(async move {
        let _place = place;
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 8192];
        loop {
            let read = async {
                match idle {
                    Some(idle) => tokio::time::timeout(idle, reader.read(&mut chunk)).await,
                    None => Ok(reader.read(&mut chunk).await),
                }
            };
            let n = tokio::select! {
                () = cancel.cancelled() => return,
                r = read => match r {
                    Err(_) => {
                        tracing::debug!(source = %addr, "SIP stream connection idle; closed");
                        return;
                    }
                    Ok(Ok(0) | Err(_)) => return,
                    Ok(Ok(n)) => n,
                },
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match message::stream_message_len(&buf) {
                    Ok(Some(len)) => {
                        let msg: Vec<u8> = buf.drain(..len).collect();
                        if incoming.send((msg, theirs.clone())).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    // Framing that cannot be recovered: close (RFC 4475 clerr, ncl).
                    Err(_) => return,
                }
            }
        }
    });
    peer
}

async fn signalling(
    shared: Arc<Shared>,
    mut routes: tokio::sync::watch::Receiver<HashMap<String, String>>,
    mut stream_rx: mpsc::Receiver<(Vec<u8>, Peer)>,
    mut dialogs_rx: mpsc::Receiver<DialogTable>,
    cancel: CancellationToken,
) {
    let mut responder = Responder::new(routes.borrow_and_update().clone(), shared.calls.config.sip_policy());
    let mut calls: HashMap<String, mpsc::Sender<Signal>> = HashMap::new();
    let mut buf = vec![0u8; message::MAX_MESSAGE_BYTES + 1];
    loop {
        let (bytes, peer): (Vec<u8>, Peer) = tokio::select! {
            () = cancel.cancelled() => return,
            // Dialogs of ours (outbound calls, the trunk registration) and calls that ended.
            Some(change) = dialogs_rx.recv() => {
                match change {
                    DialogTable::Open(call_id, tx) => calls.insert(call_id, tx),
                    DialogTable::Close(call_id) => calls.remove(&call_id),
                };
                continue;
            }
            Some(streamed) = stream_rx.recv() => streamed,
            Ok(()) = routes.changed() => {
                responder.set_routes(routes.borrow_and_update().clone());
                continue;
            }
            r = shared.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => (buf[..n].to_vec(), Peer::Udp(from)),
                Err(e) => {
                    tracing::warn!(error = %e, "SIP receive failed");
                    continue;
                }
            },
        };
        let framing = peer.framing();
        let received_at = std::time::Instant::now();
        if let Ok(msg) = message::parse(&bytes, framing)
            && let Some(tx) = dialogs::keys(&msg).iter().find_map(|key| calls.get(key))
        {
            // The dialog checks its tags: a stranger's request is refused there.
            let _ = tx.try_send((msg, peer));
            continue;
        }
        match responder.handle(std::time::Instant::now(), peer.addr(), &bytes, framing) {
            Action::Nothing => {}
            Action::Reply(response) => peer.send(&shared.socket, response.to_bytes()),
            Action::Invite { request, checked, agent } => {
                let call_id = checked.call_id.clone();
                tracing::info!(sip_call_id = %call_id, from = %peer.addr(), agent = %agent, "incoming call");
                let (tx, rx) = mpsc::channel(32);
                // Callers choose Call-IDs: two may pick the same one, so a
                // caller's call is keyed by its Call-ID and its From tag.
                let key = dialogs::caller_key(&call_id, checked.from.tag().unwrap_or_default());
                calls.insert(key.clone(), tx);
                let call = inbound::run_call(
                    shared.clone(),
                    inbound::Invite { request: *request, checked: *checked, received: received_at, agent },
                    peer,
                    rx,
                    cancel.child_token(),
                );
                spawn_call(&shared, key, call);
            }
        }
    }
}

/// Dialled number -> agent, kept current: read at once, again after every
/// change through this node's API, and every 30 s (changes made on other nodes).
async fn watch_routes(
    agents: Arc<dyn voxgate_calls::agent::AgentDirectory>,
    cancel: CancellationToken,
) -> Result<tokio::sync::watch::Receiver<HashMap<String, String>>, voxgate_calls::agent::DirectoryError> {
    let mut changes = agents.changes();
    let (tx, rx) = tokio::sync::watch::channel(agents.routes().await?);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
                () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            }
            match agents.routes().await {
                Ok(routes) => {
                    tx.send_if_modified(|current| {
                        let changed = *current != routes;
                        *current = routes;
                        changed
                    });
                }
                // Keep the last good routes while the database is away.
                Err(e) => tracing::warn!(error = %e, "cannot read number routes"),
            }
        }
    });
    Ok(rx)
}

/// Runs a call's task; when it ends (or panics: that call hangs up,
/// never the server), its key leaves the dialog table.
fn spawn_call(shared: &Shared, key: String, call: impl Future<Output = ()> + Send + 'static) {
    let dialogs = shared.dialogs.clone();
    tokio::spawn(async move {
        if let Err(e) = tokio::spawn(call).await {
            let sip_call_id = key.split('\n').next().unwrap_or_default();
            tracing::error!(%sip_call_id, error = %e, "call task failed");
        }
        let _ = dialogs.send(DialogTable::Close(key)).await;
    });
}

fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn rand_u32() -> u32 {
    rand::random()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
