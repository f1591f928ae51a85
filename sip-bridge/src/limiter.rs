//! Token buckets per client network, with bounded memory and no work per
//! packet that grows with the table. A client is its network (/24 for
//! IPv4, /56 for IPv6), so one host cannot multiply its share by rotating
//! addresses within its own network. Quiet networks are forgotten in a
//! sweep at most once a second; when the table is full of active networks,
//! a new one is refused until a sweep makes room. Time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// The network a client address counts under: its /24 (IPv4) or /56 (IPv6).
#[must_use]
pub fn client_network(ip: IpAddr) -> IpNet {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let prefix = if ip.is_ipv4() { 24 } else { 56 };
    IpNet::new(ip, prefix).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// `rate` requests a second per client network, in bursts of twice that.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    capacity: usize,
    buckets: HashMap<IpNet, Bucket>,
    swept: Option<Instant>,
}

impl RateLimiter {
    /// How long a full bucket's network is remembered (it has refilled by then).
    const QUIET: Duration = Duration::from_secs(10);

    /// `rate_per_second` for each network, remembering at most `capacity` networks.
    #[must_use]
    pub fn new(rate_per_second: u32, capacity: usize) -> Self {
        Self {
            rate: f64::from(rate_per_second.max(1)),
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            swept: None,
        }
    }

    /// Takes a token for `ip`'s network at `now`; false when it has none
    /// left, or the table is full of other active networks.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let net = client_network(ip);
        if !self.buckets.contains_key(&net) && self.buckets.len() >= self.capacity {
            let due = self.swept.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due {
                self.swept = Some(now);
                self.buckets.retain(|_, b| now.saturating_duration_since(b.at) < Self::QUIET);
            }
            if self.buckets.len() >= self.capacity {
                return false;
            }
        }
        let burst = 2.0 * self.rate;
        let b = self.buckets.entry(net).or_insert(Bucket { tokens: burst, at: now });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.rate;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Networks remembered now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether none is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_shares_one_bucket_whatever_address_it_sends_from() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(5, 100);
        let host = |last: u8| IpAddr::from([198, 51, 100, last]);
        let admitted = (0..40).filter(|i| l.admit(t0, host(*i as u8))).count();
        assert_eq!(admitted, 10, "one burst for the whole /24");
        assert!(l.admit(t0, IpAddr::from([198, 51, 101, 1])), "the next /24 is another client");
        assert!(l.admit(t0 + Duration::from_secs(1), host(200)), "tokens come back");
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_network(v6("2001:db8:1:2ff::1")), client_network(v6("2001:db8:1:200::9")));
        assert_ne!(client_network(v6("2001:db8:1:2ff::1")), client_network(v6("2001:db8:1:300::1")));
        assert_eq!(client_network(v6("::ffff:198.51.100.7")), client_network(host(9)));
    }

    #[test]
    fn a_flood_of_networks_never_outgrows_the_table_and_quiet_ones_make_room() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(5, 1000);
        let net = |i: u32| IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes());
        let admitted = (0..5000).filter(|i| l.admit(t0, net(*i))).count();
        assert_eq!((admitted, l.len()), (1000, 1000), "new networks past the capacity are refused");
        // Within the second no sweep runs again, however many packets come.
        assert!(!l.admit(t0 + Duration::from_millis(500), net(9999)));
        // Once they are quiet, a sweep forgets them.
        assert!(l.admit(t0 + RateLimiter::QUIET + Duration::from_secs(1), net(9999)));
        assert_eq!(l.len(), 1);
    }
}
