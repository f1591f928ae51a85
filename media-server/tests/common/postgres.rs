//! A throwaway PostgreSQL server (from apt's `postgresql`) on a free
//! 127.0.0.1 port, its data in a temporary folder; stopped and removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// `postgres://voxgate@127.0.0.1:<port>/postgres`.
    pub url: String,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Postgres {
    /// Stops the server at once, as an outage would, keeping its data.
    pub fn stop(&mut self) {
        // The server itself, not `runuser` in front of it: an immediate
        // shutdown (SIGQUIT) that drops every connection at once.
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-QUIT", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline
                && Command::new("kill")
                    .args(["-0", &pid])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again on its data and port; waits until it is ready.
    pub fn restart(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.child = spawn_server(&self.dir, self.port)?;
        wait_ready(self.port)
    }
}

fn spawn_server(dir: &std::path::Path, port: u16) -> Result<Child, Box<dyn std::error::Error>> {
    Ok(as_db_user(bin_dir()?.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .arg("-k")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

fn wait_ready(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    // Ready once the port accepts and pg_isready says so; a connection refused until then.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("PostgreSQL did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = bin_dir()?.join("pg_isready");
    while !Command::new(&ready)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .status()?
        .success()
    {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("PostgreSQL did not become ready".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The newest installed PostgreSQL's `bin` folder.
fn bin_dir() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (apt-get install postgresql; scripts/setup.sh does)")?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql".into())
}

/// Runs `program` as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_db_user(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Starts a fresh server and waits until it accepts connections.
pub fn start() -> Result<Postgres, Box<dyn std::error::Error>> {
    let bin = bin_dir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("voxgate-pg-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    if is_root() {
        let ok = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status()?.success();
        if !ok {
            return Err("cannot hand the data folder to the postgres user".into());
        }
    }
    let data = dir.join("data");
    let init = as_db_user(bin.join("initdb"))
        .args(["-A", "trust", "-U", "voxgate", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !init.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&init.stderr)).into());
    }
    let child = spawn_server(&dir, port)?;
    let pg = Postgres { child, dir, port, url: format!("postgres://voxgate@127.0.0.1:{port}/postgres") };
    wait_ready(port)?;
    Ok(pg)
}
