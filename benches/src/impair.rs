//! Network impairment for the RTP a load-test caller sends: delay with
//! jitter, random or bursty (Gilbert-Elliott) loss, duplication and
//! reordering. Pure: [`Impairment::deliveries`] says when each packet
//! sent now reaches the wire, so the caller schedules it; the numbers
//! follow netem's meaning (uniform jitter around the delay; `gemodel`).

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

/// A named set of impairments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    /// One-way delay and its uniform jitter (delay ± jitter), ms.
    pub delay_ms: f64,
    pub jitter_ms: f64,
    /// Independent loss probability (when no burst model is set).
    pub loss: f64,
    /// Gilbert-Elliott burst loss: P(good -> bad), P(bad -> good), loss
    /// probability in the bad state (none in the good state).
    pub burst: Option<(f64, f64, f64)>,
    /// Probability a packet is sent twice.
    pub duplicate: f64,
    /// Probability a packet is held back two frames (40 ms) on top of its delay.
    pub reorder: f64,
}

impl Profile {
    /// Loopback as it is.
    pub const CLEAN: Self = Self {
        name: "clean",
        delay_ms: 0.0,
        jitter_ms: 0.0,
        loss: 0.0,
        burst: None,
        duplicate: 0.0,
        reorder: 0.0,
    };
    /// A mobile data call on 4G: 70 ± 20 ms, 2 % loss.
    pub const FOUR_G: Self = Self { name: "4g", delay_ms: 70.0, jitter_ms: 20.0, loss: 0.02, ..Self::CLEAN };
    /// A poor 3G link: 150 ± 30 ms, 10 % loss, some duplicates.
    pub const THREE_G: Self =
        Self { name: "3g", delay_ms: 150.0, jitter_ms: 30.0, loss: 0.10, duplicate: 0.005, ..Self::CLEAN };
    /// Bursty loss: 2 % chance to enter a bad state that lasts 4 packets on
    /// average and loses 90 % in it (about 6.7 % lost, in bursts), 50 ± 10 ms.
    pub const BURSTY: Self = Self {
        name: "gilbert-elliott",
        delay_ms: 50.0,
        jitter_ms: 10.0,
        burst: Some((0.02, 0.25, 0.9)),
        reorder: 0.01,
        ..Self::CLEAN
    };

    pub const ALL: [Self; 4] = [Self::CLEAN, Self::FOUR_G, Self::THREE_G, Self::BURSTY];

    /// The profile called `name`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name == name || (name == "ge" && p.burst.is_some()))
    }

    /// The long-run share of packets lost.
    #[must_use]
    pub fn expected_loss(&self) -> f64 {
        match self.burst {
            Some((p, r, bad)) => p / (p + r) * bad,
            None => self.loss,
        }
    }
}

/// One direction's impairment state (one per call: bursts are per path).
#[derive(Debug)]
pub struct Impairment {
    profile: Profile,
    rng: SmallRng,
    bad: bool,
}

impl Impairment {
    #[must_use]
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self { profile, rng: SmallRng::seed_from_u64(seed), bad: false }
    }

    /// Delays (ms from now) at which copies of a packet sent now reach the
    /// wire: none if it is lost, two if duplicated.
    pub fn deliveries(&mut self) -> Vec<f64> {
        let p = self.profile;
        let lost = match p.burst {
            Some((to_bad, to_good, bad_loss)) => {
                let flip = if self.bad { to_good } else { to_bad };
                if self.rng.random_bool(flip) {
                    self.bad = !self.bad;
                }
                self.bad && self.rng.random_bool(bad_loss)
            }
            None => p.loss > 0.0 && self.rng.random_bool(p.loss),
        };
        if lost {
            return Vec::new();
        }
        let copies = if p.duplicate > 0.0 && self.rng.random_bool(p.duplicate) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let jitter =
                    if p.jitter_ms > 0.0 { self.rng.random_range(-p.jitter_ms..=p.jitter_ms) } else { 0.0 };
                let held = if p.reorder > 0.0 && self.rng.random_bool(p.reorder) { 40.0 } else { 0.0 };
                (p.delay_ms + jitter + held).max(0.0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(profile: Profile, n: usize) -> (f64, usize, Vec<f64>) {
        let mut imp = Impairment::new(profile, 7);
        let (mut lost, mut dups, mut arrivals) = (0usize, 0usize, Vec::new());
        for i in 0..n {
            let d = imp.deliveries();
            lost += usize::from(d.is_empty());
            dups += d.len().saturating_sub(1);
            if let Some(first) = d.first() {
                arrivals.push(i as f64 * 20.0 + first);
            }
        }
        (lost as f64 / n as f64, dups, arrivals)
    }

    #[test]
    fn clean_delivers_everything_at_once() {
        let (loss, dups, arrivals) = run(Profile::CLEAN, 1000);
        assert_eq!((loss, dups), (0.0, 0));
        assert!(arrivals.windows(2).all(|w| (w[1] - w[0] - 20.0).abs() < 1e-9));
    }

    #[test]
    fn loss_rates_match_the_profiles() {
        for profile in Profile::ALL {
            let (loss, _, _) = run(profile, 200_000);
            let want = profile.expected_loss();
            assert!((loss - want).abs() < 0.01, "{}: lost {loss}, want {want}", profile.name);
        }
    }

    #[test]
    fn jitter_stays_in_bounds_and_reorders() {
        let (_, _, arrivals) = run(Profile::FOUR_G, 10_000);
        let reordered = arrivals.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(reordered > 100, "{reordered} reordered");
        let mut imp = Impairment::new(Profile::FOUR_G, 1);
        for _ in 0..10_000 {
            for d in imp.deliveries() {
                assert!((50.0..=90.0).contains(&d), "{d}");
            }
        }
    }

    #[test]
    fn bursts_are_longer_than_independent_loss() {
        // Mean run of consecutive losses: about 1 for independent loss,
        // several packets for the burst model.
        let mean_run = |profile: Profile| {
            let mut imp = Impairment::new(profile, 3);
            let (mut runs, mut lost, mut in_run) = (0usize, 0usize, false);
            for _ in 0..200_000 {
                let l = imp.deliveries().is_empty();
                lost += usize::from(l);
                runs += usize::from(l && !in_run);
                in_run = l;
            }
            lost as f64 / runs as f64
        };
        let (independent, bursty) = (mean_run(Profile::THREE_G), mean_run(Profile::BURSTY));
        assert!(independent < 1.2 && bursty > 2.5, "{independent} vs {bursty}");
    }

    #[test]
    fn duplicates_appear_at_their_rate() {
        let (_, dups, _) = run(Profile::THREE_G, 200_000);
        let rate = dups as f64 / 200_000.0;
        assert!((rate - 0.9 * 0.005).abs() < 0.001, "{rate}");
    }
}
