//! Tenants' plans and subscriptions, sign-ups, password links and the
//! Stripe events handled (migration 0009).

use sqlx::Row as _;

use super::{Store, StoreError, new_id, now_ms};

/// A tenant's plan as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPlan {
    /// A `[[billing.plans]]` name; `None`: no plan (the operator's limits).
    pub plan: Option<String>,
    /// `active` or `suspended`.
    pub status: String,
    /// Unix ms; `None`: no end.
    pub trial_ends_at: Option<i64>,
}

/// A sign-up, from its request to its tenant.
#[derive(Debug, Clone)]
pub struct SignupRow {
    pub id: String,
    pub email: String,
    pub company: String,
    pub plan: String,
    pub expires_at: i64,
    pub verified_at: Option<i64>,
    pub checkout_url: Option<String>,
    pub tenant_id: Option<String>,
}

/// A sign-up to record.
#[derive(Debug, Clone, Copy)]
pub struct NewSignup<'a> {
    pub email: &'a str,
    pub company: &'a str,
    pub plan: &'a str,
    /// SHA-256 of the verification link's token, hex.
    pub token_hash: &'a str,
    pub expires_at: i64,
}

/// A tenant to make for a sign-up that was paid (or needs no payment).
#[derive(Debug, Clone, Copy)]
pub struct Provision<'a> {
    pub signup_id: &'a str,
    pub plan: &'a str,
    pub trial_ends_at: Option<i64>,
    pub stripe_customer: Option<&'a str>,
    pub stripe_subscription: Option<&'a str>,
    /// SHA-256 of the set-password link's token, and when it expires.
    pub password_token_hash: &'a str,
    pub password_token_expires_at: i64,
}

/// The tenant and first admin a [`Provision`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub tenant_id: String,
    pub user_id: String,
}

/// The columns [`signup_row`] reads.
macro_rules! signup_columns {
    () => {
        "id, email, company, plan, expires_at, verified_at, checkout_url, tenant_id"
    };
}

fn signup_row(r: &sqlx::any::AnyRow) -> Result<SignupRow, sqlx::Error> {
    Ok(SignupRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        company: r.try_get("company")?,
        plan: r.try_get("plan")?,
        expires_at: r.try_get("expires_at")?,
        verified_at: r.try_get("verified_at")?,
        checkout_url: r.try_get("checkout_url")?,
        tenant_id: r.try_get("tenant_id")?,
    })
}

