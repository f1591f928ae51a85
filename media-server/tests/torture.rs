//! The 61 RFC 4475 / RFC 5118 torture messages sent to the running
//! `voxgate serve` on 127.0.0.1, one datagram each; every answer (or
//! silence) must be one the RFCs allow. The server answers only the source
//! address, so the other hosts these messages name are never contacted.

mod common;
#[path = "../../sip-bridge/tests/common/torture_rules.rs"]
mod rules;

use std::net::UdpSocket;
use std::time::Duration;

use common::{TestResult, start_server};
use rules::{acceptable, corpus};
use voxgate_sip_bridge::message::{self, Framing, Message};

#[test]
fn the_running_server_answers_every_torture_message_as_the_rfcs_allow() -> TestResult {
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))?;
    let (mut report, mut failures, mut count) = (String::new(), 0, 0);
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, expected) = (cols[0], cols[3]);
        let bytes = std::fs::read(dir.join(format!("{name}.sip")))?;
        let client = UdpSocket::bind("127.0.0.1:0")?;
        client.set_read_timeout(Some(Duration::from_millis(300)))?;
        client.send_to(&bytes, ("127.0.0.1", server.sip_port))?;
        let mut buf = vec![0u8; 70_000];
        let status = match client.recv(&mut buf) {
            Ok(n) => match message::parse(&buf[..n], Framing::Datagram) {
                Ok(Message::Response(r)) => Some(r.status),
                other => return Err(format!("{name}: not a response: {other:?}").into()),
            },
            Err(_) => None,
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
    assert_eq!(count, 61);
    assert_eq!(failures, 0, "{failures} unacceptable answers:\n{report}");
    Ok(())
}
