//! SDP (RFC 4566) for audio calls, and the offer/answer rules of RFC 3264
//! that a voice agent needs: pick one codec the caller offered (PCMU, PCMA
//! or Opus), telephone-event for DTMF if offered, ptime 20, and mirror the
//! direction (hold: sendonly -> recvonly, inactive -> inactive).
//!
//! SRTP keys travel in the SDP ([`crypto`], SDES): what a call may or must
//! use is its [`Srtp`] policy, and the media layer lets keys into SDP only
//! over TLS signalling.

pub mod crypto;

use std::fmt::Write as _;
use std::net::IpAddr;

/// SDP that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// A line is not `x=value`, or a required field is malformed.
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    /// No audio stream with a codec we speak (answer 488).
    #[error("no acceptable audio codec offered")]
    NoCommonCodec,
    /// The media's protection is not what the policy allows (answer 488):
    /// plain RTP where SRTP is required, SRTP where it is off, or no
    /// crypto suite in common.
    #[error("media security: {0}")]
    Srtp(&'static str),
}

/// Whether a call's media is SRTP (`rtp.srtp`, per trunk and per agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Srtp {
    /// Plain RTP; an SRTP-only offer is refused.
    #[default]
    Off,
    /// SRTP when the peer offers it; our offers carry keys on plain
    /// `RTP/AVP` (best effort), so a peer without SRTP still connects.
    Offer,
    /// SRTP only: offers are `RTP/SAVP`, and plain RTP is refused.
    Require,
}

/// Media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// What the answerer says to this offered direction.
    #[must_use]
    pub fn answer(self) -> Self {
        match self {
            Self::SendRecv => Self::SendRecv,
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            Self::Inactive => Self::Inactive,
        }
    }
}

/// `a=rtpmap:` of one payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    /// Encoding name, as written (`PCMU`, `opus`, `telephone-event`).
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, ...
    pub proto: String,
    pub formats: Vec<String>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<(u8, String)>,
    pub connection: Option<IpAddr>,
    pub direction: Direction,
    pub ptime: Option<u32>,
    /// The `a=crypto` lines we can use, in the writer's order.
    pub crypto: Vec<crypto::Crypto>,
}

