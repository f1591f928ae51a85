//! The RFC 4475 / 5118 torture corpus and what its manifest allows, shared
//! by the sip-bridge test and the one against the running server.

#![allow(dead_code)] // each test file uses some of these

use std::path::PathBuf;

pub fn corpus() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/sip-torture");
    assert!(dir.join("MANIFEST.tsv").exists(), "the torture corpus is missing at {}", dir.display());
    dir
}

/// Whether `status` (None: no reply) is among what `expected` allows.
pub fn acceptable(expected: &str, is_register: bool, status: Option<u16>) -> bool {
    if expected.starts_with("none") {
        return status.is_none();
    }
    let Some(s) = status else { return false };
    // A REGISTER to a server that is not a registrar is refused with 405:
    // that is its normal processing (the manifest names it for regaut01).
    if is_register && s == 405 && (expected.contains("registrar") || expected.contains("REGISTER")) {
        return true;
    }
    expected.split('|').map(str::trim).any(|alt| {
        if alt.starts_with("any 2xx-6xx except 400") {
            (200..700).contains(&s) && s != 400
        } else if alt.starts_with("any 2xx-6xx")
            || alt.contains("accept")
            || alt.contains("normal processing")
        {
            // A liberal element may take the message: any final answer.
            (200..700).contains(&s)
        } else {
            alt.get(..3).and_then(|c| c.parse::<u16>().ok()) == Some(s)
        }
    })
}
