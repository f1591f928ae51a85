//! SIPp playing the far end of outbound calls on 127.0.0.1.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_udp_port, root};

/// SIPp running `scenario` (from `tests/sipp/`) for `calls` calls on
/// `port`; returns once it listens there. It gives up after 60 s.
pub fn far_end(scenario: &str, port: u16, calls: u32) -> Result<Child, Box<dyn std::error::Error>> {
    let child = Command::new("sipp")
        .current_dir(root().join("media-server/tests/sipp"))
        .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_udp_port()?.to_string(), "-m", &calls.to_string(), "-timeout", "60s", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Listening: the port is taken.
    let started = Instant::now();
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("SIPp did not listen on {port}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Waits (bounded) for SIPp to finish; true when all its calls succeeded.
pub fn finished(mut sipp: Child) -> Result<bool, Box<dyn std::error::Error>> {
    let started = Instant::now();
    loop {
        if let Some(status) = sipp.try_wait()? {
            return Ok(status.success());
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = sipp.kill();
            return Err("SIPp did not finish".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
