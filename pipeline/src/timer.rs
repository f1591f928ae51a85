//! The timer a sans-IO core's `poll_timeout` asks for, in an async loop.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// One tokio [`Sleep`], moved only when the deadline changes.
///
/// A loop that built a new `sleep_until(deadline)` on every turn paid a
/// timer-wheel insert and removal per packet; a call's loop turns over a
/// hundred times a second, so with a thousand calls that showed in profiles.
#[derive(Debug)]
pub struct DeadlineTimer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Default for DeadlineTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl DeadlineTimer {
    /// A timer with no deadline.
    #[must_use]
    pub fn new() -> Self {
        // Far enough never to fire before it is set.
        let sleep = Box::pin(tokio::time::sleep(Duration::from_secs(86_400 * 365)));
        Self { sleep, armed: None }
    }

    /// Sets the deadline (`None`: none).
    pub fn set(&mut self, deadline: Option<Instant>) {
        if deadline != self.armed {
            if let Some(at) = deadline {
                self.sleep.as_mut().reset(at);
            }
            self.armed = deadline;
        }
    }

    /// Sets the deadline from a sans-IO core's `std` instant.
    pub fn set_std(&mut self, deadline: Option<std::time::Instant>) {
        self.set(deadline.map(Instant::from_std));
    }

    /// Completes when the deadline passes, and disarms; never without one.
    /// Cancel-safe: dropped before then, the deadline stays set.
    pub async fn fired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_once_and_follows_changes() {
        let mut timer = DeadlineTimer::new();
        let t0 = Instant::now();
        // No deadline: never fires.
        assert!(tokio::time::timeout(Duration::from_secs(60), timer.fired()).await.is_err());
        timer.set(Some(t0 + Duration::from_secs(100)));
        // Moved earlier before it fired.
        timer.set(Some(Instant::now() + Duration::from_millis(20)));
        let start = Instant::now();
        timer.fired().await;
        assert_eq!(Instant::now() - start, Duration::from_millis(20));
        // Fired: disarmed until set again, even to the same instant.
        assert!(tokio::time::timeout(Duration::from_secs(1), timer.fired()).await.is_err());
        timer.set(Some(Instant::now() + Duration::from_millis(5)));
        timer.fired().await;
        // A deadline in the past fires at once.
        timer.set(Some(t0));
        assert!(tokio::time::timeout(Duration::from_millis(1), timer.fired()).await.is_ok());
    }
}
