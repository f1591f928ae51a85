//! A business signs itself up: it asks (`POST /v1/signup`), proves its
//! email by the link mailed to it, pays through a Stripe Checkout Session
//! (plans with a price), and Stripe's signed `checkout.session.completed`
//! makes its tenant and first admin, whose password is set through a
//! single-use link mailed to them (never a password in a mail). Later
//! subscription events change the tenant's plan or suspend it.
//!
//! Every link carries a random token; only its SHA-256 is stored.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::Value;

use crate::config::{PlanSettings, Secret, SignupSettings, StripeSettings};
use crate::plans::named;
use crate::plans::stripe::{BadSignature, CheckoutRequest, Event, Stripe, StripeError};
use crate::post_call::email::{EmailError, Mailer};
use crate::store::{NewSignup, Provision, Store, StoreError, now_ms};

/// Why a sign-up step was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// Sign-up is off (`[signup] enabled`).
    #[error("sign-up is not open on this server")]
    Closed,
    /// A field is wrong (422).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Too many sign-ups from this address or for this email (429).
    #[error("too many sign-ups; try again later")]
    TooMany,
    /// The link is unknown, used or expired (404).
    #[error("this link is unknown, used or expired")]
    BadLink,
    /// Mail or Stripe could not be reached (503).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EmailError> for SignupError {
    fn from(e: EmailError) -> Self {
        tracing::error!(error = %e, "a sign-up's mail was not sent");
        Self::Unavailable("the email could not be sent; try again shortly".into())
    }
}

impl From<StripeError> for SignupError {
    fn from(e: StripeError) -> Self {
        tracing::error!(error = %e, "Stripe refused a Checkout Session");
        Self::Unavailable("payment is unavailable; try again shortly".into())
    }
}

/// Why a webhook was not taken.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not Stripe's, or not now (400).
    #[error("{0}")]
    Signature(#[from] BadSignature),
    /// Signed, but not an event (400).
    #[error("the body is not a Stripe event: {0}")]
    NotAnEvent(String),
    /// Handling it failed; Stripe will deliver it again (503).
    #[error("{0}")]
    Failed(#[from] SignupError),
}

/// Client networks whose sign-ups are counted in one hour, at most.
const MAX_NETWORKS: usize = 100_000;

/// What a verified email leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Pay here (Stripe Checkout).
    Checkout(String),
    /// A free plan: the tenant is made, and the password link mailed.
    Ready,
}

/// Sign-ups, payments and the links that finish them.
pub struct Signups {
    store: Store,
    plans: Vec<PlanSettings>,
    settings: SignupSettings,
    stripe_settings: StripeSettings,
    stripe: Stripe,
    webhook_secret: Secret,
    mailer: Mailer,
    /// Sign-ups per client network this hour: (hour, count).
    networks: Mutex<HashMap<String, (i64, u32)>>,
}

impl std::fmt::Debug for Signups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signups").field("enabled", &self.settings.enabled).finish_non_exhaustive()
    }
}

/// A new link's token and the hash that is stored.
fn new_link_token() -> (String, String) {
    let token = crate::auth::random_hex(32);
    let hash = crate::auth::key_hash(&token);
    (token, hash)
}

impl Signups {
    #[must_use]
    pub fn new(
        store: Store,
        plans: Vec<PlanSettings>,
        settings: SignupSettings,
        stripe: &StripeSettings,
        mailer: Mailer,
    ) -> Self {
        Self {
            store,
            plans,
            settings,
            stripe_settings: stripe.clone(),
            stripe: Stripe::new(stripe),
            webhook_secret: Secret::from(stripe.webhook_secret.or_env("STRIPE_WEBHOOK_SECRET")),
            mailer,
            networks: Mutex::default(),
        }
    }

    /// The plans on offer.
    #[must_use]
    pub fn plans(&self) -> &[PlanSettings] {
        &self.plans
    }