impl Media {
    /// The rtpmap of `pt`, with the static assignments of RFC 3551 as defaults.
    #[must_use]
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        if let Some(m) = self.rtpmaps.iter().find(|m| m.payload_type == pt) {
            return Some(m.clone());
        }
        let (encoding, clock_rate) = match pt {
            0 => ("PCMU", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            _ => return None,
        };
        Some(RtpMap { payload_type: pt, encoding: encoding.to_owned(), clock_rate, channels: Some(1) })
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// `o=` session id and version.
    pub session_id: u64,
    pub session_version: u64,
    /// `o=` address.
    pub origin: String,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    /// Session-level direction (media-level overrides it).
    pub direction: Option<Direction>,
    pub media: Vec<Media>,
}

fn parse_connection(v: &str) -> Result<IpAddr, SdpError> {
    // c=IN IP4 192.0.2.1  (a multicast TTL suffix "/127" is dropped)
    let mut f = v.split_whitespace();
    let (Some("IN"), Some("IP4" | "IP6"), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Err(SdpError::Malformed("c="));
    };
    addr.split('/').next().unwrap_or("").parse().map_err(|_| SdpError::Malformed("c= address"))
}

fn direction_attr(a: &str) -> Option<Direction> {
    Some(match a {
        "sendrecv" => Direction::SendRecv,
        "sendonly" => Direction::SendOnly,
        "recvonly" => Direction::RecvOnly,
        "inactive" => Direction::Inactive,
        _ => return None,
    })
}

impl Sdp {
    /// Parses SDP text (CRLF or LF line ends).
    ///
    /// # Errors
    /// A malformed `v=`, `o=`, `c=`, `m=` or `a=rtpmap` line.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut sdp = Self {
            session_id: 0,
            session_version: 0,
            origin: String::new(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut seen_version = false;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (kind, value) = line.split_once('=').ok_or(SdpError::Malformed("line without ="))?;
            let media = sdp.media.last_mut();
            match (kind, media) {
                ("v", _) => {
                    if value != "0" {
                        return Err(SdpError::Malformed("v= is not 0"));
                    }
                    seen_version = true;
                }
                ("o", None) => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() != 6 {
                        return Err(SdpError::Malformed("o="));
                    }
                    sdp.session_id = f[1].parse().map_err(|_| SdpError::Malformed("o= session id"))?;
                    sdp.session_version = f[2].parse().map_err(|_| SdpError::Malformed("o= version"))?;
                    f[5].clone_into(&mut sdp.origin);
                }
                ("c", None) => sdp.connection = Some(parse_connection(value)?),
                ("c", Some(m)) => m.connection = Some(parse_connection(value)?),
                ("m", _) => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() < 4 {
                        return Err(SdpError::Malformed("m="));
                    }
                    let port = f[1]
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .parse()
                        .map_err(|_| SdpError::Malformed("m= port"))?;
                    sdp.media.push(Media {
                        kind: f[0].to_owned(),
                        port,
                        proto: f[2].to_owned(),
                        formats: f[3..].iter().map(|s| (*s).to_owned()).collect(),
                        rtpmaps: Vec::new(),
                        fmtps: Vec::new(),
                        connection: None,
                        direction: Direction::default(),
                        ptime: None,
                        crypto: Vec::new(),
                    });
                }
                ("a", media) => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    match (name, media) {
                        (d, None) if direction_attr(d).is_some() => sdp.direction = direction_attr(d),
                        (d, Some(m)) if direction_attr(d).is_some() => {
                            m.direction = direction_attr(d).unwrap_or_default()
                        }
                        ("rtpmap", Some(m)) => m.rtpmaps.push(parse_rtpmap(arg)?),
                        ("fmtp", Some(m)) => {
                            if let Some((pt, params)) = arg.split_once(' ')
                                && let Ok(pt) = pt.parse()
                            {
                                m.fmtps.push((pt, params.to_owned()));
                            }
                        }
                        ("ptime", Some(m)) => m.ptime = arg.trim().parse().ok(),
                        ("crypto", Some(m)) => m.crypto.extend(crypto::Crypto::parse(arg)),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError::Malformed("no v= line"));
        }
        // A session-level direction applies to media that did not set one.
        if let Some(d) = sdp.direction {
            let text_has = |m: &Media| m.direction != Direction::SendRecv;
            for m in &mut sdp.media {
                if !text_has(m) {
                    m.direction = d;
                }
            }
        }
        Ok(sdp)
    }

    /// The wire form.
    #[must_use]
    pub fn to_text(&self) -> String {
        let family = |a: &IpAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
        let mut out = String::new();
        let _ = write!(out, "v=0\r\n");
        // An offer without an o= line (read leniently) still prints a valid one.
        let origin = match (&*self.origin, &self.connection) {
            ("", Some(c)) => c.to_string(),
            ("", None) => "0.0.0.0".to_owned(),
            (o, _) => o.to_owned(),
        };
        let origin_family = if origin.contains(':') { "IP6" } else { "IP4" };
        let _ = write!(
            out,
            "o=voxgate {} {} IN {origin_family} {origin}\r\n",
            self.session_id, self.session_version
        );
        let _ = write!(out, "s=voxgate\r\n");
        if let Some(c) = &self.connection {
            let _ = write!(out, "c=IN {} {c}\r\n", family(c));
        }
        let _ = write!(out, "t=0 0\r\n");
        for m in &self.media {
            let _ = write!(out, "m={} {} {} {}\r\n", m.kind, m.port, m.proto, m.formats.join(" "));
            if let Some(c) = &m.connection {
                let _ = write!(out, "c=IN {} {c}\r\n", family(c));
            }
            for r in &m.rtpmaps {
                let _ = write!(out, "a=rtpmap:{} {}/{}", r.payload_type, r.encoding, r.clock_rate);
                if let Some(ch) = r.channels.filter(|&c| c > 1) {
                    let _ = write!(out, "/{ch}");
                }
                out.push_str("\r\n");
            }
            for (pt, f) in &m.fmtps {
                let _ = write!(out, "a=fmtp:{pt} {f}\r\n");
            }
            if let Some(p) = m.ptime {
                let _ = write!(out, "a=ptime:{p}\r\n");
            }
            for c in &m.crypto {
                let _ = write!(out, "a=crypto:{}\r\n", c.to_value());
            }
            let _ = write!(out, "a={}\r\n", m.direction.attr());
        }
        out
    }
}

