//! A throwaway S3 server: moto (`moto[server]` from PyPI, installed by
//! `scripts/setup.sh` into `.test-tools/moto`) on 127.0.0.1; stopped on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts moto on `port` with an empty bucket `bucket`.
pub fn start(port: u16, bucket: &str) -> Result<Moto, Box<dyn std::error::Error>> {
    let dir = super::root().join(".test-tools/moto");
    if !dir.join("moto/__init__.py").exists() {
        return Err("moto is not installed: run scripts/setup.sh".into());
    }
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .env("PYTHONPATH", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), port };
    let started = Instant::now();
    loop {
        if request(port, "PUT", &format!("/{bucket}")).is_ok_and(|(status, _)| status == 200) {
            return Ok(moto);
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("moto did not start".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port` (no credentials).
pub fn request(
    port: u16,
    method: &str,
    path_and_query: &str,
) -> Result<(u16, Vec<u8>), Box<dyn std::error::Error>> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no body")?;
    let status =
        String::from_utf8_lossy(&response[..end]).split_whitespace().nth(1).ok_or("no status")?.parse()?;
    Ok((status, response[end + 4..].to_vec()))
}
