//! An SMTP server for tests: it speaks what a submission client sends
//! (RFC 5321) and keeps each message handed over.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// A message an SMTP client handed over.
#[derive(Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

/// An SMTP server (RFC 5321, the commands a submission client sends)
/// that keeps what it is given; for two minutes.
pub fn sink() -> std::io::Result<(u16, mpsc::Receiver<Mail>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    super::serve_http(listener, move |stream| {
        let tx = tx.clone();
        std::thread::spawn(move || session(stream, &tx));
    })?;
    Ok((port, rx))
}

/// One client's session: each message it hands over goes to `tx`.
fn session(stream: TcpStream, tx: &mpsc::Sender<Mail>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = stream.try_clone() else { return };
    let mut lines = BufReader::new(stream);
    let _ = out.write_all(b"220 sink.test ESMTP ready\r\n");
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("MAIL FROM") || upper.starts_with("RSET") {
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO") {
            to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            let _ = out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n");
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            let _ = tx.send(Mail { to: std::mem::take(&mut to), data });
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = out.write_all(b"221 Bye\r\n");
            return;
        } else {
            b"502 Command not implemented\r\n"
        };
        let _ = out.write_all(reply);
    }
}

impl Mail {
    /// The body with quoted-printable soft line breaks joined (lettre wraps long lines).
    #[must_use]
    pub fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }
}
