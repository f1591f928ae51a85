//! Certificates for SIP over TLS, issued by `openssl` (Debian's) into a
//! test's folder: a CA, and leaves for 127.0.0.1 signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate then the key, in one file (baresip's `sip_certificate`).
    pub both: PathBuf,
}

/// `openssl req`'s options for a new P-256 key, unencrypted, written to the file that follows.
const NEW_KEY: [&str; 6] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"];

fn openssl(dir: &Path, args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new("openssl").current_dir(dir).args(args).output()?;
    if !out.status.success() {
        return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// A new CA in `dir` (`<name>-ca.pem`, `<name>-ca.key`).
pub fn ca(dir: &Path, name: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let (pem, key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &NEW_KEY,
            &[&key, "-out", &pem, "-days", "2", "-subj", &format!("/CN={name} test CA")],
        ]
        .concat(),
    )?;
    Ok(dir.join(pem))
}

/// A leaf `name` for IP 127.0.0.1, signed by the CA `ca` made in `dir`.
pub fn leaf(dir: &Path, ca: &Path, name: &str) -> Result<Leaf, Box<dyn std::error::Error>> {
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
    )?;
    let (cert, key, csr) = (format!("{name}.pem"), format!("{name}.key"), format!("{name}.csr"));
    openssl(dir, &[&["req"][..], &NEW_KEY, &[&key, "-out", &csr, "-subj", "/CN=127.0.0.1"]].concat())?;
    let ca_key = ca.with_extension("key");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca.display().to_string(),
            "-CAkey",
            &ca_key.display().to_string(),
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext.display().to_string(),
        ],
    )?;
    let both = dir.join(format!("{name}-both.pem"));
    std::fs::write(&both, [std::fs::read(dir.join(&cert))?, std::fs::read(dir.join(&key))?].concat())?;
    Ok(Leaf { cert: dir.join(cert), key: dir.join(key), both })
}