    /// Takes a sign-up and mails the link that verifies its email. An
    /// address that already has an account is told so by mail, and the
    /// answer here is the same (it tells a stranger nothing).
    ///
    /// # Errors
    /// Closed, a bad field, too many, or the mail could not be sent.
    pub async fn request(
        &self,
        email: &str,
        company: &str,
        plan: &str,
        client: IpAddr,
        base: &str,
    ) -> Result<(), SignupError> {
        if !self.settings.enabled {
            return Err(SignupError::Closed);
        }
        let email = email.trim().to_lowercase();
        if !crate::post_call::email::is_address(&email) || email.len() > 254 {
            return Err(SignupError::Invalid { field: "email", reason: "not an email address".into() });
        }
        let company = company.trim();
        if company.is_empty() || company.chars().count() > 100 || company.chars().any(char::is_control) {
            return Err(SignupError::Invalid { field: "company", reason: "1 to 100 characters".into() });
        }
        if named(&self.plans, plan).is_none() {
            return Err(SignupError::Invalid { field: "plan", reason: format!("no plan {plan:?}") });
        }
        if !self.network_may_sign_up(client, now_ms()) {
            return Err(SignupError::TooMany);
        }
        let hour_ago = now_ms() - 3_600_000;
        if self.store.signups_since(&email, hour_ago).await? >= i64::from(self.settings.per_email_per_hour) {
            return Err(SignupError::TooMany);
        }
        let (token, hash) = new_link_token();
        let expires_at = now_ms() + i64::from(self.settings.link_ttl_s) * 1000;
        let signup = NewSignup { email: &email, company, plan, token_hash: &hash, expires_at };
        let id = self.store.create_signup(signup).await?;
        if self.store.user_by_email(&email).await?.is_some() {
            let body = format!(
                "Hello,\n\nSomeone asked to sign {company} up to Voxgate with this address, which already \
                 has an account. Log in at {base}/dashboard instead. If it was not you, ignore this mail.\n"
            );
            return Ok(self
                .mailer
                .send(&email, "Your Voxgate account", body, &format!("{id}@signup"))
                .await?);
        }
        let body = format!(
            "Hello,\n\nTo sign {company} up to Voxgate ({plan} plan), verify your email by opening this link \
             within {} hours:\n\n{base}/v1/signup/verify?token={token}\n\nIf it was not you, ignore this mail.\n",
            self.settings.link_ttl_s / 3600
        );
        self.mailer.send(&email, "Verify your email for Voxgate", body, &format!("{id}@signup")).await?;
        tracing::info!(signup = %id, plan, "sign-up asked; verification mailed");
        Ok(())
    }

    /// Counts a sign-up from `client`'s network; false past the hour's share.
    fn network_may_sign_up(&self, client: IpAddr, now: i64) -> bool {
        let mut networks = self.networks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let hour = now / 3_600_000;
        networks.retain(|_, (h, _)| *h == hour);
        let network = voxgate_sip_bridge::limiter::client_network(client).to_string();
        // A flood from more networks than that in one hour is refused whole.
        if !networks.contains_key(&network) && networks.len() >= MAX_NETWORKS {
            return false;
        }
        let entry = networks.entry(network).or_insert((hour, 0));
        entry.1 += 1;
        entry.1 <= self.settings.per_network_per_hour
    }

    /// The verification link was opened: the email is proven. A plan with
    /// a price gets its Checkout Session (the same one each time); a free
    /// one its tenant at once.
    ///
    /// # Errors
    /// An unknown or expired link; Stripe or mail unavailable.
    pub async fn verify(&self, token: &str, base: &str) -> Result<Verified, SignupError> {
        let signup =
            self.store.signup_by_token(&crate::auth::key_hash(token)).await?.ok_or(SignupError::BadLink)?;
        if signup.tenant_id.is_some() {
            return Ok(Verified::Ready);
        }
        if signup.expires_at <= now_ms() {
            return Err(SignupError::BadLink);
        }
        self.store.verify_signup(&signup.id).await?;
        let plan = named(&self.plans, &signup.plan).ok_or(SignupError::BadLink)?;
        if plan.price_id.is_empty() {
            let trial_ends_at =
                (plan.trial_days > 0).then(|| now_ms() + i64::from(plan.trial_days) * 86_400_000);
            self.welcome(&signup.id, &signup.plan, trial_ends_at, None, None, base).await?;
            return Ok(Verified::Ready);
        }
        if let Some(url) = signup.checkout_url {
            return Ok(Verified::Checkout(url));
        }
        let or_dashboard = |url: &str, page: &str| {
            if url.is_empty() { format!("{base}/dashboard?signup={page}") } else { url.to_owned() }
        };
        let success = or_dashboard(&self.stripe_settings.success_url, "paid");
        let cancel = or_dashboard(&self.stripe_settings.cancel_url, "cancelled");
        let session = self
            .stripe
            .checkout(&CheckoutRequest {
                price_id: &plan.price_id,
                email: &signup.email,
                reference: &signup.id,
                success_url: &success,
                cancel_url: &cancel,
                trial_days: plan.trial_days,
            })
            .await?;
        self.store.set_signup_checkout(&signup.id, &session.id, &session.url).await?;
        tracing::info!(signup = %signup.id, session = %session.id, "email verified; checkout made");
        Ok(Verified::Checkout(session.url))
    }

