//! Tenants (organisations), their users and their API keys.

use sqlx::Row as _;

use super::{Store, StoreError, conflict, new_id, now_ms};

/// A user, with the password hash to check a login against.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    /// Tokens name it; raising it ends every token the user holds.
    pub token_version: i64,
}

/// An API key's record (never the key itself).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    /// `read`, `write` or `calls:place`.
    pub scope: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds; absent: never.
    pub expires_at: Option<i64>,
}

/// A key to record.
#[derive(Debug, Clone, Copy)]
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub scope: &'a str,
    pub expires_at: Option<i64>,
    /// SHA-256 of the key, hex.
    pub hash: &'a str,
}

/// A live key found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub id: String,
    pub tenant_id: String,
    pub scope: String,
}

fn user_row(r: &sqlx::any::AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
        token_version: r.try_get("token_version")?,
    })
}

fn key_row(r: &sqlx::any::AnyRow) -> Result<ApiKeyRow, sqlx::Error> {
    Ok(ApiKeyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scope: r.try_get("scope")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// The columns [`user_row`] reads.
macro_rules! user_columns {
    () => {
        "id, tenant_id, email, password_hash, role, token_version"
    };
}

impl Store {
    /// Makes a tenant; its id.
    ///
    /// # Errors
    /// The database fails.
    pub async fn create_tenant(&self, name: &str) -> Result<String, StoreError> {
        let id = new_id("ten");
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// The tenant named `name`, made if there is none; its id.
    ///
    /// # Errors
    /// The database fails.
    pub async fn tenant_named(&self, name: &str) -> Result<String, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1 ORDER BY created_at LIMIT 1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        match found {
            Some(id) => Ok(id),
            None => self.create_tenant(name).await,
        }
    }

    /// Whether tenant `id` exists.
    ///
    /// # Errors
    /// The database fails.
    pub async fn tenant_exists(&self, id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Sets (or with `None` removes) the tenant's Twilio auth token.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_twilio_auth_token(
        &self,
        tenant_id: &str,
        token: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET twilio_auth_token = $1 WHERE id = $2")
            .bind(token)
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tenant's Twilio auth token, if one is set.
    ///
    /// # Errors
    /// The database fails.
    pub async fn twilio_auth_token(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        let token: Option<Option<String>> =
            sqlx::query_scalar("SELECT twilio_auth_token FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(token.flatten().filter(|t| !t.is_empty()))
    }

    /// Adds a user (emails are kept lower case); its id.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the email is taken.
    pub async fn create_user(
        &self,
        tenant_id: &str,
        email: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<String, StoreError> {
        let id = new_id("usr");
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(email.trim().to_lowercase())
        .bind(password_hash)
        .bind(role)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(conflict("that email"))?;
        Ok(id)
    }

    /// The user with this email, if any.
    ///
    /// # Errors
    /// The database fails.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"))
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    /// User `id` of `tenant_id`, if it still exists (a token outlives a deleted user).
    ///
    /// # Errors
    /// The database fails.
    pub async fn user(&self, tenant_id: &str, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1 AND tenant_id = $2"))
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    /// The tenant's users, oldest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn users(&self, tenant_id: &str) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_row).collect::<Result<_, _>>()?)
    }

    /// Gives one of the tenant's users another role, ending the tokens it
    /// holds; false when the tenant has no such user.
    ///
    /// # Errors
    /// The database fails.
    pub async fn set_user_role(&self, tenant_id: &str, id: &str, role: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET role = $1, token_version = token_version + 1 WHERE id = $2 AND tenant_id = $3",
        )
        .bind(role)
        .bind(id)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes one of the tenant's users (its tokens die with it); false
    /// when the tenant has no such user.
    ///
    /// # Errors
    /// The database fails.
    pub async fn delete_user(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records an API key by its hash.
    ///
    /// # Errors
    /// The database fails.
    pub async fn create_api_key(&self, tenant_id: &str, key: NewApiKey<'_>) -> Result<ApiKeyRow, StoreError> {
        let row = ApiKeyRow {
            id: new_id("key"),
            name: key.name.to_owned(),
            scope: key.scope.to_owned(),
            created_at: now_ms(),
            expires_at: key.expires_at,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, created_at, scope, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id)
        .bind(tenant_id)
        .bind(key.name)
        .bind(key.hash)
        .bind(row.created_at)
        .bind(key.scope)
        .bind(key.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(row)
    }

    /// The live (not revoked, not expired) key with this hash.
    ///
    /// # Errors
    /// The database fails.
    pub async fn api_key(&self, key_hash: &str) -> Result<Option<KeyGrant>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, scope FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(key_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        let grant = |r: &sqlx::any::AnyRow| -> Result<KeyGrant, sqlx::Error> {
            Ok(KeyGrant {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                scope: r.try_get("scope")?,
            })
        };
        Ok(row.as_ref().map(grant).transpose()?)
    }

    /// A tenant's live API keys, newest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, scope, created_at, expires_at FROM api_keys \
             WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(key_row).collect::<Result<_, _>>()?)
    }

    /// Revokes one of the tenant's keys; false when it has no such live key.
    ///
    /// # Errors
    /// The database fails.
    pub async fn revoke_api_key(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(tenant_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;

    #[tokio::test]
    async fn emails_are_unique_whatever_their_case() {
        let (store, _dir) = testing::sqlite().await;
        let t = store.create_tenant("acme").await.unwrap();
        store.create_user(&t, "Ann@Example.com", "h", "admin").await.unwrap();
        let again = store.create_user(&t, "ann@example.com ", "h", "admin").await;
        assert!(matches!(again, Err(super::StoreError::Conflict { .. })), "{again:?}");
        let u = store.user_by_email("ANN@example.com").await.unwrap().unwrap();
        assert_eq!(u.tenant_id, t);
    }

    #[tokio::test]
    async fn a_role_change_raises_the_token_version_and_only_in_its_tenant() {
        let (store, _dir) = testing::sqlite().await;
        let t = store.create_tenant("acme").await.unwrap();
        let other = store.create_tenant("globex").await.unwrap();
        let u = store.create_user(&t, "ann@example.com", "h", "admin").await.unwrap();
        assert_eq!(store.user(&t, &u).await.unwrap().map(|u| u.token_version), Some(0));
        assert!(!store.set_user_role(&other, &u, "member").await.unwrap());
        assert!(!store.delete_user(&other, &u).await.unwrap());
        assert!(store.set_user_role(&t, &u, "member").await.unwrap());
        let now = store.user(&t, &u).await.unwrap().unwrap();
        assert_eq!((now.role.as_str(), now.token_version), ("member", 1));
        assert!(store.user(&other, &u).await.unwrap().is_none());
        assert!(store.delete_user(&t, &u).await.unwrap());
        assert!(store.user(&t, &u).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_revoked_key_no_longer_opens_its_tenant() {
        let (store, _dir) = testing::sqlite().await;
        let t = store.create_tenant("acme").await.unwrap();
        let other = store.create_tenant("globex").await.unwrap();
        let new = |hash, expires_at| super::NewApiKey { name: "ci", scope: "read", expires_at, hash };
        let k = store.create_api_key(&t, new("abc", None)).await.unwrap();
        let grant = super::KeyGrant { id: k.id.clone(), tenant_id: t.clone(), scope: "read".into() };
        assert_eq!(store.api_key("abc").await.unwrap(), Some(grant));
        // An expired key opens nothing.
        store.create_api_key(&t, new("old", Some(super::now_ms() - 1))).await.unwrap();
        assert_eq!(store.api_key("old").await.unwrap(), None);
        store.create_api_key(&t, new("later", Some(super::now_ms() + 60_000))).await.unwrap();
        assert!(store.api_key("later").await.unwrap().is_some());
        assert!(!store.revoke_api_key(&other, &k.id).await.unwrap(), "another tenant cannot revoke it");
        assert!(store.revoke_api_key(&t, &k.id).await.unwrap());
        assert_eq!(store.api_key("abc").await.unwrap(), None);
        assert_eq!(store.api_keys(&t).await.unwrap().len(), 2, "the two unrevoked keys");
    }

    #[tokio::test]
    async fn a_setting_is_made_once() {
        let (store, _dir) = testing::sqlite().await;
        let a = store.setting_or_init("k", || "first".into()).await.unwrap();
        let b = store.setting_or_init("k", || "second".into()).await.unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("first", "first"));
    }
}
