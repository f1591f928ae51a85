//! How many calls and chats run at once: server-wide (`limits.max_calls`),
//! per tenant (`limits.max_calls_per_tenant`, or its plan's concurrent
//! calls where that is lower) and per agent (its `max_concurrent_calls`);
//! a tenant whose plan is closed (suspended, trial over, minutes used) gets
//! none. Every channel asks for a [`Seat`] before it
//! takes anything else (an RTP port, a session, a model's time); the seat
//! is given back when the call's task drops it. Past a limit, SIP answers
//! 503 (the server is full) or 486 (the tenant or agent is), with a
//! `Reason` header (RFC 3326) and, where waiting helps, `Retry-After`;
//! websockets close with 1013 (try again later) or, for a closed plan,
//! 1008 with the reason; WebRTC offers get 503, or 402 for a closed plan. `/metrics` counts the refusals
//! (`voxgate_calls_refused_total{channel, reason}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::LimitsSettings;
use voxgate_calls::{PlanClosed, PlanGate};

/// Which limit a call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `limits.max_calls`.
    Server,
    /// `limits.max_calls_per_tenant`.
    Tenant,
    /// The agent's `max_concurrent_calls`.
    Agent,
    /// The tenant's plan's concurrent calls.
    PlanCalls,
    /// The tenant's plan takes no calls now.
    Plan(PlanClosed),
}

impl Full {
    /// As `/metrics` says it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Tenant => "tenant",
            Self::Agent => "agent",
            Self::PlanCalls => "plan_calls",
            Self::Plan(closed) => closed.as_str(),
        }
    }

    /// What the refused caller is told (a `Reason` header, a close frame).
    #[must_use]
    pub const fn text(self) -> &'static str {
        match self {
            Self::Server => "the server is at limits.max_calls",
            Self::Tenant => "the tenant is at limits.max_calls_per_tenant",
            Self::Agent => "the agent is at its max_concurrent_calls",
            Self::PlanCalls => "the tenant is at its plan's concurrent calls",
            Self::Plan(closed) => closed.text(),
        }
    }

    /// The SIP `Reason` header (RFC 3326) a refusal carries.
    #[must_use]
    pub fn sip_reason(self) -> String {
        format!("SIP;cause={};text=\"{}\"", self.sip_status().0, self.text())
    }

    /// The websocket close code: 1013 (try again later) while a place may
    /// free up, 1008 (policy) for a closed plan.
    #[must_use]
    pub const fn close_code(self) -> u16 {
        use axum::extract::ws::close_code;
        if self.passing() { close_code::AGAIN } else { close_code::POLICY }
    }

    /// Whether the caller may try again soon (`Retry-After`, 1013): a
    /// place may free up; a closed plan stays closed.
    #[must_use]
    pub const fn passing(self) -> bool {
        !matches!(self, Self::Plan(_))
    }

    /// The SIP answer: the server is unavailable, or this callee is busy.
    #[must_use]
    pub const fn sip_status(self) -> (u16, &'static str) {
        match self {
            Self::Server => (503, "Service Unavailable"),
            Self::Tenant | Self::Agent | Self::PlanCalls | Self::Plan(_) => (486, "Busy Here"),
        }
    }
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    /// Only tenants and agents with calls up: the maps never outgrow the calls.
    tenants: HashMap<String, u32>,
    agents: HashMap<String, u32>,
}

/// The calls running on this node, against the limits.
#[derive(Debug)]
pub struct Admission {
    limits: LimitsSettings,
    counts: Mutex<Counts>,
}

/// A running call's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Seat {
    admission: Arc<Admission>,
    tenant: String,
    agent: Option<String>,
}

impl Admission {
    #[must_use]
    pub fn new(limits: LimitsSettings) -> Arc<Self> {
        Arc::new(Self { limits, counts: Mutex::default() })
    }

    /// Seconds a refused caller is asked to wait (`Retry-After`).
    #[must_use]
    pub const fn retry_after_s(&self) -> u32 {
        self.limits.retry_after_s
    }

