//! Agent tests through the API: `POST /v1/agents/{id}/tests` starts a run
//! of a test plan (the TOML file's structure, as JSON) against one of the
//! tenant's agents and answers 202 at once; `GET .../tests/{run}` reads it
//! until its status is `done`. The calls go through this server's own
//! websocket media endpoint, as a caller's would.
//!
//! One run at a time per server: a run places real calls, in real time,
//! and the waits it measures should be the agent's, not a second run's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize as _, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson};
use crate::agent_tests::{Report, Runner, TestPlan, caller::Line};
use crate::api::AppState;
use crate::auth::Caller;

/// Runs kept to be read (the oldest finished ones go first).
const KEPT: usize = 50;

/// A test run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestRun {
    pub id: String,
    pub agent_id: String,
    /// `running` or `done`.
    pub status: &'static str,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Once done.
    pub report: Option<Report>,
}

#[derive(Debug)]
struct Kept {
    tenant_id: String,
    run: TestRun,
}

/// The runs this server holds.
#[derive(Debug, Default, Clone)]
pub struct TestRuns(Arc<Mutex<VecDeque<Kept>>>);

impl TestRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Kept>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `run` unless one is running.
    fn begin(&self, tenant_id: &str, run: TestRun) -> Result<(), ApiError> {
        let mut runs = self.lock();
        if runs.iter().any(|k| k.run.status == "running") {
            return Err(ApiError::Conflict("a test run is in progress; try again when it is done".into()));
        }
        if runs.len() >= KEPT {
            runs.pop_front();
        }
        runs.push_back(Kept { tenant_id: tenant_id.to_owned(), run });
        Ok(())
    }

    fn finish(&self, id: &str, report: Report) {
        if let Some(k) = self.lock().iter_mut().find(|k| k.run.id == id) {
            k.run.status = "done";
            k.run.report = Some(report);
        }
    }

    fn get(&self, tenant_id: &str, agent_id: &str, id: &str) -> Option<TestRun> {
        self.lock()
            .iter()
            .find(|k| k.tenant_id == tenant_id && k.run.agent_id == agent_id && k.run.id == id)
            .map(|k| k.run.clone())
    }
}

/// Starts a test run against an agent.
#[utoipa::path(post, path = "/v1/agents/{id}/tests", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path, description = "The agent")), request_body = TestPlan,
    responses((status = 202, body = TestRun), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<TestRun>), ApiError> {
    // Another tenant's agent is a 404 whatever the body says.
    if state.control.store.agent(&caller.tenant_id, &agent_id).await?.is_none() {
        return Err(ApiError::NotFound("agent"));
    }
    let unprocessable =
        |message: String| ApiError::Request { status: StatusCode::UNPROCESSABLE_ENTITY, message };
    let plan = TestPlan::deserialize(body).map_err(|e| unprocessable(format!("not a test plan: {e}")))?;
    plan.check(false).map_err(|e| unprocessable(e.to_string()))?;
    let run = TestRun {
        id: format!("test_{}", crate::auth::random_hex(12)),
        agent_id: agent_id.clone(),
        status: "running",
        created_at: crate::store::now_ms(),
        report: None,
    };
    state.control.tests.begin(&caller.tenant_id, run.clone())?;
    // This server's own media endpoint, on loopback when it listens on every address.
    let mut addr = state.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let runner = Runner {
        store: state.control.store.clone(),
        models_dir: state.config.models.dir.clone(),
        line: Line {
            base: format!("ws://{addr}"),
            media_key: state.config.media_key.expose().to_owned(),
            tokens: Some(state.media_tokens.clone()),
        },
        tenant: caller.tenant_id.clone(),
        agent: agent_id,
        agents: Default::default(),
    };
    let (runs, id) = (state.control.tests.clone(), run.id.clone());
    tracing::info!(run = %id, agent = %run.agent_id, cases = plan.cases.len(), "agent test run started");
    tokio::spawn(async move {
        // Even a run that panics ends, so it never blocks the next one.
        let report = match tokio::spawn(async move { runner.run(&plan, |_| {}).await }).await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(run = %id, error = %e, "agent test run failed");
                Report::default()
            }
        };
        tracing::info!(run = %id, passed = report.passed, failed = report.failed, "agent test run done");
        runs.finish(&id, report);
    });
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Reads a test run.
#[utoipa::path(get, path = "/v1/agents/{id}/tests/{run}", tag = "agents", security(("bearer" = [])),
    params(("id" = String, Path, description = "The agent"), ("run" = String, Path, description = "The run")),
    responses((status = 200, body = TestRun), (status = 401, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, id)): Path<(String, String)>,
) -> Result<Json<TestRun>, ApiError> {
    state.control.tests.get(&caller.tenant_id, &agent_id, &id).map(Json).ok_or(ApiError::NotFound("test run"))
}
