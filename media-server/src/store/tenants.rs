//! Tenants (organisations), their users and their API keys.

use sqlx::Row as _;

use super::{Store, StoreError, conflict, new_id, now_ms};

/// A user, with the password hash to check a login against.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub password_hash: String,
    pub role: String,
}

/// An API key's record (never the key itself).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
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
        let row = sqlx::query("SELECT id, tenant_id, password_hash, role FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(UserRow {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                password_hash: r.try_get("password_hash")?,
                role: r.try_get("role")?,
            })
        })
        .transpose()
    }

    /// Whether user `id` still exists in `tenant_id` (a token outlives a deleted user).
    ///
    /// # Errors
    /// The database fails.
    pub async fn user_exists(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Records an API key by its hash.
    ///
    /// # Errors
    /// The database fails.
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        name: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRow, StoreError> {
        let row = ApiKeyRow { id: new_id("key"), name: name.to_owned(), created_at: now_ms() };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.id)
        .bind(tenant_id)
        .bind(name)
        .bind(key_hash)
        .bind(row.created_at)
        .execute(&self.pool)
        .await?;
        Ok(row)
    }

    /// The tenant of the live (not revoked) key with this hash.
    ///
    /// # Errors
    /// The database fails.
    pub async fn api_key_tenant(&self, key_hash: &str) -> Result<Option<(String, String)>, StoreError> {
        let row =
            sqlx::query("SELECT id, tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("id").and_then(|id| Ok((id, r.try_get("tenant_id")?)))).transpose()?)
    }

    /// A tenant's live API keys, newest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(ApiKeyRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
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
    async fn a_revoked_key_no_longer_opens_its_tenant() {
        let (store, _dir) = testing::sqlite().await;
        let t = store.create_tenant("acme").await.unwrap();
        let other = store.create_tenant("globex").await.unwrap();
        let k = store.create_api_key(&t, "ci", "abc").await.unwrap();
        assert_eq!(store.api_key_tenant("abc").await.unwrap(), Some((k.id.clone(), t.clone())));
        assert!(!store.revoke_api_key(&other, &k.id).await.unwrap(), "another tenant cannot revoke it");
        assert!(store.revoke_api_key(&t, &k.id).await.unwrap());
        assert_eq!(store.api_key_tenant("abc").await.unwrap(), None);
        assert!(store.api_keys(&t).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_setting_is_made_once() {
        let (store, _dir) = testing::sqlite().await;
        let a = store.setting_or_init("k", || "first".into()).await.unwrap();
        let b = store.setting_or_init("k", || "second".into()).await.unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("first", "first"));
    }
}