impl Store {
    /// Tenant `id`'s plan; `None`: no such tenant.
    ///
    /// # Errors
    /// The database fails.
    pub async fn tenant_plan(&self, id: &str) -> Result<Option<TenantPlan>, StoreError> {
        let row = sqlx::query("SELECT plan, plan_status, trial_ends_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(TenantPlan {
            plan: r.try_get("plan")?,
            status: r.try_get("plan_status")?,
            trial_ends_at: r.try_get("trial_ends_at")?,
        }))
    }

    /// Puts tenant `id` on `plan` (`None`: none), with its status.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_tenant_plan(
        &self,
        id: &str,
        plan: Option<&str>,
        status: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET plan = $1, plan_status = $2 WHERE id = $3")
            .bind(plan)
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tenant of a Stripe subscription, else of its customer.
    ///
    /// # Errors
    /// The database fails.
    pub async fn tenant_by_stripe(
        &self,
        subscription: Option<&str>,
        customer: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        if let Some(subscription) = subscription {
            let id = sqlx::query_scalar("SELECT id FROM tenants WHERE stripe_subscription = $1 LIMIT 1")
                .bind(subscription)
                .fetch_optional(&self.pool)
                .await?;
            if id.is_some() {
                return Ok(id);
            }
        }
        let Some(customer) = customer else { return Ok(None) };
        let id = sqlx::query_scalar("SELECT id FROM tenants WHERE stripe_customer = $1 LIMIT 1")
            .bind(customer)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id)
    }

    /// Milliseconds of calls (every channel but WhatsApp's) the tenant
    /// started at or after `since`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn call_ms_since(&self, tenant_id: &str, since: i64) -> Result<i64, StoreError> {
        // SUM of BIGINT is NUMERIC on PostgreSQL: cast back to read it the same on both.
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(duration_ms) AS BIGINT) FROM calls \
             WHERE tenant_id = $1 AND started_at >= $2 AND channel <> 'whatsapp'",
        )
        .bind(tenant_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(ms.unwrap_or(0))
    }

    /// WhatsApp conversations the tenant opened at or after `since`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn conversations_since(&self, tenant_id: &str, since: i64) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM conversations WHERE tenant_id = $1 AND opened_at >= $2",
        )
        .bind(tenant_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Records a sign-up waiting for its email to be verified; its id.
    ///
    /// # Errors
    /// The database fails.
    pub async fn create_signup(&self, s: NewSignup<'_>) -> Result<String, StoreError> {
        let id = new_id("sgn");
        sqlx::query(
            "INSERT INTO signups (id, email, company, plan, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(s.email)
        .bind(s.company)
        .bind(s.plan)
        .bind(s.token_hash)
        .bind(now_ms())
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Sign-ups made for `email` at or after `since`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn signups_since(&self, email: &str, since: i64) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM signups WHERE email = $1 AND created_at >= $2",
        )
        .bind(email)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// The sign-up whose verification link has this token hash.
    ///
    /// # Errors
    /// The database fails.
    pub async fn signup_by_token(&self, token_hash: &str) -> Result<Option<SignupRow>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", signup_columns!(), " FROM signups WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(signup_row).transpose()?)
    }

    /// Sign-up `id`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn signup(&self, id: &str) -> Result<Option<SignupRow>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", signup_columns!(), " FROM signups WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(signup_row).transpose()?)
    }

    /// Marks sign-up `id` verified (the first time only).
    ///
    /// # Errors
    /// The database fails.
    pub async fn verify_signup(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE signups SET verified_at = $1 WHERE id = $2 AND verified_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the Checkout Session made for sign-up `id`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_signup_checkout(&self, id: &str, session: &str, url: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE signups SET checkout_session = $1, checkout_url = $2 WHERE id = $3")
            .bind(session)
            .bind(url)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes the tenant, its first admin (with no password: a link sets
    /// it) and that link for a sign-up, at once; `None` when the sign-up
    /// already has its tenant.
    ///
    /// # Errors
    /// The database fails, or the email became a user's meanwhile
    /// ([`StoreError::Conflict`]).
    pub async fn provision(&self, p: Provision<'_>) -> Result<Option<Provisioned>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let signup = sqlx::query("SELECT email, company, tenant_id FROM signups WHERE id = $1")
            .bind(p.signup_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(signup) = signup else { return Ok(None) };
        if signup.try_get::<Option<String>, _>("tenant_id")?.is_some() {
            return Ok(None);
        }
        let (email, company): (String, String) = (signup.try_get("email")?, signup.try_get("company")?);
        let (tenant_id, user_id, now) = (new_id("ten"), new_id("usr"), now_ms());
        sqlx::query(
            "INSERT INTO tenants (id, name, created_at, plan, plan_status, trial_ends_at, stripe_customer, \
             stripe_subscription) VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)",
        )
        .bind(&tenant_id)
        .bind(&company)
        .bind(now)
        .bind(p.plan)
        .bind(p.trial_ends_at)
        .bind(p.stripe_customer)
        .bind(p.stripe_subscription)
        .execute(&mut *tx)
        .await?;
        // "!" is no PHC string: no password matches it until the link sets one.
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, '!', 'admin', $4)",
        )
        .bind(&user_id)
        .bind(&tenant_id)
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(super::conflict("that email"))?;
        sqlx::query("INSERT INTO password_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(p.password_token_hash)
            .bind(&user_id)
            .bind(p.password_token_expires_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE signups SET tenant_id = $1 WHERE id = $2")
            .bind(&tenant_id)
            .bind(p.signup_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Provisioned { tenant_id, user_id }))
    }

    /// Sets the password of the user a live, unused link names, using the
    /// link up and ending the user's tokens; the user's id, or `None` for
    /// a link that is unknown, used or expired.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_password_by_token(
        &self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let used = sqlx::query(
            "UPDATE password_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() == 0 {
            return Ok(None);
        }
        let user: String = sqlx::query_scalar("SELECT user_id FROM password_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET password_hash = $1, token_version = token_version + 1 WHERE id = $2")
            .bind(password_hash)
            .bind(&user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    /// Adds a set-password link for user `user_id`.
    ///
    /// # Errors
    /// The database fails.
    pub async fn add_password_token(
        &self,
        user_id: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO password_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(user_id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that Stripe event `id` is being handled; false when it was
    /// already (a redelivery).
    ///
    /// # Errors
    /// The database fails.
    pub async fn claim_stripe_event(&self, id: &str, kind: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(kind)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets Stripe event `id` (handling it failed: Stripe delivers it again).
    ///
    /// # Errors
    /// The database fails.
    pub async fn release_stripe_event(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM stripe_events WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Records tenant `id`'s subscription and plan from Stripe.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_subscription(
        &self,
        id: &str,
        plan: Option<&str>,
        status: &str,
        subscription: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tenants SET plan = COALESCE($1, plan), plan_status = $2, stripe_subscription = $3 WHERE id = $4",
        )
        .bind(plan)
        .bind(status)
        .bind(subscription)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sqlite;

    fn provision<'a>(signup_id: &'a str, token: &'a str) -> Provision<'a> {
        Provision {
            signup_id,
            plan: "starter",
            trial_ends_at: None,
            stripe_customer: Some("cus_1"),
            stripe_subscription: Some("sub_1"),
            password_token_hash: token,
            password_token_expires_at: now_ms() + 60_000,
        }
    }

    #[tokio::test]
    async fn a_paid_signup_makes_one_tenant_whose_link_sets_the_password_once() {
        let (store, _dir) = sqlite().await;
        let signup = NewSignup {
            email: "ann@example.com",
            company: "Ann's Bakery",
            plan: "starter",
            token_hash: "v1",
            expires_at: now_ms() + 60_000,
        };
        let id = store.create_signup(signup).await.unwrap();
        let made = store.provision(provision(&id, "p1")).await.unwrap().expect("a tenant");
        assert_eq!(store.provision(provision(&id, "p2")).await.unwrap(), None, "once per sign-up");
        let plan = store.tenant_plan(&made.tenant_id).await.unwrap().unwrap();
        assert_eq!((plan.plan.as_deref(), plan.status.as_str()), (Some("starter"), "active"));
        assert_eq!(store.tenant_by_stripe(Some("sub_1"), None).await.unwrap(), Some(made.tenant_id.clone()));
        assert_eq!(store.tenant_by_stripe(None, Some("cus_1")).await.unwrap(), Some(made.tenant_id.clone()));
        assert_eq!(store.tenant_by_stripe(Some("sub_x"), None).await.unwrap(), None);
        // No password works before the link sets one.
        let user = store.user_by_email("ann@example.com").await.unwrap().unwrap();
        assert_eq!(user.password_hash, "!", "no PHC string: no password matches");
        assert_eq!(store.set_password_by_token("p2", "h").await.unwrap(), None, "an unknown link");
        assert_eq!(store.set_password_by_token("p1", "h").await.unwrap(), Some(made.user_id.clone()));
        assert_eq!(store.set_password_by_token("p1", "h2").await.unwrap(), None, "a used link");
        assert!(store.claim_stripe_event("evt_1", "x").await.unwrap());
        assert!(!store.claim_stripe_event("evt_1", "x").await.unwrap());
        store.release_stripe_event("evt_1").await.unwrap();
        assert!(store.claim_stripe_event("evt_1", "x").await.unwrap());
    }
}