    /// Makes sign-up `signup_id`'s tenant and first admin, and mails the
    /// admin the link that sets the password. Run again (a mail that
    /// failed), it mails a new link to an admin who has set none.
    async fn welcome(
        &self,
        signup_id: &str,
        plan: &str,
        trial_ends_at: Option<i64>,
        customer: Option<&str>,
        subscription: Option<&str>,
        base: &str,
    ) -> Result<(), SignupError> {
        let (token, hash) = new_link_token();
        let expires_at = now_ms() + i64::from(self.settings.link_ttl_s) * 1000;
        let made = self
            .store
            .provision(Provision {
                signup_id,
                plan,
                trial_ends_at,
                stripe_customer: customer,
                stripe_subscription: subscription,
                password_token_hash: &hash,
                password_token_expires_at: expires_at,
            })
            .await?;
        let signup = self.store.signup(signup_id).await?.ok_or(SignupError::BadLink)?;
        if let Some(made) = &made {
            tracing::info!(tenant = %made.tenant_id, plan, "tenant made for a sign-up");
        } else {
            // Made before: a link again, unless the admin has set a password.
            let user = self.store.user_by_email(&signup.email).await?;
            let Some(user) = user.filter(|u| u.password_hash == "!") else { return Ok(()) };
            self.store.add_password_token(&user.id, &hash, expires_at).await?;
        }
        let body = format!(
            "Hello,\n\nYour Voxgate account for {} is ready. Set your password within {} hours here:\n\n\
             {base}/dashboard?set_password={token}\n\nThen log in as {}.\n",
            signup.company,
            self.settings.link_ttl_s / 3600,
            signup.email
        );
        let id = format!("{signup_id}.{}@welcome", &hash[..12]);
        self.mailer.send(&signup.email, "Set your Voxgate password", body, &id).await?;
        Ok(())
    }