fn parse_rtpmap(arg: &str) -> Result<RtpMap, SdpError> {
    let bad = || SdpError::Malformed("a=rtpmap");
    let (pt, rest) = arg.split_once(' ').ok_or_else(bad)?;
    let mut f = rest.trim().split('/');
    let encoding = f.next().filter(|e| !e.is_empty()).ok_or_else(bad)?.to_owned();
    let clock_rate = f.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let channels = f.next().and_then(|c| c.parse().ok());
    Ok(RtpMap { payload_type: pt.parse().map_err(|_| bad())?, encoding, clock_rate, channels })
}

/// The audio codecs Voxgate speaks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
    /// G.722: wideband audio at G.711's bit rate (RTP clock 8000, RFC 3551).
    G722,
    /// Opus at 48 kHz (mono in practice, `/2` in SDP as RFC 7587 requires).
    Opus,
}

impl Codec {
    /// The audio format it names.
    #[must_use]
    pub fn media(self) -> voxgate_codecs::Codec {
        match self {
            Self::Pcmu => voxgate_codecs::Codec::Pcmu,
            Self::Pcma => voxgate_codecs::Codec::Pcma,
            Self::G722 => voxgate_codecs::Codec::G722,
            Self::Opus => voxgate_codecs::Codec::Opus,
        }
    }

    fn matches(self, map: &RtpMap) -> bool {
        match self {
            Self::Pcmu => map.encoding.eq_ignore_ascii_case("PCMU") && map.clock_rate == 8000,
            Self::Pcma => map.encoding.eq_ignore_ascii_case("PCMA") && map.clock_rate == 8000,
            Self::G722 => map.encoding.eq_ignore_ascii_case("G722") && map.clock_rate == 8000,
            Self::Opus => map.encoding.eq_ignore_ascii_case("opus") && map.clock_rate == 48_000,
        }
    }

    /// Wideband: the recogniser hears twice the band of G.711.
    const fn wideband(self) -> bool {
        matches!(self, Self::G722 | Self::Opus)
    }
}

/// What an answer settled for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    pub payload_type: u8,
    /// telephone-event's payload type, if the caller offered it at 8 kHz
    /// (or 48 kHz with Opus).
    pub dtmf_payload_type: Option<u8>,
    /// Where to send RTP.
    pub remote: Option<std::net::SocketAddr>,
    /// The direction we answered (our point of view).
    pub direction: Direction,
    /// The SRTP keys, when the media is SRTP.
    pub srtp: Option<crypto::SrtpKeys>,
}

/// How an offered stream's media would be protected under `srtp`: keys
/// (SRTP), none (plain RTP), or not at all (`Err`: refuse the stream).
fn protection(m: &Media, srtp: Srtp) -> Result<Option<(crypto::Crypto, crypto::SrtpKeys)>, &'static str> {
    let savp = m.proto.eq_ignore_ascii_case("RTP/SAVP");
    if !savp && !m.proto.eq_ignore_ascii_case("RTP/AVP") {
        return Err("a media profile other than RTP/AVP or RTP/SAVP");
    }
    // Keys on RTP/AVP are best-effort SRTP: taken unless SRTP is off.
    let keyed = if srtp == Srtp::Off { None } else { crypto::answer(&m.crypto) };
    match (keyed, savp, srtp) {
        (Some(k), ..) => Ok(Some(k)),
        (None, true, Srtp::Off) => Err("SRTP offered, and SRTP is off here"),
        (None, true, _) => Err("no SRTP crypto suite in common"),
        (None, false, Srtp::Require) => Err("plain RTP offered, and SRTP is required"),
        (None, false, _) => Ok(None),
    }
}