    /// A place for a call on `channel` of `tenant`, to `agent` (its id and
    /// its own limit, 0: none), within what the tenant's `plan` allows; or
    /// the limit it met (counted in `/metrics`).
    ///
    /// # Errors
    /// A limit is reached.
    pub fn admit(
        self: &Arc<Self>,
        channel: voxgate_domain::Channel,
        tenant: &str,
        agent: Option<(&str, u32)>,
        plan: PlanGate,
    ) -> Result<Seat, Full> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let at = |limit: u32, n: u32| limit > 0 && n >= limit;
        let tenant_calls = counts.tenants.get(tenant).copied().unwrap_or(0);
        // Where the operator's limit and the plan's differ, the lower holds.
        let plan_lower = plan.max_calls > 0
            && (self.limits.max_calls_per_tenant == 0 || plan.max_calls < self.limits.max_calls_per_tenant);
        let full = if let Some(closed) = plan.closed {
            Some(Full::Plan(closed))
        } else if at(self.limits.max_calls, counts.total) {
            Some(Full::Server)
        } else if plan_lower && at(plan.max_calls, tenant_calls) {
            Some(Full::PlanCalls)
        } else if at(self.limits.max_calls_per_tenant, tenant_calls) {
            Some(Full::Tenant)
        } else if let Some((id, limit)) = agent
            && at(limit, counts.agents.get(id).copied().unwrap_or(0))
        {
            Some(Full::Agent)
        } else {
            None
        };
        if let Some(full) = full {
            drop(counts);
            let label = crate::metrics::RefusalLabel { channel: channel.as_str(), reason: full.as_str() };
            crate::metrics::metrics().calls_refused.get_or_create(&label).inc();
            tracing::warn!(
                channel = channel.as_str(),
                tenant,
                reason = full.as_str(),
                "call refused: at a limit"
            );
            return Err(full);
        }
        counts.total += 1;
        *counts.tenants.entry(tenant.to_owned()).or_default() += 1;
        if let Some((id, _)) = agent {
            *counts.agents.entry(id.to_owned()).or_default() += 1;
        }
        Ok(Seat {
            admission: self.clone(),
            tenant: tenant.to_owned(),
            agent: agent.map(|(id, _)| id.to_owned()),
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        let release = |map: &mut HashMap<String, u32>, key: &str| {
            if let Some(n) = map.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(key);
                }
            }
        };
        release(&mut counts.tenants, &self.tenant);
        if let Some(agent) = &self.agent {
            release(&mut counts.agents, agent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxgate_domain::Channel;

    /// Calls up now: on the server, and for `tenant`.
    fn running(a: &Admission, tenant: &str) -> (u32, u32) {
        let counts = a.counts.lock().unwrap();
        (counts.total, counts.tenants.get(tenant).copied().unwrap_or(0))
    }

    fn limits(server: u32, tenant: u32) -> Arc<Admission> {
        Admission::new(LimitsSettings {
            max_calls: server,
            max_calls_per_tenant: tenant,
            ..LimitsSettings::default()
        })
    }

    #[test]
    fn each_limit_holds_and_a_dropped_seat_is_given_back() {
        let a = limits(3, 2);
        let one = a.admit(Channel::Sip, "acme", None, PlanGate::default()).unwrap();
        let _two = a.admit(Channel::Sip, "acme", None, PlanGate::default()).unwrap();
        assert_eq!(a.admit(Channel::WebRtc, "acme", None, PlanGate::default()).unwrap_err(), Full::Tenant);
        let globex = a.admit(Channel::Sip, "globex", Some(("agt_1", 1)), PlanGate::default()).unwrap();
        assert_eq!(a.admit(Channel::Sip, "initech", None, PlanGate::default()).unwrap_err(), Full::Server);
        assert_eq!(running(&a, "acme"), (3, 2));
        drop(one);
        assert_eq!(running(&a, "acme"), (2, 1));
        // The agent's own limit, below its tenant's.
        drop(globex);
        let _g = a.admit(Channel::Chat, "globex", Some(("agt_1", 1)), PlanGate::default()).unwrap();
        assert_eq!(
            a.admit(Channel::Chat, "globex", Some(("agt_1", 1)), PlanGate::default()).unwrap_err(),
            Full::Agent
        );
        let _other_agent = a.admit(Channel::Chat, "globex", Some(("agt_2", 1)), PlanGate::default()).unwrap();
        assert_eq!(running(&a, "globex"), (3, 2));
        assert_eq!(
            a.admit(Channel::Chat, "globex", Some(("agt_3", 0)), PlanGate::default()).unwrap_err(),
            Full::Server
        );
    }

    #[test]
    fn a_plan_lowers_the_tenants_limit_and_a_closed_plan_takes_nothing() {
        let a = limits(10, 3);
        let plan = |max_calls, closed| PlanGate { max_calls, closed };
        let _one = a.admit(Channel::Sip, "acme", None, plan(1, None)).unwrap();
        assert_eq!(a.admit(Channel::Chat, "acme", None, plan(1, None)).unwrap_err(), Full::PlanCalls);
        // A plan above the operator's limit: the operator's holds.
        let _two = a.admit(Channel::Sip, "acme", None, plan(5, None)).unwrap();
        let _three = a.admit(Channel::Sip, "acme", None, plan(5, None)).unwrap();
        assert_eq!(a.admit(Channel::Sip, "acme", None, plan(5, None)).unwrap_err(), Full::Tenant);
        let closed = a.admit(Channel::Sip, "globex", None, plan(0, Some(PlanClosed::Suspended)));
        assert_eq!(closed.unwrap_err(), Full::Plan(PlanClosed::Suspended));
        assert!(!Full::Plan(PlanClosed::MinutesUsed).passing() && Full::PlanCalls.passing());
        assert_eq!(running(&a, "globex"), (3, 0));
    }

    #[test]
    fn no_limit_when_zero_and_the_maps_forget_idle_tenants() {
        let a = limits(0, 0);
        let seats: Vec<Seat> = (0..100)
            .map(|i| a.admit(Channel::Sip, &format!("t{i}"), None, PlanGate::default()).unwrap())
            .collect();
        assert_eq!(running(&a, "t1"), (100, 1));
        drop(seats);
        let counts = a.counts.lock().unwrap();
        assert_eq!((counts.total, counts.tenants.len(), counts.agents.len()), (0, 0, 0));
    }
}
