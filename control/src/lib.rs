//! The control plane: what operators run Voxgate through, and what every
//! call leaves behind. It builds the agents the media plane's calls talk to
//! ([`agent::registry::Agents`] is its `AgentDirectory`), keeps each call's
//! record ([`ledger::Ledger`] is its `CallHooks`), and places outbound calls
//! through a `Dialer`. Those traits are `voxgate-calls`'; this crate never
//! imports the media plane's.
//!
//! # Layout
//! - [`config`]: the sections it reads, as [`ControlConfig`].
//! - [`agent`]: agents built from their definitions ([`agent::spec`]), with
//!   their providers and local models; [`agent::registry`] caches them and
//!   routes numbers to them.
//! - [`ledger`]: every call's record, its recording's upload and its
//!   post-call work; [`spool`]: records waiting for the database.
//! - [`store`]: records in SQLite or PostgreSQL (migrations in `migrations/`).
//! - [`api`]: the control API under `/v1` (OpenAPI at `/v1/openapi.json`),
//!   with [`auth`]: logins (argon2, JWT), API keys, roles and scopes.
//! - [`recordings`]: recordings on disk or S3, and signed links to them.
//! - [`post_call`]: the job queue's analytics, email, CRM, webhooks, billing;
//!   [`metrics`]: its tries.
//! - [`campaigns`]: outbound calls on a schedule, with retries.
//! - [`livekit`]: Voxgate's agents dispatched into LiveKit rooms.
//! - [`plans`]: what each plan allows, Stripe's API and webhooks, and the
//!   checks that keep a tenant to its plan; [`signup`]: businesses signing
//!   themselves up, paying, and their first admin's password link.
//! - [`whatsapp`]: tenants' WhatsApp numbers answered by their agents, and
//!   the desk where people of the team take conversations over.
//! - [`dashboard`]: the operators' page.
//! - [`agent_tests`]: scripted calls judged on what the caller heard (`voxgate test`).
//!
//! # Example
//!
//! What a request needs before any handler runs, by method and route:
//!
//! ```
//! use axum::http::Method;
//! use voxgate_control::auth::{Need, need};
//!
//! assert_eq!(need(&Method::GET, "/v1/calls"), Need::Read);
//! assert_eq!(need(&Method::POST, "/v1/calls"), Need::PlaceCalls);
//! assert_eq!(need(&Method::POST, "/v1/users"), Need::Admin);
//! ```

pub mod agent;
pub mod agent_tests;
pub mod api;
pub mod auth;
pub mod campaigns;
pub mod config;
pub mod dashboard;
pub mod ledger;
pub mod livekit;
pub mod metrics;
pub mod plans;
pub mod post_call;
pub mod recordings;
pub mod signup;
pub mod spool;
pub mod store;
pub mod whatsapp;

pub use config::ControlConfig;

/// The tenant of the configured agent (and of `http.api_key`).
pub const DEFAULT_TENANT: &str = "default";
