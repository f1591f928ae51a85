//! A call's RTP socket, read on the call's 20 ms tick rather than woken for
//! each packet: at a thousand calls that is 50,000 task wake-ups a second
//! fewer, and the socket is off the reactor altogether. Nothing is later
//! for it: the jitter buffer plays a frame only at the tick, so a packet
//! read at the tick is in time for the same frame as one read on arrival.
//! Each datagram keeps the kernel's arrival time (`SO_TIMESTAMPNS`), so the
//! jitter buffer's delay estimate still sees when packets came, not the
//! tick's 20 ms grid.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;

/// Datagrams read at one tick at most: a flood at the port costs a call a
/// bounded amount of work; the kernel drops what overflows its buffer.
pub(super) const MAX_PER_TICK: usize = 64;

/// See the module documentation.
#[derive(Debug)]
pub(super) struct TickedSocket {
    socket: std::net::UdpSocket,
    /// Room for the timestamp's control message, kept between reads.
    control: Vec<u8>,
}

/// One datagram read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Received {
    pub len: usize,
    pub from: SocketAddr,
    /// When the kernel took it in (when it was read, if the kernel did not say).
    pub at: Instant,
}

impl TickedSocket {
    /// Takes the socket off the reactor (it stays non-blocking) and asks
    /// the kernel to time each datagram's arrival.
    pub(super) fn new(socket: tokio::net::UdpSocket) -> io::Result<Self> {
        let socket = socket.into_std()?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        Ok(Self { socket, control: nix::cmsg_space!(TimeSpec) })
    }

    /// The next waiting datagram, if any (never blocks).
    pub(super) fn try_recv(&mut self, buf: &mut [u8]) -> Option<Received> {
        loop {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = match recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut self.control),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => msg,
                Err(nix::errno::Errno::EINTR) => continue,
                // Would block (nothing waiting), or the socket failed.
                Err(_) => return None,
            };
            let len = msg.bytes;
            let from = msg.address.as_ref().and_then(socket_addr)?;
            let kernel = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                    _ => None,
                })
            });
            return Some(Received { len, from, at: kernel.map_or_else(Instant::now, arrival) });
        }
    }

    /// Sends without waiting: a datagram the kernel has no room for is
    /// dropped, as the network would.
    pub(super) fn send_to(&self, bytes: &[u8], dest: SocketAddr) {
        let _ = self.socket.send_to(bytes, dest);
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// The kernel's wall-clock arrival time, on the monotonic clock: now, less
/// how long ago it was (never in the future).
fn arrival(ts: TimeSpec) -> Instant {
    let at = SystemTime::UNIX_EPOCH + Duration::from(ts);
    let age = SystemTime::now().duration_since(at).unwrap_or_default();
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_wait_for_the_reader_and_keep_their_arrival_time() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut ticked = TickedSocket::new(socket).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        assert!(ticked.try_recv(&mut buf).is_none(), "nothing sent yet");
        // Linux turns receive timestamps on a moment after the first socket
        // in the system asks (a deferred switch); until then a datagram is
        // stamped when read. A server that has been running has them on.
        for _ in 0..100 {
            peer.send_to(b"probe", addr).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let probe = ticked.try_recv(&mut buf).unwrap();
            if probe.at.elapsed() > Duration::from_millis(10) {
                break;
            }
        }

        let sent = Instant::now();
        peer.send_to(b"first", addr).unwrap();
        peer.send_to(b"second", addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let read = Instant::now();

        let first = ticked.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..first.len], b"first");
        assert_eq!(first.from, peer.local_addr().unwrap());
        // The kernel's time, not the read's 50 ms later (the two clocks are
        // read a moment apart, hence the millisecond either side).
        assert!(first.at + Duration::from_millis(1) >= sent, "{:?} before it was sent", sent - first.at);
        assert!(
            first.at + Duration::from_millis(25) < read,
            "arrival {:?} is the read time",
            read - first.at
        );
        let second = ticked.try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..second.len], b"second");
        assert!(ticked.try_recv(&mut buf).is_none());

        // And back: sending needs no runtime.
        ticked.send_to(b"reply", peer.local_addr().unwrap());
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"reply"[..], addr));
    }

    #[tokio::test]
    async fn an_ipv6_peer_is_read_with_its_address() {
        let socket = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut ticked = TickedSocket::new(socket).unwrap();
        let peer = std::net::UdpSocket::bind("[::1]:0").unwrap();
        peer.send_to(b"v6", addr).unwrap();
        let mut buf = [0u8; 16];
        let got = (0..100)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(5));
                ticked.try_recv(&mut buf)
            })
            .expect("the datagram arrives");
        assert_eq!((&buf[..got.len], got.from), (&b"v6"[..], peer.local_addr().unwrap()));
    }
}
