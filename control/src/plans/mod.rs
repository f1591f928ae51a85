//! Self-serve plans: what each plan allows (`[[billing.plans]]`), where a
//! tenant stands against its plan, and the checks that keep it there.
//!
//! A tenant with no plan (one the operator made) has only the operator's
//! limits. A tenant on a plan gets the lower of the two: admission reads
//! the plan through the agent directory ([`Plans::gate`], as each call's agent is
//! lent), and the API checks agents, knowledge and placed calls here.
//!
//! - [`stripe`]: Stripe's Checkout Sessions API and its signed webhooks.
//!
//! Sign-up, which puts tenants on plans, is [`crate::signup`].

pub mod stripe;

use voxgate_calls::{PlanClosed, PlanGate};

use std::collections::HashMap;
use std::sync::Mutex;

pub use crate::config::{PlanSettings, SignupSettings, StripeSettings};
use crate::store::{Store, StoreError, TenantPlan};

/// The first plan in `plans` that is wrong, and why.
#[must_use]
pub fn problem(plans: &[PlanSettings]) -> Option<String> {
    for (i, plan) in plans.iter().enumerate() {
        let name_ok = !plan.name.is_empty()
            && plan.name.len() <= 40
            && plan.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
        if !name_ok {
            return Some(format!("plan {i}: name must be 1 to 40 of letters, digits, _ and -"));
        }
        if plans[..i].iter().any(|p| p.name == plan.name) {
            return Some(format!("plan {:?} is named twice", plan.name));
        }
        if !plan.price_id.is_empty() && plans[..i].iter().any(|p| p.price_id == plan.price_id) {
            return Some(format!("price {:?} is given to two plans", plan.price_id));
        }
    }
    None
}

/// The plan called `name`.
#[must_use]
pub fn named<'a>(plans: &'a [PlanSettings], name: &str) -> Option<&'a PlanSettings> {
    plans.iter().find(|p| p.name == name)
}

/// The start of the calendar month (UTC) `now_ms` is in, in Unix ms.
#[must_use]
pub fn month_start(now_ms: i64) -> i64 {
    let Ok(now) = jiff::Timestamp::from_millisecond(now_ms) else { return 0 };
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    today.first_of_month().to_zoned(jiff::tz::TimeZone::UTC).map_or(0, |z| z.timestamp().as_millisecond())
}

/// Where a tenant stands against its plan.
#[derive(Debug, Clone)]
pub struct Standing {
    pub plan: Option<PlanSettings>,
    pub stored: TenantPlan,
    /// Why it takes no calls now; `None`: it takes them.
    pub closed: Option<PlanClosed>,
    /// Milliseconds of calls this month (every channel but WhatsApp), as
    /// of at most [`MINUTES_TTL_MS`] ago.
    pub call_ms: i64,
}

/// How long a tenant's minutes this month are reused before they are
/// summed again: a busy tenant's calls cost one sum a half minute, not one
/// each, and may overrun its minutes by what starts in that time.
pub const MINUTES_TTL_MS: i64 = 30_000;

/// Tenants whose minutes are kept at once, at most.
const MAX_KEPT: usize = 100_000;

/// The plans on offer, and each tenant's standing against its own. The
/// plan and status are read as each call starts (a suspension holds at
/// once); the month's minutes are kept for [`MINUTES_TTL_MS`].
#[derive(Debug, Default)]
pub struct Plans {
    list: Vec<PlanSettings>,
    /// Tenant -> (when summed, the month it is of, milliseconds).
    minutes: Mutex<HashMap<String, (i64, i64, i64)>>,
}

impl Plans {
    #[must_use]
    pub fn new(list: Vec<PlanSettings>) -> Self {
        Self { list, minutes: Mutex::default() }
    }

    /// The plans (`[[billing.plans]]`).
    #[must_use]
    pub fn list(&self) -> &[PlanSettings] {
        &self.list
    }