/// Answers `offer` (RFC 3264 §6): the first audio stream with a codec in
/// `codecs` and the protection `srtp` allows: a wideband codec (G.722,
/// Opus) when the caller offers one, else the caller's first choice; other
/// streams are refused with port 0.
///
/// # Errors
/// No audio stream offers a codec in `codecs` ([`SdpError::NoCommonCodec`]),
/// or none is protected as `srtp` allows ([`SdpError::Srtp`]).
pub fn answer(
    offer: &Sdp,
    codecs: &[Codec],
    local: IpAddr,
    local_port: u16,
    srtp: Srtp,
) -> Result<(Sdp, Negotiated), SdpError> {
    let mut chosen: Option<Negotiated> = None;
    let mut insecure = None;
    let mut media = Vec::new();
    for m in &offer.media {
        let usable = m.kind == "audio" && m.port != 0 && chosen.is_none();
        let protected =
            usable.then(|| protection(m, srtp)).and_then(|p| p.map_err(|e| insecure = Some(e)).ok());
        let pick = protected.is_some().then(|| pick(m, codecs)).flatten();
        let (Some((codec, map)), Some(keys)) = (pick, protected) else {
            // Refused stream: same m= line, port 0, first format.
            media.push(Media {
                port: 0,
                formats: m.formats.iter().take(1).cloned().collect(),
                rtpmaps: Vec::new(),
                fmtps: Vec::new(),
                connection: None,
                ptime: None,
                crypto: Vec::new(),
                ..m.clone()
            });
            continue;
        };
        let (line, keys) = keys.map_or((None, None), |(line, keys)| (Some(line), Some(keys)));
        let dtmf = m.formats.iter().filter_map(|f| f.parse::<u8>().ok()).find_map(|pt| {
            let map = m.rtpmap(pt)?;
            (map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == map_rate(codec))
                .then_some(map)
        });
        let connection = m.connection.or(offer.connection);
        // 0.0.0.0 is the old (RFC 2543) way to put a call on hold.
        let held = connection.is_some_and(|c| c.is_unspecified());
        let offered = if held { Direction::Inactive } else { m.direction };
        let direction = offered.answer();
        let mut formats = vec![map.payload_type.to_string()];
        let mut rtpmaps = vec![map.clone()];
        let mut fmtps: Vec<(u8, String)> = Vec::new();
        if codec == Codec::Opus {
            fmtps.push((map.payload_type, "useinbandfec=1; minptime=20".to_owned()));
        }
        if let Some(d) = &dtmf {
            formats.push(d.payload_type.to_string());
            rtpmaps.push(d.clone());
            fmtps.push((d.payload_type, "0-16".to_owned()));
        }
        chosen = Some(Negotiated {
            codec,
            payload_type: map.payload_type,
            dtmf_payload_type: dtmf.map(|d| d.payload_type),
            remote: connection
                .filter(|c| !c.is_unspecified())
                .map(|ip| std::net::SocketAddr::new(ip, m.port)),
            direction,
            srtp: keys,
        });
        media.push(Media {
            kind: "audio".to_owned(),
            port: local_port,
            proto: m.proto.clone(),
            formats,
            rtpmaps,
            fmtps,
            connection: None,
            direction,
            ptime: Some(20),
            crypto: line.into_iter().collect(),
        });
    }
    let negotiated = chosen.ok_or_else(|| insecure.map_or(SdpError::NoCommonCodec, SdpError::Srtp))?;
    let answer = Sdp {
        session_id: offer.session_id,
        session_version: 1,
        origin: local.to_string(),
        connection: Some(local),
        direction: None,
        media,
    };
    Ok((answer, negotiated))
}

/// The codec of `codecs` to answer `m` with: the caller's first wideband
/// one, else its first (in its order of preference).
fn pick(m: &Media, codecs: &[Codec]) -> Option<(Codec, RtpMap)> {
    let offered: Vec<(Codec, RtpMap)> = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter_map(|pt| {
            let map = m.rtpmap(pt)?;
            codecs.iter().find(|c| c.matches(&map)).map(|&c| (c, map))
        })
        .collect();
    let wideband = offered.iter().position(|(c, _)| c.wideband());
    offered.into_iter().nth(wideband.unwrap_or(0))
}

/// The RTP clock rate telephone-events must share with `codec`.
fn map_rate(codec: Codec) -> u32 {
    match codec {
        Codec::Opus => 48_000,
        Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
    }
}

