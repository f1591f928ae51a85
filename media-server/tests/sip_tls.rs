//! SIP over TLS and SRTP (SDES), with real peers on 127.0.0.1:
//!
//! - a phone (baresip, TLS transport, `srtp-mand`) asks the agent a
//!   question; what it heard through SRTP, transcribed, holds the answer;
//! - an agent that requires SRTP refuses plain RTP (488), over TLS and
//!   over UDP, and SRTP keys are never taken over plain signalling;
//! - trunks must show a certificate from the configured CA when one is
//!   asked (mutual TLS);
//! - the agent calls a phone over TLS (its certificate checked against
//!   `trunk.tls_ca`) with SRTP, and the phone hears it;
//! - a renewed certificate is taken on SIGHUP, a broken one is not;
//! - SIPp calls in over TLS through `stunnel4`, which checks our certificate.
//!
//! Certificates are issued for each test by `openssl` (`common::certs`).

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::certs::{self, Leaf};
use common::heard::{PhoneTls, answering_phone_securely, ask_by_phone_securely};
use common::{Server, TestResult, start_process, start_server};

/// Where the server's SIP over TLS listens, from its start-up log.
fn tls_port(server: &Server) -> Result<u16, Box<dyn std::error::Error>> {
    let line = server
        .started_log
        .iter()
        .find(|l| l.contains("SIP over TLS listening"))
        .ok_or("the server did not say it listens for TLS")?;
    let addr: std::net::SocketAddr =
        line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next()).ok_or("no address")?.parse()?;
    Ok(addr.port())
}

/// A TLS client that trusts `ca`, presenting `client` if given.
fn client(ca: &Path, client: Option<&Leaf>) -> Result<Arc<rustls::ClientConfig>, Box<dyn std::error::Error>> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder.with_client_auth_cert(
            CertificateDer::pem_file_iter(&leaf.cert)?.collect::<Result<Vec<_>, _>>()?,
            PrivateKeyDer::from_pem_file(&leaf.key)?,
        )?,
    };
    Ok(Arc::new(config))
}

/// Sends `request` over TLS to `port`; the first final response.
fn over_tls(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    request: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let name = rustls_pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let connection = rustls::ClientConnection::new(config, name)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(request.as_bytes())?;
    let mut got = String::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Err(format!("closed after: {got:?}").into());
        }
        got.push_str(&String::from_utf8_lossy(&chunk[..n]));
        if let Some(at) = got.find("SIP/2.0 ").filter(|_| got.contains("\r\n\r\n")) {
            // Past the provisional responses.
            let finals = got[at..].split("SIP/2.0 ").skip(1).find(|r| !r.starts_with('1'));
            if let Some(response) = finals {
                return Ok(format!("SIP/2.0 {response}"));
            }
        }
    }
}

/// An INVITE to 1000 over `transport` offering `sdp`.
fn invite(transport: &str, sip_port: u16, my_port: u16, call_id: &str, sdp: &str) -> String {
    let suffix = if transport == "TLS" { ";transport=tls" } else { "" };
    format!(
        "INVITE sip:1000@127.0.0.1:{sip_port}{suffix} SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{my_port};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:tester@127.0.0.1>;tag=t1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:tester@127.0.0.1:{my_port}{suffix}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// An audio offer on `proto`, with an SDES key line if `keyed`.
fn offer(proto: &str, keyed: bool) -> String {
    let mut sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 {proto} 0\r\n"
    );
    if keyed {
        sdp.push_str(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n",
        );
    }
    sdp
}

/// Sends `request` over UDP to `port`; the first final response.
fn over_udp(port: u16, request: impl Fn(u16) -> String) -> Result<String, Box<dyn std::error::Error>> {
    let sip = UdpSocket::bind("127.0.0.1:0")?;
    sip.set_read_timeout(Some(Duration::from_secs(10)))?;
    sip.send_to(request(sip.local_addr()?.port()).as_bytes(), ("127.0.0.1", port))?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sip.recv(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return Ok(text);
        }
    }
}

