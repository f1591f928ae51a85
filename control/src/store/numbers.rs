//! Phone numbers belong to the operator, who gives each to one tenant
//! (`voxgate numbers assign`, or the operator's API). A tenant's agents may
//! route only its numbers, so no tenant can take another's callers.

use sqlx::Row as _;

use super::{Store, StoreError, now_ms};

/// A number and the tenant it was given to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct NumberAssignment {
    pub number: String,
    pub tenant_id: String,
    /// The agent it reaches, if one routes it.
    pub agent_id: Option<String>,
    /// Unix milliseconds (0: routed before numbers were assigned).
    pub assigned_at: i64,
}

impl Store {
    /// Gives `number` to `tenant_id`; a no-op when it already has it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another tenant has it (release it first).
    pub async fn assign_number(&self, number: &str, tenant_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO numbers (number, tenant_id, assigned_at) VALUES ($1, $2, $3) ON CONFLICT (number) DO NOTHING",
        )
        .bind(number)
        .bind(tenant_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        match self.number_owner(number).await? {
            Some(owner) if owner == tenant_id => Ok(()),
            _ => Err(StoreError::Conflict { what: format!("number {number} (assigned to another tenant)") }),
        }
    }

    /// Takes `number` back from its tenant; false when nobody had it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] while one of its tenant's agents routes it.
    pub async fn release_number(&self, number: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let routed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_numbers WHERE number = $1")
            .bind(number)
            .fetch_one(&mut *tx)
            .await?;
        if routed > 0 {
            return Err(StoreError::Conflict { what: format!("number {number} (an agent routes it)") });
        }
        let done =
            sqlx::query("DELETE FROM numbers WHERE number = $1").bind(number).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The tenant `number` was given to.
    ///
    /// # Errors
    /// The database fails.
    pub async fn number_owner(&self, number: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT tenant_id FROM numbers WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The numbers given to `tenant_id` (every tenant's: `None`), in order.
    ///
    /// # Errors
    /// The database fails.
    pub async fn assigned_numbers(
        &self,
        tenant_id: Option<&str>,
    ) -> Result<Vec<NumberAssignment>, StoreError> {
        let rows = sqlx::query(
            "SELECT n.number, n.tenant_id, n.assigned_at, a.agent_id FROM numbers n \
             LEFT JOIN agent_numbers a ON a.number = n.number \
             WHERE CAST($1 AS TEXT) IS NULL OR n.tenant_id = $1 ORDER BY n.number",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(NumberAssignment {
                    number: r.try_get("number")?,
                    tenant_id: r.try_get("tenant_id")?,
                    agent_id: r.try_get("agent_id")?,
                    assigned_at: r.try_get("assigned_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{StoreError, testing};

    #[tokio::test]
    async fn a_number_is_given_to_one_tenant_and_only_it_can_route_it() {
        let (store, _dir) = testing::sqlite().await;
        let acme = store.create_tenant("acme").await.unwrap();
        let globex = store.create_tenant("globex").await.unwrap();
        let unassigned = store.create_agent(&acme, "a", "{}", &["100".into()]).await;
        assert!(matches!(unassigned, Err(StoreError::NotAssigned { .. })), "{unassigned:?}");
        store.assign_number("100", &acme).await.unwrap();
        store.assign_number("100", &acme).await.expect("assigning again is a no-op");
        let stolen = store.assign_number("100", &globex).await;
        assert!(matches!(stolen, Err(StoreError::Conflict { .. })), "{stolen:?}");
        let foreign = store.create_agent(&globex, "g", "{}", &["100".into()]).await;
        assert!(matches!(foreign, Err(StoreError::NotAssigned { .. })), "{foreign:?}");
        assert!(store.agents(&globex).await.unwrap().is_empty(), "the refused create left nothing");
        let a = store.create_agent(&acme, "a", "{}", &["100".into()]).await.unwrap();
        let listed = store.assigned_numbers(Some(&acme)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].agent_id.as_deref(), Some(a.id.as_str()));
        assert!(store.assigned_numbers(Some(&globex)).await.unwrap().is_empty());
        // Routed numbers stay until no agent routes them.
        assert!(matches!(store.release_number("100").await, Err(StoreError::Conflict { .. })));
        assert!(store.delete_agent(&acme, &a.id).await.unwrap());
        assert!(store.release_number("100").await.unwrap());
        assert!(!store.release_number("100").await.unwrap());
        store.assign_number("100", &globex).await.expect("free again");
        assert_eq!(store.number_owner("100").await.unwrap(), Some(globex));
    }
}
