//! Shared by the integration tests: start `voxgate serve` on free local
//! ports and stop it when the test ends.

#![allow(dead_code)] // each test file uses some of these

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_udp_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server; killed (and its recordings folder removed) when dropped.
pub struct Server {
    child: Child,
    pub sip_port: u16,
    /// Log lines as they come.
    pub log: mpsc::Receiver<String>,
    /// Where its recordings and call logs go (a temporary folder, never the checkout).
    pub recordings: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.recordings);
    }
}

/// Starts the server with SIP on a free 127.0.0.1 port and `env` overrides;
/// returns once it listens for SIP.
pub fn start_server(env: &[(&str, String)]) -> Result<Server, Box<dyn std::error::Error>> {
    let sip_port = free_udp_port()?;
    let recordings = std::env::temp_dir().join(format!("voxgate-test-{}-{sip_port}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    cmd.current_dir(root())
        .args(["serve", "--config", "config.toml"])
        .env("VOXGATE_HTTP__LISTEN", "127.0.0.1:0")
        .env("VOXGATE_SIP__UDP_LISTEN", format!("127.0.0.1:{sip_port}"))
        .env("VOXGATE_SIP__TCP_LISTEN", format!("127.0.0.1:{sip_port}"))
        .env("VOXGATE_STORAGE__RECORDINGS_DIR", &recordings)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let server = Server { child, sip_port, log, recordings };
    let started = Instant::now();
    loop {
        let left = Duration::from_secs(90).saturating_sub(started.elapsed());
        let line = server.log.recv_timeout(left).map_err(|_| "the server did not start listening for SIP")?;
        if line.contains("SIP listening") {
            return Ok(server);
        }
    }
}

/// Reads the caller's lines from the server's one call log.
pub fn caller_lines(server: &Server) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut log = None;
    for _ in 0..100 {
        log = std::fs::read_dir(&server.recordings)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"));
        if log.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(log.ok_or("no call log")?)?)?;
    Ok(log["transcript"]
        .as_array()
        .ok_or("no transcript")?
        .iter()
        .filter(|l| l["speaker"] == "caller")
        .filter_map(|l| l["text"].as_str().map(str::to_owned))
        .collect())
}