#[test]
fn a_phone_over_tls_with_srtp_is_answered_and_plain_rtp_is_refused() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let ca = certs::ca(&work, "server")?;
    let (server_cert, phone_cert) = (certs::leaf(&work, &ca, "server")?, certs::leaf(&work, &ca, "phone")?);
    let server = start_process(&[
        ("VOXGATE_SIP__TLS_LISTEN", "127.0.0.1:0".to_owned()),
        ("VOXGATE_SIP__TLS_CERT", server_cert.cert.display().to_string()),
        ("VOXGATE_SIP__TLS_KEY", server_cert.key.display().to_string()),
        ("VOXGATE_RTP__SRTP", "require".to_owned()),
    ])?;
    let port = tls_port(&server)?;

    // Plain RTP offered over TLS: refused.
    let plain = over_tls(
        port,
        client(&ca, None)?,
        &invite("TLS", port, 5999, "tls-plain", &offer("RTP/AVP", false)),
    )?;
    assert!(plain.starts_with("SIP/2.0 488"), "{plain}");
    // Over UDP, even an SRTP offer is refused: its keys crossed the network in the clear.
    for (call_id, sdp) in [("udp-plain", offer("RTP/AVP", false)), ("udp-keyed", offer("RTP/SAVP", true))] {
        let refused = over_udp(server.sip_port, |me| invite("UDP", server.sip_port, me, call_id, &sdp))?;
        assert!(refused.starts_with("SIP/2.0 488"), "{call_id}: {refused}");
    }
    let refusals = common::log_until(&server, |l| l.contains("not over TLS"));
    assert!(refusals.last().is_some_and(|l| l.contains("requires SRTP")), "{refusals:?}");

    // A phone over TLS with SRTP required (RTP/SAVP, SDES) asks the agent.
    let uri = format!("sip:1000@127.0.0.1:{port};transport=tls");
    let tls = PhoneTls { pem: &phone_cert.both, ca: &ca };
    let heard = ask_by_phone_securely(&work.join("baresip"), &uri, &tls)?;
    let answered = common::log_until(&server, |l| l.contains("call answered"));
    assert!(
        answered.last().is_some_and(|l| l.contains("srtp=\"AES_CM_128_HMAC_SHA1_80\"")),
        "the call's media was not SRTP: {answered:?}"
    );
    common::heard::answered_the_question(&server, &heard, "through SRTP")?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn a_trunk_must_show_a_certificate_from_the_configured_ca() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (server_ca, trunk_ca, stranger_ca) =
        (certs::ca(&work, "server")?, certs::ca(&work, "trunk")?, certs::ca(&work, "stranger")?);
    let server_cert = certs::leaf(&work, &server_ca, "server")?;
    let (trunk, stranger) =
        (certs::leaf(&work, &trunk_ca, "trunk")?, certs::leaf(&work, &stranger_ca, "stranger")?);
    let server = start_server(&[
        ("VOXGATE_SIP__TLS_LISTEN", "127.0.0.1:0".to_owned()),
        ("VOXGATE_SIP__TLS_CERT", server_cert.cert.display().to_string()),
        ("VOXGATE_SIP__TLS_KEY", server_cert.key.display().to_string()),
        ("VOXGATE_SIP__TLS_CLIENT_CA", trunk_ca.display().to_string()),
        ("VOXGATE_RTP__SRTP", "offer".to_owned()),
    ])?;
    let port = tls_port(&server)?;
    let options = |me: u16| {
        format!(
            "OPTIONS sip:1000@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{me};branch=z9hG4bK-o\r\n\
             From: <sip:trunk@127.0.0.1>;tag=o1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: options-1\r\nCSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    for (who, leaf) in [("no certificate", None), ("another CA's certificate", Some(&stranger))] {
        let refused = over_tls(port, client(&server_ca, leaf)?, &options(5998));
        assert!(refused.is_err(), "{who}: answered {refused:?}");
    }
    let answered = over_tls(port, client(&server_ca, Some(&trunk))?, &options(5998))?;
    assert!(answered.starts_with("SIP/2.0 200"), "{answered}");
    // SRTP "offer": over TLS, keys are taken; over UDP they are not, and plain RTP is.
    let keyed = over_tls(
        port,
        client(&server_ca, Some(&trunk))?,
        &invite("TLS", port, 5998, "mtls-keyed", &offer("RTP/SAVP", true)),
    )?;
    assert!(keyed.starts_with("SIP/2.0 200"), "{keyed}");
    assert!(keyed.contains("m=audio ") && keyed.contains(" RTP/SAVP 0"), "{keyed}");
    assert!(keyed.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"), "{keyed}");
    assert!(!keyed.contains("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"), "our key is our own: {keyed}");
    let sip = server.sip_port;
    let savp = over_udp(sip, |me| invite("UDP", sip, me, "udp-savp", &offer("RTP/SAVP", true)))?;
    assert!(savp.starts_with("SIP/2.0 488"), "{savp}");
    let plain = over_udp(sip, |me| invite("UDP", sip, me, "udp-avp", &offer("RTP/AVP", true)))?;
    assert!(plain.starts_with("SIP/2.0 200") && !plain.contains("a=crypto"), "{plain}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn a_renewed_certificate_is_taken_on_sighup_and_a_broken_one_is_not() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (old_ca, new_ca) = (certs::ca(&work, "old")?, certs::ca(&work, "new")?);
    let (old, new) = (certs::leaf(&work, &old_ca, "old")?, certs::leaf(&work, &new_ca, "new")?);
    let (cert, key) = (work.join("live.pem"), work.join("live.key"));
    std::fs::copy(&old.cert, &cert)?;
    std::fs::copy(&old.key, &key)?;
    let server = start_process(&[
        ("VOXGATE_SIP__TLS_LISTEN", "127.0.0.1:0".to_owned()),
        ("VOXGATE_SIP__TLS_CERT", cert.display().to_string()),
        ("VOXGATE_SIP__TLS_KEY", key.display().to_string()),
    ])?;
    let port = tls_port(&server)?;
    let options = format!(
        "OPTIONS sip:1000@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5997;branch=z9hG4bK-r\r\n\
         From: <sip:trunk@127.0.0.1>;tag=r1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: reload-1\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let ok = |ca: &Path| over_tls(port, client(ca, None)?, &options).map(|r| r.starts_with("SIP/2.0 200"));
    assert!(ok(&old_ca)?);
    assert!(ok(&new_ca).is_err(), "the new certificate is not in use yet");
    let hup = |server: &Server| {
        std::process::Command::new("kill").args(["-HUP", &server.pid().unwrap_or(0).to_string()]).status()
    };
    std::fs::copy(&new.cert, &cert)?;
    std::fs::copy(&new.key, &key)?;
    assert!(hup(&server)?.success());
    let reloaded = common::log_until(&server, |l| l.contains("SIP TLS certificate"));
    assert!(reloaded.last().is_some_and(|l| l.contains("reloaded")), "{reloaded:?}");
    assert!(ok(&new_ca)?, "the renewed certificate is served");
    assert!(ok(&old_ca).is_err(), "the old one is not");
    // A broken file: the server says so and keeps the certificate it has.
    std::fs::write(&cert, "not a certificate")?;
    assert!(hup(&server)?.success());
    let kept = common::log_until(&server, |l| l.contains("SIP TLS certificate"));
    assert!(kept.last().is_some_and(|l| l.contains("not reloaded")), "{kept:?}");
    assert!(ok(&new_ca)?);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn the_agent_calls_a_phone_over_tls_with_srtp_and_checks_its_certificate() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-tls-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (ca, stranger_ca) = (certs::ca(&work, "trunk")?, certs::ca(&work, "stranger")?);
    let (server_cert, phone_cert) = (certs::leaf(&work, &ca, "server")?, certs::leaf(&work, &ca, "phone")?);
    let impostor = certs::leaf(&work, &stranger_ca, "impostor")?;
    let key = common::API_KEY;
    let server = start_server(&[
        ("VOXGATE_SIP__TLS_LISTEN", "127.0.0.1:0".to_owned()),
        ("VOXGATE_SIP__TLS_CERT", server_cert.cert.display().to_string()),
        ("VOXGATE_SIP__TLS_KEY", server_cert.key.display().to_string()),
        ("VOXGATE_TRUNK__TLS_CA", ca.display().to_string()),
        ("VOXGATE_RTP__SRTP", "require".to_owned()),
        ("VOXGATE_DIAL__ALLOWED_HOSTS", r#"["127.0.0.1"]"#.to_owned()),
    ])?;
    let dial = |to: &str| {
        common::http(&server, "POST", "/v1/calls", Some(key), Some(&format!(r#"{{"to": "{to}"}}"#)))
    };
    // SRTP is required: a call that would go over UDP is not placed.
    let (status, json) = dial("sip:caller@127.0.0.1:5999")?;
    assert_eq!(status, 403, "{json}");
    // A phone whose certificate another CA signed is not called.
    let (mut stranger, stranger_uri) =
        answering_phone_securely(&work.join("impostor"), &PhoneTls { pem: &impostor.both, ca: &ca })?;
    std::thread::sleep(Duration::from_secs(1));
    let (status, json) = dial(&stranger_uri)?;
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert_eq!(status, 502, "{json}");
    assert!(json.to_string().contains("TLS"), "{json}");
    // The phone with a certificate from the trunk's CA is called and talks to the agent.
    let phone = work.join("phone");
    let (mut answering, uri) =
        answering_phone_securely(&phone, &PhoneTls { pem: &phone_cert.both, ca: &ca })?;
    std::thread::sleep(Duration::from_secs(1));
    let (status, json) = dial(&uri)?;
    assert_eq!(status, 201, "{json}");
    let started = std::time::Instant::now();
    while answering.try_wait()?.is_none() {
        if started.elapsed() > Duration::from_secs(70) {
            let _ = answering.kill();
            return Err("the phone's call did not end".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let answered = common::log_until(&server, |l| l.contains("call answered"));
    assert!(
        answered.last().is_some_and(|l| l.contains("srtp=\"AEAD_AES_256_GCM\"")),
        "the call placed was not SRTP (our first suite, which baresip takes): {answered:?}"
    );
    let heard = common::heard::heard(&phone)?;
    assert!(heard.contains("bakery") || heard.contains("thanks for calling"), "no greeting in: {heard}");
    common::heard::answered_the_question(&server, &heard, "on the call the agent placed, over SRTP")?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// A TLS server's configuration for `leaf`.
fn serving(leaf: &Leaf) -> Result<Arc<rustls::ServerConfig>, Box<dyn std::error::Error>> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                CertificateDer::pem_file_iter(&leaf.cert)?.collect::<Result<Vec<_>, _>>()?,
                PrivateKeyDer::from_pem_file(&leaf.key)?,
            )?;
    Ok(Arc::new(config))
}

#[test]
fn registration_with_a_sips_registrar_goes_over_tls() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-tls-reg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let ca = certs::ca(&work, "trunk")?;
    let registrar_cert = certs::leaf(&work, &ca, "registrar")?;
    // The trunk's registrar: a TLS server in this test.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let server = start_server(&[
        ("VOXGATE_TRUNK__REGISTRAR", format!("sips:127.0.0.1:{port}")),
        ("VOXGATE_TRUNK__AOR", "sip:voxgate@127.0.0.1".to_owned()),
        ("VOXGATE_TRUNK__TLS_CA", ca.display().to_string()),
    ])?;
    let started = std::time::Instant::now();
    let tcp = loop {
        match listener.accept() {
            Ok((tcp, _)) => break tcp,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && started.elapsed() < Duration::from_secs(20) =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("the server never connected to the registrar: {e}").into()),
        }
    };
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(serving(&registrar_cert)?)?, tcp);
    let mut request = String::new();
    let mut chunk = [0u8; 4096];
    while !request.contains("\r\n\r\n") {
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Err(format!("closed after: {request:?}").into());
        }
        request.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(request.starts_with("REGISTER sips:127.0.0.1:"), "{request}");
    let header = |name: &str| {
        request
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            .unwrap_or_default()
    };
    assert!(header("Via").starts_with("SIP/2.0/TLS "), "{request}");
    assert!(header("Contact").contains(";transport=tls"), "{request}");
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=reg\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: {};expires=300\r\n\
         Content-Length: 0\r\n\r\n",
        header("Via"),
        header("From"),
        header("To"),
        header("Call-ID"),
        header("CSeq"),
        header("Contact")
    );
    tls.write_all(ok.as_bytes())?;
    let registered = common::log_until(&server, |l| l.contains("registered with the trunk"));
    assert!(registered.last().is_some_and(|l| l.contains("registered with the trunk")), "{registered:?}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// SIPp (Debian's is built without TLS) over TCP into `stunnel4`, which
/// carries it over TLS to `tls` checking the server's certificate against
/// `ca`; SIPp's built-in caller, `calls` times. `Ok` when every call passed.
fn sipp_through_stunnel(work: &Path, tls: u16, ca: &Path, calls: u32) -> TestResult {
    let tunnel = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let (config, log) = (work.join("stunnel.conf"), work.join("stunnel.log"));
    std::fs::write(
        &config,
        format!(
            "foreground = yes\npid =\noutput = {}\n[sip]\nclient = yes\naccept = 127.0.0.1:{tunnel}\n\
             connect = 127.0.0.1:{tls}\nCAfile = {}\nverifyChain = yes\ncheckIP = 127.0.0.1\n",
            log.display(),
            ca.display()
        ),
    )?;
    let mut stunnel = std::process::Command::new("stunnel4")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let listening = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        TcpStream::connect(("127.0.0.1", tunnel)).is_ok()
    });
    let sipp = std::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{tunnel}"))
        .args([
            "-sn",
            "uac",
            "-t",
            "t1",
            "-m",
            &calls.to_string(),
            "-l",
            "1",
            "-i",
            "127.0.0.1",
            "-s",
            "1000",
        ])
        .args(["-p", &common::free_udp_port()?.to_string(), "-mp", &common::free_udp_port()?.to_string()])
        .args(["-timeout", "30s", "-recv_timeout", "10000", "-nostdin"])
        .current_dir(work)
        .output();
    let _ = stunnel.kill();
    let _ = stunnel.wait();
    if !listening {
        return Err("stunnel4 did not listen".into());
    }
    let out = sipp?;
    if out.status.success() {
        Ok(())
    } else {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!("sipp: {}\n{}\nstunnel: {log}", out.status, String::from_utf8_lossy(&out.stdout)).into())
    }
}

#[test]
fn sipp_calls_in_over_tls_through_stunnel() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-tls-sipp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (ca, stranger_ca) = (certs::ca(&work, "trunk")?, certs::ca(&work, "stranger")?);
    let server_cert = certs::leaf(&work, &ca, "server")?;
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_SIP__TLS_LISTEN", "127.0.0.1:0".to_owned()),
        ("VOXGATE_SIP__TLS_CERT", server_cert.cert.display().to_string()),
        ("VOXGATE_SIP__TLS_KEY", server_cert.key.display().to_string()),
    ])?;
    let tls = tls_port(&server)?;
    // Our certificate checks out: two calls, INVITE to BYE, over TLS.
    sipp_through_stunnel(&work, tls, &ca, 2)?;
    let (_, page) = common::http(&server, "GET", "/v1/calls?channel=sip", Some(common::API_KEY), None)?;
    assert_eq!(page["calls"].as_array().map(Vec::len), Some(2), "{page}");
    // A tunnel that trusts another CA refuses our certificate: no call.
    let refused =
        sipp_through_stunnel(&work, tls, &stranger_ca, 1).err().ok_or("a call over unchecked TLS")?;
    assert!(refused.to_string().contains("CERT"), "not refused for its certificate: {refused}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
