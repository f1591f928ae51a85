//! Agents: each a JSON document (the API's `AgentSpec`) plus the phone
//! numbers routed to it: numbers its tenant was given (`numbers`), each
//! routed to one agent.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, conflict, new_id, now_ms};

/// A stored agent.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub id: String,
    pub tenant_id: String,
    /// The definition, JSON.
    pub spec: String,
    pub created_at: i64,
    pub updated_at: i64,
}

fn agent_row(r: &AnyRow) -> Result<AgentRow, sqlx::Error> {
    Ok(AgentRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        spec: r.try_get("spec")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The columns [`agent_row`] reads (a macro, so queries stay literals).
macro_rules! columns {
    () => {
        "id, tenant_id, spec, created_at, updated_at"
    };
}

impl Store {
    /// Stores a new agent and routes `numbers` to it.
    ///
    /// # Errors
    /// [`StoreError::NotAssigned`] when the tenant was not given a number;
    /// [`StoreError::Conflict`] when a number already reaches another agent.
    pub async fn create_agent(
        &self,
        tenant_id: &str,
        name: &str,
        spec: &str,
        numbers: &[String],
    ) -> Result<AgentRow, StoreError> {
        let now = now_ms();
        let row = AgentRow {
            id: new_id("agt"),
            tenant_id: tenant_id.to_owned(),
            spec: spec.to_owned(),
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO agents (id, tenant_id, name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(tenant_id)
        .bind(name)
        .bind(spec)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        route_numbers(&mut tx, tenant_id, &row.id, numbers).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Replaces one of the tenant's agents; `None` when it has no such agent.
    ///
    /// # Errors
    /// [`StoreError::NotAssigned`] when the tenant was not given a number;
    /// [`StoreError::Conflict`] when a number already reaches another agent.
    pub async fn update_agent(
        &self,
        tenant_id: &str,
        id: &str,
        name: &str,
        spec: &str,
        numbers: &[String],
    ) -> Result<Option<AgentRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE agents SET name = $1, spec = $2, updated_at = $3 WHERE id = $4 AND tenant_id = $5",
        )
        .bind(name)
        .bind(spec)
        .bind(now_ms())
        .bind(id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query("DELETE FROM agent_numbers WHERE agent_id = $1").bind(id).execute(&mut *tx).await?;
        route_numbers(&mut tx, tenant_id, id, numbers).await?;
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(agent_row(&row)?))
    }

    /// One of the tenant's agents.
    ///
    /// # Errors
    /// The database fails.
    pub async fn agent(&self, tenant_id: &str, id: &str) -> Result<Option<AgentRow>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1 AND tenant_id = $2"))
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(agent_row).transpose()?)
    }

    /// Any tenant's agent, by id (for routing a call that names it).
    ///
    /// # Errors
    /// The database fails.
    pub async fn agent_by_id(&self, id: &str) -> Result<Option<AgentRow>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(agent_row).transpose()?)
    }

    /// Every routed number and its agent's id.
    ///
    /// # Errors
    /// The database fails.
    pub async fn numbers(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT number, agent_id FROM agent_numbers").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("number")?, r.try_get("agent_id")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The tenant's agents, oldest first.
    ///
    /// # Errors
    /// The database fails.
    pub async fn agents(&self, tenant_id: &str) -> Result<Vec<AgentRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM agents WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(agent_row).collect::<Result<_, _>>()?)
    }

    /// Deletes one of the tenant's agents and frees its numbers; false when
    /// it has no such agent. Its calls stay.
    ///
    /// # Errors
    /// The database fails.
    pub async fn delete_agent(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM agent_numbers WHERE agent_id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM agents WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

async fn route_numbers(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &str,
    agent_id: &str,
    numbers: &[String],
) -> Result<(), StoreError> {
    for number in numbers {
        let owner: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM numbers WHERE number = $1")
            .bind(number)
            .fetch_optional(&mut **tx)
            .await?;
        if owner.as_deref() != Some(tenant_id) {
            return Err(StoreError::NotAssigned { number: number.clone() });
        }
        sqlx::query("INSERT INTO agent_numbers (number, agent_id, tenant_id) VALUES ($1, $2, $3)")
            .bind(number)
            .bind(agent_id)
            .bind(tenant_id)
            .execute(&mut **tx)
            .await
            .map_err(conflict(format!("number {number}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{StoreError, testing};

    #[tokio::test]
    async fn a_number_reaches_one_agent_and_is_freed_with_it() {
        let (store, _dir) = testing::sqlite().await;
        let t = store.create_tenant("acme").await.unwrap();
        let other = store.create_tenant("globex").await.unwrap();
        for n in ["100", "200"] {
            store.assign_number(n, &t).await.unwrap();
        }
        let a = store.create_agent(&t, "a", "{}", &["100".into()]).await.unwrap();
        let taken = store.create_agent(&t, "b", "{}", &["100".into()]).await;
        assert!(matches!(taken, Err(StoreError::Conflict { .. })), "{taken:?}");
        assert_eq!(store.agents(&t).await.unwrap().len(), 1, "the failed create left nothing behind");
        assert_eq!(store.numbers().await.unwrap(), [("100".to_owned(), a.id.clone())]);
        // Another tenant can neither read, change nor delete it.
        assert!(store.agent(&other, &a.id).await.unwrap().is_none());
        assert!(store.update_agent(&other, &a.id, "x", "{}", &[]).await.unwrap().is_none());
        assert!(!store.delete_agent(&other, &a.id).await.unwrap());
        let moved = store.update_agent(&t, &a.id, "a", "{\"v\":2}", &["200".into()]).await.unwrap().unwrap();
        assert_eq!(moved.spec, "{\"v\":2}");
        assert_eq!(store.numbers().await.unwrap(), [("200".to_owned(), a.id.clone())]);
        assert!(store.delete_agent(&t, &a.id).await.unwrap());
        assert!(store.numbers().await.unwrap().is_empty());
        store.create_agent(&t, "b", "{}", &["200".into()]).await.unwrap();
    }
}
