//! Offers answered whose browser has not connected yet: each holds a
//! media port, so they are counted per client network and in all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Offers answered whose browser has not connected yet, each holding a
/// port: per client network (/24, /56) and in all, so that nobody can hold
/// every media port with offers they never follow.
#[derive(Debug, Default)]
pub struct Pending(Mutex<(u32, HashMap<ipnet::IpNet, u32>)>);

/// One pending offer's place; given back when the browser connects or the call ends.
#[derive(Debug)]
pub(super) struct PendingPlace {
    pending: Arc<Pending>,
    net: ipnet::IpNet,
}

impl Pending {
    /// A place for an offer from `client`, unless its network has
    /// `per_network` pending or the server `total`.
    pub(super) fn take(
        self: &Arc<Self>,
        client: std::net::IpAddr,
        per_network: u32,
        total: u32,
    ) -> Option<PendingPlace> {
        let net = voxgate_sip_bridge::limiter::client_network(client);
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (all, by_net) = &mut *counts;
        let mine = by_net.get(&net).copied().unwrap_or(0);
        if *all >= total || mine >= per_network {
            return None;
        }
        *all += 1;
        by_net.insert(net, mine + 1);
        Some(PendingPlace { pending: self.clone(), net })
    }
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        let mut counts = self.pending.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (all, by_net) = &mut *counts;
        *all = all.saturating_sub(1);
        if let Some(n) = by_net.get_mut(&self.net) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_net.remove(&self.net);
            }
        }
    }
}
