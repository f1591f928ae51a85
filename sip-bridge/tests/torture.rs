//! The 61 RFC 4475 / RFC 5118 torture messages, each sent as one UDP
//! datagram to the running server on 127.0.0.1; the answer (or the silence)
//! is checked against what the RFCs allow (`MANIFEST.tsv`), for a user
//! agent server that is not a registrar or proxy.
//!
//! Replies only ever go to the source address (symmetric routing), so the
//! other hosts these messages name in Via and maddr are never contacted.

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxgate_sip_bridge::message::{self, Framing, Message};
use voxgate_sip_bridge::responder::Responder;
use voxgate_sip_bridge::transport::serve_udp;

#[path = "common/torture_rules.rs"]
mod rules;
use rules::{acceptable, corpus};

#[tokio::test]
async fn every_torture_message_gets_the_answer_the_rfcs_allow() {
    let dir = corpus();
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let (invites, _keep) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve_udp(server, Responder::default(), invites, cancel.clone()));

    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let mut report = String::new();
    let mut failures = 0;
    let mut count = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, expected) = (cols[0], cols[3]);
        let bytes = std::fs::read(dir.join(format!("{name}.sip"))).expect("message file");
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
        client.send_to(&bytes, addr).await.expect("send");
        let mut buf = vec![0u8; 70_000];
        let status = match tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await
        {
            Ok(Ok((n, from))) => {
                assert_eq!(from, addr);
                match message::parse(&buf[..n], Framing::Datagram) {
                    Ok(Message::Response(r)) => Some(r.status),
                    other => panic!("{name}: the server sent something that is not a response: {other:?}"),
                }
            }
            _ => None,
        };
        let ok = acceptable(expected, bytes.starts_with(b"REGISTER"), status);
        failures += usize::from(!ok);
        count += 1;
        let shown = status.map_or("no reply".to_owned(), |s| s.to_string());
        report.push_str(&format!(
            "{} {name:32} {shown:9} expected: {expected}\n",
            if ok { "ok  " } else { "FAIL" }
        ));
    }
    cancel.cancel();
    task.await.expect("server task").expect("server ran");
    println!("{report}");
    assert_eq!(count, 61, "all 61 messages");
    assert_eq!(failures, 0, "{failures} unacceptable answers:\n{report}");
}

#[test]
fn the_acceptance_rules_read_the_manifest_as_meant() {
    assert!(acceptable("any 2xx-6xx except 400", false, Some(404)));
    assert!(!acceptable("any 2xx-6xx except 400", false, Some(400)));
    assert!(!acceptable("any 2xx-6xx except 400", false, None));
    assert!(acceptable("none: response, parse then silently drop; no crash", false, None));
    assert!(!acceptable("none: response, parse then silently drop; no crash", false, Some(400)));
    assert!(acceptable("505", false, Some(505)) && !acceptable("505", false, Some(400)));
    assert!(acceptable("501 | 400", false, Some(400)));
    assert!(acceptable("200 (registrar); unknownparam is a contact-param", true, Some(405)));
    assert!(!acceptable("400", true, Some(405)));
}

/// Every torture message, cut short and with bytes changed, thousands of
/// times: the server never panics and never answers a non-request.
#[test]
fn mangled_messages_never_panic() {
    let dir = corpus();
    let mut responder = Responder::default();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: deterministic, no dependency.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut runs = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "sip") {
            continue;
        }
        let original = std::fs::read(&path).expect("file");
        for _ in 0..200 {
            let mut bytes = original.clone();
            let cut = (next() as usize) % (bytes.len() + 1);
            bytes.truncate(cut.max(bytes.len() / 2));
            for _ in 0..(next() % 8) {
                if !bytes.is_empty() {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = [b'\r', b'\n', b':', b';', b'<', b'"', b'@', b' ', 0xFF, b'%']
                        [(next() % 10) as usize];
                }
            }
            let from = std::net::SocketAddr::from(([127, 0, 0, 1], 5070));
            let _ = responder.handle(std::time::Instant::now(), from, &bytes, Framing::Datagram);
            let _ = message::stream_message_len(&bytes);
            runs += 1;
        }
    }
    assert!(runs >= 61 * 200);
}