/// Reads the answer to `ours` (an [`offer`]): the first format of the first
/// live audio stream that is one of `codecs`, and the SRTP keys if we
/// offered some and the answer took one.
///
/// # Errors
/// No audio stream, or none with a codec we offered; or plain RTP where
/// our offer was SRTP only (`RTP/SAVP`).
pub fn accept_answer(answer: &Sdp, codecs: &[Codec], ours: &Sdp) -> Result<Negotiated, SdpError> {
    let m = answer.media.iter().find(|m| m.kind == "audio" && m.port != 0).ok_or(SdpError::NoCommonCodec)?;
    let offered = ours.media.iter().find(|m| m.kind == "audio");
    let srtp = offered.and_then(|o| crypto::accept(&o.crypto, &m.crypto));
    let required = offered.is_some_and(|o| o.proto.eq_ignore_ascii_case("RTP/SAVP"));
    if srtp.is_none() && (required || m.proto.eq_ignore_ascii_case("RTP/SAVP")) {
        return Err(SdpError::Srtp("the answer's SRTP keys do not match our offer"));
    }
    let pts: Vec<u8> = m.formats.iter().filter_map(|f| f.parse().ok()).collect();
    let (codec, map) = pts
        .iter()
        .find_map(|&pt| {
            let map = m.rtpmap(pt)?;
            codecs.iter().find(|c| c.matches(&map)).map(|&c| (c, map))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf = pts.iter().find_map(|&pt| {
        let map = m.rtpmap(pt)?;
        (map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == map_rate(codec))
            .then_some(pt)
    });
    let connection = m.connection.or(answer.connection);
    Ok(Negotiated {
        codec,
        payload_type: map.payload_type,
        dtmf_payload_type: dtmf,
        remote: connection.filter(|c| !c.is_unspecified()).map(|ip| std::net::SocketAddr::new(ip, m.port)),
        direction: m.direction,
        srtp,
    })
}

/// An offer of our own (for outbound calls and INVITEs without SDP), with
/// fresh SRTP keys unless `srtp` is off (the offer keeps them: see
/// [`accept_answer`]).
#[must_use]
pub fn offer(local: IpAddr, local_port: u16, session_id: u64, srtp: Srtp) -> Sdp {
    let map = |pt: u8, encoding: &str, clock_rate: u32, channels: Option<u8>| RtpMap {
        payload_type: pt,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    };
    Sdp {
        session_id,
        session_version: 1,
        origin: local.to_string(),
        connection: Some(local),
        direction: None,
        media: vec![Media {
            kind: "audio".to_owned(),
            port: local_port,
            proto: if srtp == Srtp::Require { "RTP/SAVP" } else { "RTP/AVP" }.to_owned(),
            // G.722 first: wideband where the peer has it.
            formats: ["9", "0", "8", "111", "101"].map(str::to_owned).to_vec(),
            rtpmaps: vec![
                map(9, "G722", 8000, None),
                map(0, "PCMU", 8000, None),
                map(8, "PCMA", 8000, None),
                map(111, "opus", 48_000, Some(2)),
                map(101, "telephone-event", 8000, None),
            ],
            fmtps: vec![(111, "useinbandfec=1; minptime=20".to_owned()), (101, "0-16".to_owned())],
            connection: None,
            direction: Direction::SendRecv,
            ptime: Some(20),
            crypto: if srtp == Srtp::Off { Vec::new() } else { crypto::offer() },
        }],
    }
}

#[cfg(test)]
mod tests;

/// Answers a re-INVITE (hold, resume, another codec, address or keys):
/// our answer to its `offer` and what it settled; with no usable offer
/// (none, or nothing we take), an offer of ours at `addr`:`port` and
/// nothing settled.
#[must_use]
pub fn reanswer(
    offer: Option<&str>,
    codecs: &[Codec],
    addr: IpAddr,
    port: u16,
    srtp: Srtp,
) -> (String, Option<Negotiated>) {
    let answered =
        offer.and_then(|o| Sdp::parse(o).ok()).and_then(|o| answer(&o, codecs, addr, port, srtp).ok());
    match answered {
        Some((sdp, negotiated)) => (sdp.to_text(), Some(negotiated)),
        None => (self::offer(addr, port, 1, srtp).to_text(), None),
    }
}