    /// Sets a password through a set-password link (once).
    ///
    /// # Errors
    /// A bad password, a bad link, or the database fails.
    pub async fn set_password(&self, token: &str, password: String) -> Result<(), SignupError> {
        if password.chars().count() < 10 || password.len() > 1024 {
            return Err(SignupError::Invalid { field: "password", reason: "10 to 1024 characters".into() });
        }
        let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| SignupError::Unavailable("could not hash the password".into()))?;
        match self.store.set_password_by_token(&crate::auth::key_hash(token), &hash).await? {
            Some(user) => {
                tracing::info!(user = %user, "password set through a link");
                Ok(())
            }
            None => Err(SignupError::BadLink),
        }
    }

    /// Takes a webhook Stripe signed (`signature`: its `Stripe-Signature`)
    /// at `now_s`; each event once.
    ///
    /// # Errors
    /// Not Stripe's (400), or handling it failed (Stripe retries).
    pub async fn webhook(
        &self,
        signature: &str,
        body: &[u8],
        now_s: i64,
        base: &str,
    ) -> Result<(), WebhookError> {
        let tolerance = i64::from(self.stripe_settings.tolerance_s);
        crate::plans::stripe::verify(signature, body, self.webhook_secret.expose(), now_s, tolerance)?;
        let event: Event =
            serde_json::from_slice(body).map_err(|e| WebhookError::NotAnEvent(e.to_string()))?;
        if !self.store.claim_stripe_event(&event.id, &event.kind).await.map_err(SignupError::from)? {
            tracing::info!(event = %event.id, "a Stripe event delivered again: already handled");
            return Ok(());
        }
        if let Err(e) = self.handle(&event, base).await {
            tracing::error!(event = %event.id, kind = %event.kind, error = %e, "a Stripe event failed");
            let _ = self.store.release_stripe_event(&event.id).await;
            return Err(e.into());
        }
        Ok(())
    }

    async fn handle(&self, event: &Event, base: &str) -> Result<(), SignupError> {
        let object = &event.data.object;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        match event.kind.as_str() {
            "checkout.session.completed" => {
                let Some(signup) = text(&object["client_reference_id"]) else { return Ok(()) };
                let Some(row) = self.store.signup(&signup).await? else {
                    tracing::warn!(signup, "a paid Checkout Session for no sign-up of ours");
                    return Ok(());
                };
                let (customer, subscription) = (text(&object["customer"]), text(&object["subscription"]));
                self.welcome(&row.id, &row.plan, None, customer.as_deref(), subscription.as_deref(), base)
                    .await
            }
            "customer.subscription.updated" | "customer.subscription.deleted" => {
                let Some(subscription) = text(&object["id"]) else { return Ok(()) };
                let status = object["status"].as_str().unwrap_or_default();
                let paying = event.kind.ends_with("updated") && matches!(status, "active" | "trialing");
                let price = &object["items"]["data"][0]["price"]["id"];
                let plan = price.as_str().and_then(|p| self.plans.iter().find(|plan| plan.price_id == p));
                let customer = text(&object["customer"]);
                self.subscription(&subscription, customer.as_deref(), plan.map(|p| p.name.as_str()), paying)
                    .await
            }
            "invoice.payment_failed" => {
                // Where the subscription is depends on Stripe's API version.
                let subscription = text(&object["subscription"])
                    .or_else(|| text(&object["parent"]["subscription_details"]["subscription"]));
                let customer = text(&object["customer"]);
                let tenant =
                    self.store.tenant_by_stripe(subscription.as_deref(), customer.as_deref()).await?;
                if let Some(tenant) = tenant {
                    let plan = self.store.tenant_plan(&tenant).await?.and_then(|p| p.plan);
                    self.store.set_tenant_plan(&tenant, plan.as_deref(), "suspended").await?;
                    tracing::warn!(tenant, "a payment failed: tenant suspended");
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A subscription changed: its tenant's plan follows its price, and
    /// the tenant is suspended unless it is paying (or trialling).
    async fn subscription(
        &self,
        subscription: &str,
        customer: Option<&str>,
        plan: Option<&str>,
        paying: bool,
    ) -> Result<(), SignupError> {
        let Some(tenant) = self.store.tenant_by_stripe(Some(subscription), customer).await? else {
            tracing::warn!(subscription, "a subscription event for no tenant of ours");
            return Ok(());
        };
        let status = if paying { "active" } else { "suspended" };
        self.store.set_subscription(&tenant, plan, status, subscription).await?;
        tracing::info!(tenant, plan, status, "subscription changed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sign_ups_are_counted_per_client_network_and_hour() {
        let (store, _dir) = crate::store::testing::sqlite().await;
        let settings = SignupSettings { enabled: true, per_network_per_hour: 2, ..SignupSettings::default() };
        let mailer = Mailer::new(&crate::config::SmtpSettings::default()).expect("a mailer");
        let signups = Signups::new(store, Vec::new(), settings, &StripeSettings::default(), mailer);
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        let hour = 1_800_000_000_000;
        assert!(signups.network_may_sign_up(ip("198.51.100.7"), hour));
        assert!(signups.network_may_sign_up(ip("198.51.100.200"), hour), "the same /24");
        assert!(!signups.network_may_sign_up(ip("198.51.100.7"), hour), "its third this hour");
        assert!(signups.network_may_sign_up(ip("203.0.113.1"), hour), "another network");
        assert!(signups.network_may_sign_up(ip("198.51.100.7"), hour + 3_600_000), "the next hour");
    }
}