    /// Where tenant `tenant` stands at `now_ms`; `None`: no such tenant.
    ///
    /// # Errors
    /// The database fails.
    pub async fn standing(
        &self,
        store: &Store,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<Standing>, StoreError> {
        let Some(stored) = store.tenant_plan(tenant).await? else { return Ok(None) };
        let plan = stored.plan.as_deref().and_then(|name| {
            let found = named(&self.list, name).cloned();
            if found.is_none() {
                tracing::warn!(
                    tenant,
                    plan = name,
                    "a tenant's plan is not in [[billing.plans]]: no plan limits"
                );
            }
            found
        });
        let metered = plan.as_ref().is_some_and(|p| p.minutes_per_month > 0);
        let call_ms = if metered { self.call_ms(store, tenant, now_ms).await? } else { 0 };
        let closed = if stored.status == "suspended" {
            Some(PlanClosed::Suspended)
        } else if stored.trial_ends_at.is_some_and(|end| end <= now_ms) {
            Some(PlanClosed::TrialEnded)
        } else if let Some(p) = &plan
            && p.minutes_per_month > 0
            && call_ms >= i64::from(p.minutes_per_month) * 60_000
        {
            Some(PlanClosed::MinutesUsed)
        } else {
            None
        };
        Ok(Some(Standing { plan, stored, closed, call_ms }))
    }

    /// The tenant's call milliseconds this month, summed at most
    /// [`MINUTES_TTL_MS`] before `now_ms`.
    async fn call_ms(&self, store: &Store, tenant: &str, now_ms: i64) -> Result<i64, StoreError> {
        let month = month_start(now_ms);
        let kept = self.kept().get(tenant).copied();
        if let Some((at, of, ms)) = kept
            && of == month
            && now_ms - at < MINUTES_TTL_MS
        {
            return Ok(ms);
        }
        let ms = store.call_ms_since(tenant, month).await?;
        let mut kept = self.kept();
        if kept.len() >= MAX_KEPT {
            kept.retain(|_, (at, _, _)| now_ms - *at < MINUTES_TTL_MS);
        }
        if kept.len() < MAX_KEPT {
            kept.insert(tenant.to_owned(), (now_ms, month, ms));
        }
        Ok(ms)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, i64, i64)>> {
        self.minutes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What admission keeps tenant `tenant` to now.
    ///
    /// # Errors
    /// The database fails.
    pub async fn gate(&self, store: &Store, tenant: &str) -> Result<PlanGate, StoreError> {
        Ok(match self.standing(store, tenant, crate::store::now_ms()).await? {
            Some(s) => PlanGate { max_calls: s.plan.map_or(0, |p| p.max_concurrent_calls), closed: s.closed },
            None => PlanGate::default(),
        })
    }

    /// Whether the tenant may keep `agents` agents and `knowledge` bytes of
    /// knowledge (what it would have after the change asked for).
    ///
    /// # Errors
    /// Over its plan ([`PlanCheck::Over`]), or the database fails.
    pub async fn may_keep(
        &self,
        store: &Store,
        tenant: &str,
        agents: usize,
        knowledge: u64,
    ) -> Result<(), PlanCheck> {
        let Some(s) = self.standing(store, tenant, crate::store::now_ms()).await? else { return Ok(()) };
        if let Some(closed) = s.closed.filter(|c| *c != PlanClosed::MinutesUsed) {
            return Err(OverPlan(closed.text().to_owned()).into());
        }
        let Some(plan) = s.plan else { return Ok(()) };
        if plan.max_agents > 0 && agents > plan.max_agents as usize {
            let why = format!("the {} plan keeps at most {} agents", plan.name, plan.max_agents);
            return Err(OverPlan(why).into());
        }
        if plan.knowledge_bytes > 0 && knowledge > plan.knowledge_bytes {
            let why = format!(
                "the {} plan keeps at most {} bytes of knowledge ({knowledge} asked for)",
                plan.name, plan.knowledge_bytes
            );
            return Err(OverPlan(why).into());
        }
        Ok(())
    }

    /// Whether the tenant may open one more WhatsApp conversation this month.
    ///
    /// # Errors
    /// Over its plan ([`PlanCheck::Over`]), or the database fails.
    pub async fn may_open_conversation(&self, store: &Store, tenant: &str) -> Result<(), PlanCheck> {
        let now = crate::store::now_ms();
        let Some(s) = self.standing(store, tenant, now).await? else { return Ok(()) };
        // WhatsApp is counted in conversations, not minutes.
        if let Some(closed) = s.closed.filter(|c| *c != PlanClosed::MinutesUsed) {
            return Err(OverPlan(closed.text().to_owned()).into());
        }
        let Some(plan) = s.plan.filter(|p| p.whatsapp_conversations_per_month > 0) else { return Ok(()) };
        let opened = store.conversations_since(tenant, month_start(now)).await?;
        if opened >= i64::from(plan.whatsapp_conversations_per_month) {
            let why = format!(
                "the {} plan opens at most {} WhatsApp conversations a month",
                plan.name, plan.whatsapp_conversations_per_month
            );
            return Err(OverPlan(why).into());
        }
        Ok(())
    }
}

/// Something the tenant's plan does not allow (402).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OverPlan(pub String);

/// Why a plan check could not be answered, or its answer.
#[derive(Debug, thiserror::Error)]
pub enum PlanCheck {
    #[error(transparent)]
    Over(#[from] OverPlan),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sqlite;

    #[test]
    fn months_start_on_their_first_millisecond() {
        // 2026-11-16 12:00 UTC is in November (2026-11-01T00:00Z).
        assert_eq!(month_start(1_794_830_400_000), 1_793_491_200_000);
        assert_eq!(month_start(1_793_491_200_000), 1_793_491_200_000);
        assert_eq!(month_start(1_796_083_199_999), 1_793_491_200_000);
        assert_eq!(month_start(1_796_083_200_000), 1_796_083_200_000, "December");
    }

    #[test]
    fn plans_are_named_once_and_prices_given_once() {
        let plan = |name: &str, price: &str| PlanSettings {
            name: name.into(),
            price_id: price.into(),
            ..Default::default()
        };
        assert_eq!(problem(&[plan("a", "price_1"), plan("b", "price_2"), plan("c", "")]), None);
        assert!(problem(&[plan("a", "price_1"), plan("a", "price_2")]).is_some());
        assert!(problem(&[plan("a", "price_1"), plan("b", "price_1")]).is_some());
        assert!(problem(&[plan("", "")]).is_some());
        assert!(problem(&[plan("a b", "")]).is_some());
    }

    #[tokio::test]
    async fn a_tenant_stands_by_its_plan_and_status() {
        let (store, _dir) = sqlite().await;
        let plans = Plans::new(vec![PlanSettings {
            name: "starter".into(),
            max_concurrent_calls: 2,
            max_agents: 1,
            knowledge_bytes: 100,
            ..Default::default()
        }]);
        let tenant = store.create_tenant("Acme").await.unwrap();
        assert_eq!(plans.gate(&store, &tenant).await.unwrap(), PlanGate::default(), "no plan");
        store.set_tenant_plan(&tenant, Some("starter"), "active").await.unwrap();
        assert_eq!(plans.gate(&store, &tenant).await.unwrap(), PlanGate { max_calls: 2, closed: None });
        assert!(plans.may_keep(&store, &tenant, 1, 100).await.is_ok());
        assert!(matches!(plans.may_keep(&store, &tenant, 2, 0).await, Err(PlanCheck::Over(_))));
        assert!(matches!(plans.may_keep(&store, &tenant, 1, 101).await, Err(PlanCheck::Over(_))));
        store.set_tenant_plan(&tenant, Some("starter"), "suspended").await.unwrap();
        let closed = plans.gate(&store, &tenant).await.unwrap().closed;
        assert_eq!(closed, Some(PlanClosed::Suspended));
        assert!(matches!(plans.may_open_conversation(&store, &tenant).await, Err(PlanCheck::Over(_))));
    }

    #[tokio::test]
    async fn a_months_minutes_and_a_trials_end_close_the_plan() {
        let (store, _dir) = sqlite().await;
        let list = vec![PlanSettings { name: "small".into(), minutes_per_month: 60, ..Default::default() }];
        let plans = Plans::new(list.clone());
        let tenant = store.create_tenant("Acme").await.unwrap();
        store.set_tenant_plan(&tenant, Some("small"), "active").await.unwrap();
        let now = crate::store::now_ms();
        let call = |id: &str, channel: &str, minutes: i64| crate::store::NewCall {
            id: id.into(),
            tenant_id: tenant.clone(),
            agent_id: None,
            campaign_id: None,
            channel: channel.into(),
            direction: "inbound".into(),
            status: "caller_hung_up".into(),
            caller: None,
            callee: None,
            external_id: None,
            room: None,
            started_at: now,
            ended_at: now,
            duration_ms: minutes * 60_000,
            recording: None,
            detail: "{}".into(),
        };
        store.save_call(&call("c1", "sip", 59)).await.unwrap();
        // WhatsApp conversations are counted apart, never in minutes.
        store.save_call(&call("c2", "whatsapp", 500)).await.unwrap();
        assert_eq!(plans.gate(&store, &tenant).await.unwrap().closed, None);
        store.save_call(&call("c3", "chat", 1)).await.unwrap();
        // The sum is reused for half a minute; then summed again.
        assert_eq!(plans.gate(&store, &tenant).await.unwrap().closed, None, "kept");
        let later = now + MINUTES_TTL_MS + 1_000;
        let closed = plans.standing(&store, &tenant, later).await.unwrap().unwrap().closed;
        // (Unless that is next month, whose minutes start at none.)
        let this_month = month_start(later) == month_start(now);
        assert_eq!(closed, this_month.then_some(PlanClosed::MinutesUsed));
        let fresh = Plans::new(list);
        assert_eq!(fresh.gate(&store, &tenant).await.unwrap().closed, Some(PlanClosed::MinutesUsed));
        // A trial that has ended.
        let signup = crate::store::NewSignup {
            email: "bo@example.com",
            company: "Bo's",
            plan: "small",
            token_hash: "v",
            expires_at: now + 60_000,
        };
        let id = store.create_signup(signup).await.unwrap();
        let provision = crate::store::Provision {
            signup_id: &id,
            plan: "small",
            trial_ends_at: Some(now - 1),
            stripe_customer: None,
            stripe_subscription: None,
            password_token_hash: "p",
            password_token_expires_at: now + 60_000,
        };
        let made = store.provision(provision).await.unwrap().unwrap();
        let closed = plans.gate(&store, &made.tenant_id).await.unwrap().closed;
        assert_eq!(closed, Some(PlanClosed::TrialEnded));
    }

    #[tokio::test]
    async fn whatsapp_is_counted_in_conversations_not_minutes() {
        let (store, _dir) = sqlite().await;
        let plans = Plans::new(vec![PlanSettings {
            name: "small".into(),
            minutes_per_month: 1,
            whatsapp_conversations_per_month: 2,
            ..Default::default()
        }]);
        let tenant = store.create_tenant("Acme").await.unwrap();
        store.set_tenant_plan(&tenant, Some("small"), "active").await.unwrap();
        let now = crate::store::now_ms();
        let open = |id: &str| crate::store::ConversationRow {
            id: id.into(),
            tenant_id: tenant.clone(),
            agent_id: "agt_1".into(),
            app_id: "wa_1".into(),
            phone_number_id: "100".into(),
            contact: id.into(),
            contact_name: None,
            status: crate::store::ConversationStatus::Ai,
            claimed_by: None,
            log: "{}".into(),
            opened_at: now,
            last_inbound_at: now,
            last_at: now,
            closed_at: None,
        };
        store.add_conversation(&open("c1")).await.unwrap();
        assert!(plans.may_open_conversation(&store, &tenant).await.is_ok());
        store.add_conversation(&open("c2")).await.unwrap();
        assert!(matches!(plans.may_open_conversation(&store, &tenant).await, Err(PlanCheck::Over(_))));
        // Another tenant's conversations are not this one's.
        let other = store.create_tenant("Globex").await.unwrap();
        store.set_tenant_plan(&other, Some("small"), "active").await.unwrap();
        assert!(plans.may_open_conversation(&store, &other).await.is_ok());
    }
}
